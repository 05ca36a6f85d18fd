"""The "cpp" (C++ CPU) and "cuda" (CUDA) backends of :mod:`vtrack.kernels`.

The compiled library ``vtrack._C`` (``csrc/``) registers the operators ``torch.ops.vtrack.*``:

* ``topk_attention(q, k, v, topk, scale, key_padding_mask, alpha, beta, delta) -> (out, lse, index)``
* ``fda_attention(q, k, v, scale, key_padding_mask, alpha, beta, delta) -> (out, lse)`` (dense
  attention when alpha/beta/delta are None)
* ``ce_attention(q, k, v, num_template, keep, template_index, scale, topk, key_padding_mask, alpha,
  beta, delta) -> (out, lse, index, score, keep_index)``
* ``topk_attention_backward`` / ``fda_attention_backward`` (the gradients, also used by CE).

This module registers their fake (meta) kernels and autograd formulas with :mod:`torch.library`
(so ``torch.compile(fullgraph=True)`` and ``torch.library.opcheck`` work) and plugs the two
backends into the dispatcher with their declared :class:`~vtrack.kernels.dispatch.Capabilities`.
``import vtrack._C`` happens at import; a JIT build only on an explicit
``vtrack.kernels.load_extension()`` (see :mod:`vtrack.kernels._ext`). When the library is missing
the backends report why (``unavailable_reason``, a pure read) and "auto" picks another backend.

Both backends return the dispatcher's one schema :class:`~vtrack.kernels.dispatch.KernelResult`
``(out, lse, index, score, keep_index)``: the ops' outputs, reordered for CE.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import torch

from . import _ext
from .checks import AttentionInputs
from .dispatch import Capabilities, KernelResult, register_backend

logger = logging.getLogger(__name__)

CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
CUDA_MAX_HEAD_DIM = 128
CUDA_MAX_TOPK_KEYS = 8192

_LOCK = threading.Lock()
_META_DONE = [False]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ------------------------------------------------------------------------------------------------
# Fake kernels
# ------------------------------------------------------------------------------------------------

def _fake_topk(q, k, v, topk, scale, key_padding_mask=None, alpha=None, beta=None, delta=None):
    b, h, n, _ = q.shape
    width = min(topk, k.shape[2])
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, h, n, width), dtype=torch.int32))


def _fake_fda(q, k, v, scale, key_padding_mask=None, alpha=None, beta=None, delta=None):
    b, h, n, _ = q.shape
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)))


def _fake_ce(q, k, v, num_template, keep, template_index, scale, topk=0, key_padding_mask=None, alpha=None,
             beta=None, delta=None):
    b, h, n, _ = q.shape
    m = k.shape[2]
    width = min(topk, m) if topk > 0 else 0
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, h, n, width), dtype=torch.int32),
            q.new_empty((b, m - num_template), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, keep), dtype=torch.int64))


def _coef_grads_fake(q, alpha, beta, delta):
    h = q.shape[1]
    if alpha is None:
        return q.new_empty((0,)), q.new_empty((0,)), q.new_empty((0,))
    return alpha.new_empty((h,)), beta.new_empty((h,)), delta.new_empty((h,))


def _fake_topk_bwd(grad_out, q, k, v, out, lse, index, scale, alpha=None, beta=None, delta=None):
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            torch.empty_like(k, memory_format=torch.contiguous_format),
            torch.empty_like(v, memory_format=torch.contiguous_format), *_coef_grads_fake(q, alpha, beta, delta))


def _fake_fda_bwd(grad_out, q, k, v, out, lse, scale, key_padding_mask=None, alpha=None, beta=None, delta=None):
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            torch.empty_like(k, memory_format=torch.contiguous_format),
            torch.empty_like(v, memory_format=torch.contiguous_format), *_coef_grads_fake(q, alpha, beta, delta))


# ------------------------------------------------------------------------------------------------
# Autograd
# ------------------------------------------------------------------------------------------------

def _coef_grad(g: torch.Tensor, coef: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """[H] gradient back to the shape of the coefficient tensor given to the op ([] or [H])."""
    if coef is None:
        return None
    return g.reshape(coef.shape) if coef.dim() == 0 else g


def _grad_or_zeros(grad: Optional[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(out) if grad is None else grad


def _setup_topk(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, topk, scale, mask, alpha, beta, delta = inputs
    out, lse, index = output
    ctx.save_for_backward(q, k, v, out, lse, index, alpha, beta, delta)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse, index)


def _backward_topk(ctx: Any, grad_out, grad_lse, grad_index):
    q, k, v, out, lse, index, alpha, beta, delta = ctx.saved_tensors
    dq, dk, dv, da, db, dd = torch.ops.vtrack.topk_attention_backward(
        _grad_or_zeros(grad_out, out), q, k, v, out, lse, index, ctx.scale, alpha, beta, delta)
    return (dq, dk, dv, None, None, None, _coef_grad(da, alpha), _coef_grad(db, beta), _coef_grad(dd, delta))


def _setup_fda(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, scale, mask, alpha, beta, delta = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask, alpha, beta, delta)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse)


def _backward_fda(ctx: Any, grad_out, grad_lse):
    q, k, v, out, lse, mask, alpha, beta, delta = ctx.saved_tensors
    dq, dk, dv, da, db, dd = torch.ops.vtrack.fda_attention_backward(
        _grad_or_zeros(grad_out, out), q, k, v, out, lse, ctx.scale, mask, alpha, beta, delta)
    return (dq, dk, dv, None, None, _coef_grad(da, alpha), _coef_grad(db, beta), _coef_grad(dd, delta))


def _setup_ce(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, num_template, keep, template_index, scale, topk, mask, alpha, beta, delta = inputs
    out, lse, index, score, keep_index = output
    ctx.save_for_backward(q, k, v, out, lse, index, mask, alpha, beta, delta)
    ctx.scale = scale
    ctx.topk = topk
    ctx.mark_non_differentiable(lse, index, score, keep_index)


def _backward_ce(ctx: Any, grad_out, grad_lse, grad_index, grad_score, grad_keep):
    q, k, v, out, lse, index, mask, alpha, beta, delta = ctx.saved_tensors
    go = _grad_or_zeros(grad_out, out)
    if ctx.topk > 0:
        grads = torch.ops.vtrack.topk_attention_backward(go, q, k, v, out, lse, index, ctx.scale, alpha, beta, delta)
    else:
        grads = torch.ops.vtrack.fda_attention_backward(go, q, k, v, out, lse, ctx.scale, mask, alpha, beta, delta)
    dq, dk, dv, da, db, dd = grads
    return (dq, dk, dv, None, None, None, None, None, None,
            _coef_grad(da, alpha), _coef_grad(db, beta), _coef_grad(dd, delta))


def register_meta() -> bool:
    """Register fakes and autograd for ``torch.ops.vtrack.*`` once the library is loaded (idempotent).

    Returns False (doing nothing) when the extension cannot be loaded.
    """
    if _META_DONE[0]:
        return True
    if not _ext.load():
        return False
    with _LOCK:
        if _META_DONE[0]:
            return True
        lib = torch.library
        lib.register_fake("vtrack::topk_attention")(_fake_topk)
        lib.register_fake("vtrack::fda_attention")(_fake_fda)
        lib.register_fake("vtrack::ce_attention")(_fake_ce)
        lib.register_fake("vtrack::topk_attention_backward")(_fake_topk_bwd)
        lib.register_fake("vtrack::fda_attention_backward")(_fake_fda_bwd)
        lib.register_autograd("vtrack::topk_attention", _backward_topk, setup_context=_setup_topk)
        lib.register_autograd("vtrack::fda_attention", _backward_fda, setup_context=_setup_fda)
        lib.register_autograd("vtrack::ce_attention", _backward_ce, setup_context=_setup_ce)
        _META_DONE[0] = True
    return True


# ------------------------------------------------------------------------------------------------
# Instruction-set path of the CPU kernels
# ------------------------------------------------------------------------------------------------

CPU_ISAS = ("avx512", "avx2", "baseline")


def isa(request: Optional[str] = None) -> Optional[str]:
    """The instruction-set path the CPU kernels take ("avx512", "avx2" or "baseline"; None without the library).

    One build holds the kernel engine compiled for each ISA and picks the widest one the CPU supports
    (CPUID) on first use; the environment variable ``VTRACK_CPU_ISA`` or ``request`` ("auto" or an ISA
    name) selects another one, which must be supported (ValueError otherwise).
    """
    if request is not None and request != "auto" and request not in CPU_ISAS:
        raise ValueError(f"request: expected 'auto' or one of {CPU_ISAS}, got {request!r}")
    if not _ext.load():
        return None
    return torch.ops.vtrack.cpu_isa(request or "")


def supported_isas() -> list[str]:
    """The ISA paths this CPU and build can run, widest first (empty without the library)."""
    return list(torch.ops.vtrack.cpu_isa_supported()) if _ext.load() else []


# ------------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------------

def _coef(x: Any, num_heads: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An FDA coefficient (float or [] / [H] tensor, possibly requiring grad) as an [H] tensor."""
    if isinstance(x, torch.Tensor):
        t = x.to(dtype=dtype)
        return t.reshape(1).expand(num_heads) if t.dim() == 0 else t
    return torch.full((num_heads,), float(x), dtype=dtype, device=device)


