"""Backend registry and dispatch (modelled on xformers' fmha dispatch, with declared capabilities).

A backend is an object with a ``name``, a :class:`Capabilities` record (``capabilities``: the
devices, dtypes, head dims and features it runs, declared as data, like xformers'
``AttentionOpBase.SUPPORTED_DTYPES`` / ``SUPPORTED_DEVICES`` / ``SUPPORTS_*``), an
``unavailable_reason() -> str | None`` (why it cannot run anything *now*, e.g. its compiled
library did not load; a pure read of state) and a ``run(inputs) -> KernelResult``.

The reasons a backend refuses an input are generated from its declaration by one function,
:func:`capability_reasons`; no backend writes its own. Asking (:func:`not_supported_reasons`,
:func:`available_backends`, :func:`select_backend`) has no side effects: it never loads, imports
or builds anything. Backends are registered with a priority (higher is tried first; it may depend
on the device type). ``"auto"`` picks the highest-priority backend with no reason; naming a
backend that cannot run the inputs raises ValueError listing every reason. Other modules plug in
backends with :func:`register_backend` without editing this file.

Every backend returns the one output schema :class:`KernelResult` ``(out, lse, index, score,
keep_index)``; which optional parts it fills is declared (``returns_lse``, ``returns_index``).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, NamedTuple, Optional, Protocol, Union, runtime_checkable

import torch

from .checks import AttentionInputs

logger = logging.getLogger(__name__)


class KernelResult(NamedTuple):
    """The one output schema of every backend (docs/kernels.md "Kernel schema").

    * ``out`` [B,H,N,D], input dtype, differentiable w.r.t. q, k, v and tensor FDA coefficients;
    * ``lse`` [B,H,N] float32 (float64 for float64 inputs): the log-sum-exp of each row's final
      logits (after FDA, over the kept top-K keys, masked keys excluded; +inf for a row without a
      valid key), or None when the backend declares ``returns_lse=False``;
    * ``index`` [B,H,N,min(topk, M)] int32: the kept key indices of each row in ascending order,
      -1 after the last one (a row with fewer valid keys); None without top-K (or when the backend
      declares ``returns_index=False``);
    * ``score`` [B,Ls] and ``keep_index`` [B,keep] int64: the CE outputs, None without ``ce``.
    """

    out: torch.Tensor
    lse: Optional[torch.Tensor] = None
    index: Optional[torch.Tensor] = None
    score: Optional[torch.Tensor] = None
    keep_index: Optional[torch.Tensor] = None


#: ``dtypes`` value of a backend that runs every device and every dtype that passes validation.
ANY = None


def _frozen(mapping: Optional[Mapping]) -> Optional[Mapping]:
    return None if mapping is None else MappingProxyType({k: tuple(v) if not isinstance(v, str) else v
                                                          for k, v in mapping.items()})


@dataclass(frozen=True)
class Capabilities:
    """What a backend runs, declared as data; :func:`capability_reasons` turns it into refusals.

    Attributes:
        dtypes: device type (``"cpu"``, ``"cuda"``) -> the dtypes it runs there; the keys are the
            supported devices. None (:data:`ANY`): every device and dtype.
        max_head_dim: largest head dim D (None: no limit).
        max_batch_heads: largest B*H (None: no limit).
        topk: runs top-K sparse attention (``topk < M``; ``topk >= M`` is dense attention).
        max_topk: largest ``topk`` below M it runs (None: no limit).
        max_topk_keys: largest number of keys M it runs with top-K (None: no limit).
        fda: runs the FDA bias. ce: returns the CE score and keep_index.
        topk_with_ce: runs top-K and CE in one call.
        key_padding_mask: takes a key padding mask.
        backward: gives gradients (refused when autograd would need them and this is False).
        returns_lse, returns_index: which optional :class:`KernelResult` parts it fills.
        notes: explanations appended to a refusal, keyed by the refused value: a device type
            (``"cpu"``) or a dtype name (``"bfloat16"``).
    """

    dtypes: Optional[Mapping[str, tuple[torch.dtype, ...]]] = ANY
    max_head_dim: Optional[int] = None
    max_batch_heads: Optional[int] = None
    topk: bool = True
    max_topk: Optional[int] = None
    max_topk_keys: Optional[int] = None
    fda: bool = True
    ce: bool = True
    topk_with_ce: bool = True
    key_padding_mask: bool = True
    backward: bool = True
    returns_lse: bool = True
    returns_index: bool = True
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtypes", _frozen(self.dtypes))
        object.__setattr__(self, "notes", MappingProxyType(dict(self.notes)))

    @property
    def devices(self) -> Optional[tuple[str, ...]]:
        """The supported device types (None: any)."""
        return None if self.dtypes is None else tuple(self.dtypes)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _noted(caps: Capabilities, key: str, reason: str) -> str:
    note = caps.notes.get(key)
    return f"{reason}: {note}" if note else reason


def _needs_grad(inputs: AttentionInputs) -> bool:
    if not torch.is_grad_enabled():
        return False
    coefs = () if inputs.fda is None else (inputs.fda.alpha, inputs.fda.beta, inputs.fda.delta)
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in (inputs.q, inputs.k, inputs.v, *coefs))


def _feature_reasons(caps: Capabilities, inputs: AttentionInputs) -> list[str]:
    b, h, _, m, d = inputs.shape
    sparse = inputs.topk is not None and inputs.topk < m
    checks = [
        (caps.max_head_dim is not None and d > caps.max_head_dim, f"head dim {d} > max_head_dim {caps.max_head_dim}"),
        (caps.max_batch_heads is not None and b * h > caps.max_batch_heads,
         f"B*H = {b * h} > max_batch_heads {caps.max_batch_heads}"),
        (sparse and not caps.topk, f"no top-K sparse attention (topk={inputs.topk} < M={m})"),
        (sparse and caps.topk and caps.max_topk is not None and inputs.topk > caps.max_topk,  # type: ignore[operator]
         f"topk {inputs.topk} > max_topk {caps.max_topk} (and < M={m})"),
        (sparse and caps.topk and caps.max_topk_keys is not None and m > caps.max_topk_keys,
         f"top-K with M = {m} keys > max_topk_keys {caps.max_topk_keys}"),
        (inputs.fda is not None and not caps.fda, "no FDA bias (fda)"),
        (inputs.ce is not None and not caps.ce, "no candidate-elimination outputs (ce: score, keep_index)"),
        (sparse and inputs.ce is not None and caps.ce and not caps.topk_with_ce,
         "top-K combined with candidate elimination is not fused (topk_with_ce)"),
        (inputs.key_padding_mask is not None and not caps.key_padding_mask, "no key_padding_mask"),
        (not caps.backward and _needs_grad(inputs), "no backward (inputs require grad)"),
    ]
    return [reason for refused, reason in checks if refused]


def capability_reasons(caps: Capabilities, inputs: AttentionInputs) -> list[str]:
    """Why a backend declaring ``caps`` cannot run ``inputs`` (empty: it can). Pure: reads only
    the declaration and the inputs' metadata (no tensor values, no device sync)."""
    reasons = []
    dev = inputs.device.type
    if caps.dtypes is not None:
        if dev not in caps.dtypes:
            wanted = " or ".join(t.upper() for t in caps.dtypes)
            reasons.append(_noted(caps, dev, f"needs {wanted} tensors, got device {inputs.device}"))
        elif inputs.dtype not in caps.dtypes[dev]:
            names = ", ".join(_dtype_name(t) for t in caps.dtypes[dev])
            reasons.append(_noted(caps, _dtype_name(inputs.dtype),
                                  f"dtype {inputs.dtype} not supported on {dev} (declared: {names})"))
    return reasons + _feature_reasons(caps, inputs)


