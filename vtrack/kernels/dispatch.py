"""Backend registry and dispatch (modelled on xformers' fmha dispatch).

A backend is an object with a ``name``, a ``not_supported_reasons(inputs) -> list[str]`` and a
``run(inputs) -> (out, keep_index, score)``. Backends are registered with a priority (higher is
tried first; it may depend on the device type). ``"auto"`` picks the highest-priority backend
whose reasons list is empty; naming a backend that cannot run the inputs raises ValueError
listing every reason. Other modules plug in backends with :func:`register_backend` without
editing this file.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Mapping, Optional, Protocol, Union, runtime_checkable

import torch

from .checks import AttentionInputs

logger = logging.getLogger(__name__)

Result = tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]


@runtime_checkable
class Backend(Protocol):
    """What the dispatcher needs from a backend."""

    name: str

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        """Human-readable reasons this backend cannot run ``inputs`` (empty list: it can)."""
        ...

    def run(self, inputs: AttentionInputs) -> Result:
        """Compute (out, keep_index, score); keep_index/score are None unless ``inputs.ce`` is set."""
        ...


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
        raise TypeError(f"backend: expected an object with name, not_supported_reasons() and run(), got {type(backend).__name__}")
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
    return list(get_backend(name).not_supported_reasons(inputs))


def available_backends(inputs: Optional[AttentionInputs] = None, device: Union[str, torch.device, None] = None) -> list[str]:
    """Backends that can run ``inputs`` (all registered ones when None), in preference order."""
    device_type = inputs.device.type if inputs is not None else (torch.device(device).type if device is not None else "cpu")
    names = []
    for e in _sorted_entries(device_type):
        if inputs is None or not e.backend.not_supported_reasons(inputs):
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
            reasons = e.backend.not_supported_reasons(inputs)
            if not reasons:
                return e.backend
            why.append(f"{e.backend.name}: " + "; ".join(reasons))
        raise ValueError(f"backend: no registered backend supports these inputs ({inputs.op_name}):\n  " + "\n  ".join(why))
    chosen = get_backend(backend)
    reasons = chosen.not_supported_reasons(inputs)
    if reasons:
        raise ValueError(f"backend: {backend!r} cannot run these inputs ({inputs.op_name}, dtype {inputs.dtype}, "
                         f"device {inputs.device}):\n  - " + "\n  - ".join(reasons))
    return chosen


def dispatch(inputs: AttentionInputs, backend: str = "auto") -> Result:
    """Run ``inputs`` on the selected backend."""
    return select_backend(inputs, backend).run(inputs)