def run_ops(inputs: AttentionInputs) -> KernelResult:
    """Run ``inputs`` through ``torch.ops.vtrack.*`` (whichever device kernel the tensors select).

    The meta/autograd registration (:func:`register_meta`) is made here if the library was loaded
    after import (``load_extension()``)."""
    if not register_meta():
        raise RuntimeError(f"the compiled extension is unavailable: {_ext.unavailable_reason()}")
    q, k, v = inputs.q, inputs.k, inputs.v
    alpha = beta = delta = None
    if inputs.fda is not None:
        cdt, heads = _acc_dtype(q.dtype), q.shape[1]
        alpha, beta, delta = (_coef(c, heads, cdt, q.device)
                              for c in (inputs.fda.alpha, inputs.fda.beta, inputs.fda.delta))
    mask = inputs.key_padding_mask
    if inputs.ce is not None:
        ce = inputs.ce
        out, lse, index, score, keep_index = torch.ops.vtrack.ce_attention(
            q, k, v, ce.num_template, ce.keep, ce.template_index, inputs.scale, inputs.topk or 0, mask,
            alpha, beta, delta)
        return KernelResult(out, lse, index if inputs.topk else None, score, keep_index)
    if inputs.topk is not None:
        out, lse, index = torch.ops.vtrack.topk_attention(q, k, v, inputs.topk, inputs.scale, mask, alpha, beta, delta)
        return KernelResult(out, lse, index)
    out, lse = torch.ops.vtrack.fda_attention(q, k, v, inputs.scale, mask, alpha, beta, delta)
    return KernelResult(out, lse)


