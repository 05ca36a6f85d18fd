"""Input validation shared by every attention backend.

Every public op funnels its arguments through :func:`build_inputs`, which checks them once and
returns an :class:`AttentionInputs` record. Backends never re-validate; they only say whether
they *support* the (already valid) inputs, via ``not_supported_reasons``.

Errors are ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong value or
shape) and always name the argument, what was expected and what was received.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

Scalar = Union[float, torch.Tensor]


@dataclass(frozen=True)
class FDAParams:
    """Force-directed attention coefficients; each a Python float or a tensor of shape [] or [H].

    The one FDA type from a YAML config to a kernel: the config type
    (``vtrack.models.layers.attention.FDAConfig``) is a subclass, passed to the ops as it is.
    ``params["alpha"]`` reads a coefficient by name.
    """

    alpha: Scalar
    beta: Scalar
    delta: Scalar

    def __getitem__(self, name: str) -> Scalar:
        if name not in ("alpha", "beta", "delta"):
            raise KeyError(name)
        return getattr(self, name)


@dataclass(frozen=True)
class CEParams:
    """Candidate-elimination options, already resolved.

    ``keep`` is the integer number of search tokens kept and ``template_index`` a 1-D int64
    tensor (on the inputs' device) of template query rows whose probabilities form the score.
    """

    num_template: int
    keep: int
    template_index: torch.Tensor


@dataclass(frozen=True)
class AttentionInputs:
    """Validated inputs of one attention call (what backends receive)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scale: float
    key_padding_mask: Optional[torch.Tensor] = None
    topk: Optional[int] = None
    fda: Optional[FDAParams] = None
    ce: Optional[CEParams] = None

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.q.device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of q, k and v."""
        return self.q.dtype

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(B, H, N, M, D)."""
        b, h, n, d = self.q.shape
        return b, h, n, self.k.shape[2], d

    @property
    def op_name(self) -> str:
        """Short name of the op family this call uses (for messages and benchmarks)."""
        parts = [p for p, on in (("topk", self.topk is not None), ("fda", self.fda is not None),
                                 ("ce", self.ce is not None)) if on]
        return "+".join(parts) if parts else "dense"


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"Tensor(shape={list(x.shape)}, dtype={x.dtype}, device={x.device})"
    return f"{type(x).__name__} {x!r}"


def check_qkv(q: Any, k: Any, v: Any) -> None:
    """Check q [B,H,N,D], k/v [B,H,M,D]: tensors, floating, same dtype/device, matching sizes."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(t)}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected dtype float16, bfloat16, float32 or float64, got {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"{name}: expected a 4-D tensor [B, H, tokens, D], got shape {list(t.shape)}")
        if any(s == 0 for s in t.shape):
            raise ValueError(f"{name}: expected every dimension >= 1, got shape {list(t.shape)}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name}: expected dtype {q.dtype} (same as q), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}: expected device {q.device} (same as q), got {t.device}")
        if t.shape[0] != q.shape[0] or t.shape[1] != q.shape[1] or t.shape[3] != q.shape[3]:
            raise ValueError(
                f"{name}: expected shape [B={q.shape[0]}, H={q.shape[1]}, M, D={q.shape[3]}] matching q "
                f"{list(q.shape)}, got {list(t.shape)}")
    if v.shape[2] != k.shape[2]:
        raise ValueError(f"v: expected {k.shape[2]} tokens (same as k), got shape {list(v.shape)}")


def check_scale(scale: Any, head_dim: int) -> float:
    """Return the softmax scale: ``head_dim ** -0.5`` when None, else a finite non-zero float."""
    if scale is None:
        return float(head_dim) ** -0.5
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale: expected a float or None, got {_describe(scale)}")
    scale = float(scale)
    if not math.isfinite(scale) or scale == 0.0:
        raise ValueError(f"scale: expected a finite non-zero float, got {scale}")
    return scale


def check_mask(mask: Any, q: torch.Tensor, k: torch.Tensor) -> Optional[torch.Tensor]:
    """Check key_padding_mask: None or a bool tensor [B, M] on q's device (True = ignore key)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"key_padding_mask: expected a bool tensor [B, M] or None, got {_describe(mask)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"key_padding_mask: expected dtype torch.bool (True = ignore key), got {mask.dtype}")
    expected = (q.shape[0], k.shape[2])
    if tuple(mask.shape) != expected:
        raise ValueError(f"key_padding_mask: expected shape [B={expected[0]}, M={expected[1]}], got {list(mask.shape)}")
    if mask.device != q.device:
        raise ValueError(f"key_padding_mask: expected device {q.device} (same as q), got {mask.device}")
    return mask


#: Largest topk accepted (kernels count keys in int32); any value >= M already means dense attention.
MAX_TOPK = 2**31 - 1


def check_topk(topk: Any) -> int:
    """Check topk: a Python int in [1, 2**31 - 1] (values >= M mean dense attention)."""
    if isinstance(topk, bool) or not isinstance(topk, int):
        raise TypeError(f"topk: expected an int in [1, {MAX_TOPK}], got {_describe(topk)}")
    if not 1 <= topk <= MAX_TOPK:
        raise ValueError(f"topk: expected an int in [1, {MAX_TOPK}] (any value >= the number of keys means "
                         f"dense attention), got {topk}")
    return topk


def _check_coef(name: str, x: Any, q: torch.Tensor) -> Scalar:
    num_heads = q.shape[1]
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"fda.{name}: expected a floating tensor, got dtype {x.dtype}")
        if x.dim() > 1 or (x.dim() == 1 and x.shape[0] != num_heads):
            raise ValueError(f"fda.{name}: expected a tensor of shape [] or [H={num_heads}], got {list(x.shape)}")
        if x.device != q.device:
            raise ValueError(f"fda.{name}: expected device {q.device} (same as q), got {x.device}")
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"fda.{name}: expected a float or a tensor of shape [] or [H], got {_describe(x)}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"fda.{name}: expected a finite float, got {x}")
    if x < 0:
        # ESAT (Eq. 5-7): A_rep = delta*|q-k|^2 is a repulsion (>= 0), alpha scales the attraction
        # exp(-A_rep) that is added and beta the repulsion that is subtracted: all three are >= 0.
        # A negative delta makes exp(-A_rep) overflow to inf and the logits NaN.
        raise ValueError(f"fda.{name}: expected a float >= 0 (ESAT's {_FDA_ROLE[name]}), got {x}")
    return x