@runtime_checkable
class Backend(Protocol):
    """What the dispatcher needs from a backend."""

    name: str
    capabilities: Capabilities

    def unavailable_reason(self) -> Optional[str]:
        """Why the backend cannot run anything now (None: it can). Must have no side effects."""
        ...

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """Compute the :class:`KernelResult` of ``inputs`` (which its capabilities accept)."""
        ...


def backend_reasons(backend: Backend, inputs: AttentionInputs) -> list[str]:
    """Reasons ``backend`` cannot run ``inputs``: its declared capabilities, then its availability."""
    reasons = capability_reasons(backend.capabilities, inputs)
    why = backend.unavailable_reason()
    return reasons + ([why] if why else [])


Priority = Union[int, Mapping[str, int]]


@dataclass
class _Entry:
    backend: Backend
    priority: Priority
    order: int

    def priority_for(self, device_type: str) -> int:
        if isinstance(self.priority, Mapping):
            return int(self.priority.get(device_type, self.priority.get("default", 0)))
        return int(self.priority)


_REGISTRY: dict[str, _Entry] = {}
_LOCK = threading.Lock()
_ORDER = [0]


def register_backend(backend: Backend, *, priority: Priority = 0, replace: bool = False) -> None:
    """Register ``backend`` under ``backend.name``.

    ``priority``: an int, or a mapping from device type (``"cpu"``, ``"cuda"``, ...; key
    ``"default"`` for the rest) to an int. Among backends that support the inputs, "auto" picks
    the highest priority for the inputs' device (ties: the earlier registration). The reference
    backend has priority 0. Registering an existing name raises ValueError unless ``replace``.
    """
    if not isinstance(backend, Backend):
        raise TypeError(f"backend: expected an object with name, capabilities, unavailable_reason() and run(), "
                        f"got {type(backend).__name__}")
    if not isinstance(backend.capabilities, Capabilities):
        raise TypeError(f"backend.capabilities: expected a vtrack.kernels.Capabilities, got "
                        f"{type(backend.capabilities).__name__}")
    name = backend.name
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"backend.name: expected a non-empty string other than 'auto', got {name!r}")
    if not isinstance(priority, (int, Mapping)) or isinstance(priority, bool):
        raise TypeError(f"priority: expected an int or a mapping device type -> int, got {priority!r}")
    with _LOCK:
        if name in _REGISTRY and not replace:
            raise ValueError(f"backend {name!r} is already registered (pass replace=True to override)")
        _ORDER[0] += 1
        _REGISTRY[name] = _Entry(backend, priority, _ORDER[0])
    logger.debug("registered attention backend %r (priority %r)", name, priority)