class CppBackend:
    """Fused C++ CPU kernels (OpenMP, vectorised; float32/float64, and bfloat16/float16 computed in float32)."""

    name = "cpp"
    capabilities = Capabilities(dtypes={"cpu": CPU_DTYPES})

    def unavailable_reason(self) -> Optional[str]:
        """Why the compiled library cannot run now (pure: never loads or builds it)."""
        why = _ext.status()
        return f"the compiled extension is unavailable: {why}" if why else None

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """Compute the :class:`KernelResult` with the CPU kernels."""
        return run_ops(inputs)


class CudaBackend:
    """CUDA kernels from ``vtrack._C`` (float16/bfloat16/float32, head dim <= 128)."""

    name = "cuda"
    capabilities = Capabilities(dtypes={"cuda": CUDA_DTYPES}, max_head_dim=CUDA_MAX_HEAD_DIM, max_batch_heads=65535,
                                max_topk_keys=CUDA_MAX_TOPK_KEYS)

    def unavailable_reason(self) -> Optional[str]:
        """Why the CUDA kernels cannot run now (pure: never loads or builds the library)."""
        why = _ext.status()
        if why:
            return f"the compiled extension is unavailable: {why}"
        if not _ext.cuda_kernels_built():
            return "vtrack._C was built without CUDA kernels (torch without CUDA or nvcc missing at build)"
        return None

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """Compute the :class:`KernelResult` with the CUDA kernels."""
        return run_ops(inputs)


# The fast path (an installed vtrack._C) registers everything at import; a missing library is
# only JIT-built by an explicit load_extension() (see _ext.load), never by a supported-check.
if _ext.fast_load():
    register_meta()

register_backend(CppBackend(), priority={"cpu": 50, "default": -1})
register_backend(CudaBackend(), priority={"cuda": 90, "default": -1})

def load_extension() -> bool:
    """Load vtrack._C, JIT-building the CPU kernels when it is not built (cached; ``VTRACK_NO_JIT=1``
    disables it), and register its meta kernels and autograd. True when the "cpp"/"cuda" ops exist.

    The only entry that builds: the dispatcher's supported-check never does (it reports why not)."""
    return register_meta()


__all__ = ["CppBackend", "CudaBackend", "load_extension", "register_meta", "run_ops", "isa", "supported_isas", "CPU_ISAS"]