_FDA_ROLE = {"alpha": "weight of the added attraction exp(-delta*|q-k|^2)",
             "beta": "weight of the subtracted repulsion delta*|q-k|^2",
             "delta": "scale of the squared query-key distance"}


def check_fda(fda: Any, q: torch.Tensor) -> Optional[FDAParams]:
    """Check the FDA coefficients given as a mapping with keys alpha, beta, delta (or FDAParams)."""
    if fda is None:
        return None
    if isinstance(fda, FDAParams):
        fda = {"alpha": fda.alpha, "beta": fda.beta, "delta": fda.delta}
    if not isinstance(fda, Mapping):
        raise TypeError(f"fda: expected a dict with keys alpha, beta, delta, got {_describe(fda)}")
    keys = set(fda.keys())
    if keys != {"alpha", "beta", "delta"}:
        raise ValueError(f"fda: expected exactly the keys ['alpha', 'beta', 'delta'], got {sorted(map(str, keys))}")
    return FDAParams(*(_check_coef(n, fda[n], q) for n in ("alpha", "beta", "delta")))


def centre_index(num_template: int) -> int:
    """OSTrack's template centre token floor(Wz/2) + Wz*floor(Hz/2) for a square Hz = Wz template."""
    side = math.isqrt(num_template)
    if side * side != num_template:
        raise ValueError(
            f"template_index: num_template={num_template} is not a square number of tokens, so the template "
            "centre is ambiguous; pass template_index explicitly")
    return side // 2 + side * (side // 2)