def unregister_backend(name: str) -> None:
    """Remove a registered backend (ValueError when the name is unknown)."""
    with _LOCK:
        if name not in _REGISTRY:
            raise ValueError(f"backend: unknown backend {name!r}; known: {sorted(_REGISTRY)}")
        del _REGISTRY[name]


def _sorted_entries(device_type: str) -> list[_Entry]:
    return sorted(_REGISTRY.values(), key=lambda e: (-e.priority_for(device_type), e.order))


def registered_backends(device: Union[str, torch.device, None] = None) -> list[str]:
    """Names of all registered backends, in "auto" preference order for ``device`` (default cpu)."""
    device_type = torch.device(device).type if device is not None else "cpu"
    return [e.backend.name for e in _sorted_entries(device_type)]


def get_backend(name: str) -> Backend:
    """The backend object registered as ``name`` (ValueError listing known names otherwise)."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"backend: unknown backend {name!r}; expected 'auto' or one of {sorted(_REGISTRY)}")
    return entry.backend


def check_backend(name: object, arg: str = "backend") -> str:
    """``name`` when it is ``"auto"`` or a registered backend; TypeError/ValueError otherwise.

    The one check of a backend name (layers, models and the trainer use it), so a backend added
    with :func:`register_backend` is accepted everywhere. ``arg`` names the argument in errors.
    """
    if not isinstance(name, str):
        raise TypeError(f"{arg}: expected a backend name (str), got {type(name).__name__}")
    if name != "auto" and name not in _REGISTRY:
        raise ValueError(f"{arg}: expected one of {['auto', *registered_backends()]}, got {name!r}")
    return name


def not_supported_reasons(name: str, inputs: AttentionInputs) -> list[str]:
    """Reasons backend ``name`` cannot run ``inputs`` (empty: it can)."""
    return backend_reasons(get_backend(name), inputs)


def available_backends(inputs: Optional[AttentionInputs] = None, device: Union[str, torch.device, None] = None) -> list[str]:
    """Backends that can run ``inputs`` (all registered ones when None), in preference order."""
    device_type = inputs.device.type if inputs is not None else (torch.device(device).type if device is not None else "cpu")
    names = []
    for e in _sorted_entries(device_type):
        if inputs is None or not backend_reasons(e.backend, inputs):
            names.append(e.backend.name)
    return names


def select_backend(inputs: AttentionInputs, backend: str = "auto") -> Backend:
    """Pick the backend for ``inputs``: the first supporting one for "auto", else the named one.

    Raises ValueError for an unknown name, or for a named backend that cannot run the inputs
    (the message lists every reason).
    """
    if backend == "auto":
        why: list[str] = []
        for e in _sorted_entries(inputs.device.type):
            reasons = backend_reasons(e.backend, inputs)
            if not reasons:
                return e.backend
            why.append(f"{e.backend.name}: " + "; ".join(reasons))
        raise ValueError(f"backend: no registered backend supports these inputs ({inputs.op_name}):\n  " + "\n  ".join(why))
    chosen = get_backend(backend)
    reasons = backend_reasons(chosen, inputs)
    if reasons:
        raise ValueError(f"backend: {backend!r} cannot run these inputs ({inputs.op_name}, dtype {inputs.dtype}, "
                         f"device {inputs.device}):\n  - " + "\n  - ".join(reasons))
    return chosen


def dispatch(inputs: AttentionInputs, backend: str = "auto") -> KernelResult:
    """Run ``inputs`` on the selected backend; returns its :class:`KernelResult`."""
    chosen = select_backend(inputs, backend)
    result = chosen.run(inputs)
    if not isinstance(result, KernelResult):
        raise TypeError(f"backend {chosen.name!r}: run() must return a vtrack.kernels.KernelResult, "
                        f"got {type(result).__name__}")
    return result