def resolve_keep(keep: Any, num_search: int) -> int:
    """Resolve ``keep``: an int in [1, Ls] or a ratio in (0, 1] giving ceil(ratio * Ls) (as OSTrack)."""
    if isinstance(keep, bool) or not isinstance(keep, (int, float)):
        raise TypeError(f"keep: expected an int in [1, {num_search}] or a float ratio in (0, 1], got {_describe(keep)}")
    if isinstance(keep, int):
        if not 1 <= keep <= num_search:
            raise ValueError(f"keep: expected an int in [1, {num_search}] (number of search tokens), got {keep}")
        return keep
    if not (math.isfinite(keep) and 0.0 < keep <= 1.0):
        raise ValueError(f"keep: expected a float ratio in (0, 1], got {keep}")
    return max(1, math.ceil(keep * num_search))


def check_ce(num_template: Any, keep: Any, template_index: Any, q: torch.Tensor, k: torch.Tensor) -> CEParams:
    """Check candidate-elimination arguments for a self-attention over template+search tokens."""
    n, m = q.shape[2], k.shape[2]
    if n != m:
        raise ValueError(f"k: candidate elimination needs a self-attention with M == N, got N={n}, M={m}")
    if isinstance(num_template, bool) or not isinstance(num_template, int):
        raise TypeError(f"num_template: expected an int in [1, N-1], got {_describe(num_template)}")
    if not 1 <= num_template < n:
        raise ValueError(f"num_template: expected an int in [1, N-1={n - 1}] (N={n} tokens), got {num_template}")
    num_search = n - num_template
    keep_int = resolve_keep(keep, num_search)
    if template_index is None:
        idx = [centre_index(num_template)]
    elif isinstance(template_index, torch.Tensor):
        if template_index.dtype in FLOAT_DTYPES or template_index.dtype == torch.bool or template_index.is_complex():
            raise TypeError(f"template_index: expected an integer tensor, got dtype {template_index.dtype}")
        if template_index.dim() > 1 or template_index.numel() == 0:
            raise ValueError(f"template_index: expected a non-empty 0-D or 1-D tensor, got shape {list(template_index.shape)}")
        idx = [int(i) for i in template_index.reshape(-1).tolist()]
    elif isinstance(template_index, int) and not isinstance(template_index, bool):
        idx = [template_index]
    elif isinstance(template_index, Sequence) and not isinstance(template_index, str):
        idx = list(template_index)
        if not idx or any(isinstance(i, bool) or not isinstance(i, int) for i in idx):
            raise TypeError(f"template_index: expected a non-empty sequence of ints, got {template_index!r}")
    else:
        raise TypeError(f"template_index: expected None, an int, a sequence of ints or an int tensor, got {_describe(template_index)}")
    bad = [i for i in idx if not 0 <= i < num_template]
    if bad:
        raise ValueError(f"template_index: expected indices in [0, num_template={num_template}), got {bad}")
    return CEParams(num_template, keep_int, torch.tensor(idx, dtype=torch.int64, device=q.device))


def check_backend_name(backend: Any) -> str:
    """Check the backend argument is a string (its value is checked by the dispatcher)."""
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a backend name (str), got {_describe(backend)}")
    return backend


def build_inputs(q: Any, k: Any, v: Any, *, scale: Any = None, key_padding_mask: Any = None,
                 topk: Any = None, fda: Any = None, ce: Optional[Mapping[str, Any]] = None) -> AttentionInputs:
    """Validate every argument of an attention call and return the :class:`AttentionInputs`.

    ``ce`` is a mapping with keys ``num_template``, ``keep`` and optionally ``template_index``.
    """
    check_qkv(q, k, v)
    scale_f = check_scale(scale, q.shape[3])
    mask = check_mask(key_padding_mask, q, k)
    topk_i = None if topk is None else check_topk(topk)
    fda_p = check_fda(fda, q)
    ce_p = None
    if ce is not None:
        if not isinstance(ce, Mapping):
            raise TypeError(f"ce: expected a dict with keys num_template, keep[, template_index], got {_describe(ce)}")
        extra = set(ce) - {"num_template", "keep", "template_index"}
        missing = {"num_template", "keep"} - set(ce)
        if extra or missing:
            raise ValueError(f"ce: expected keys num_template, keep and optional template_index, got {sorted(map(str, ce))}")
        ce_p = check_ce(ce["num_template"], ce["keep"], ce.get("template_index"), q, k)
    return AttentionInputs(q, k, v, scale_f, mask, topk_i, fda_p, ce_p)
