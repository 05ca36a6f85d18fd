"""The "cpp" (C++ CPU) and "cuda" (CUDA) backends of :mod:`vtrack.kernels`.

The compiled library ``vtrack._C`` (``csrc/``) registers the operators ``torch.ops.vtrack.*``:

* ``topk_attention(q, k, v, topk, scale, key_padding_mask, coef) -> (out, lse, index)``
* ``fda_attention(q, k, v, scale, key_padding_mask, coef) -> (out, lse)`` (dense attention when
  coef is None)
* ``ce_attention(q, k, v, num_template, keep, template_index, scale, topk, key_padding_mask, coef)
  -> (out, lse, index, score, keep_index)``
* ``topk_attention_backward`` / ``fda_attention_backward`` -> ``(dq, dk, dv, dcoef)`` (the gradients,
  also used by CE).

``coef`` is the FDA coefficients' one form below the dispatcher, shared with the Triton op: a [3, H]
tensor (rows alpha, beta, delta) in the accumulation dtype, or None
(:func:`vtrack.kernels.reference.packed_coef`); ``dcoef`` is its [3, H] gradient.

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
from .reference import compute_dtype as _acc_dtype
from .reference import packed_coef

logger = logging.getLogger(__name__)

CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
CUDA_MAX_HEAD_DIM = 128
CUDA_MAX_TOPK_KEYS = 8192

_LOCK = threading.Lock()
_META_DONE = [False]


# ------------------------------------------------------------------------------------------------
# Fake kernels
# ------------------------------------------------------------------------------------------------

def _fake_topk(q, k, v, topk, scale, key_padding_mask=None, coef=None):
    b, h, n, _ = q.shape
    width = min(topk, k.shape[2])
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, h, n, width), dtype=torch.int32))


def _fake_fda(q, k, v, scale, key_padding_mask=None, coef=None):
    b, h, n, _ = q.shape
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)))


def _fake_ce(q, k, v, num_template, keep, template_index, scale, topk=0, key_padding_mask=None, coef=None):
    b, h, n, _ = q.shape
    m = k.shape[2]
    width = min(topk, m) if topk > 0 else 0
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, h, n, width), dtype=torch.int32),
            q.new_empty((b, m - num_template), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, keep), dtype=torch.int64))


def _fake_grads(q, k, v, coef):
    dcoef = q.new_empty((0,), dtype=_acc_dtype(q.dtype)) if coef is None else torch.empty_like(coef)
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            torch.empty_like(k, memory_format=torch.contiguous_format),
            torch.empty_like(v, memory_format=torch.contiguous_format), dcoef)


def _fake_topk_bwd(grad_out, q, k, v, out, lse, index, scale, coef=None):
    return _fake_grads(q, k, v, coef)


def _fake_fda_bwd(grad_out, q, k, v, out, lse, scale, key_padding_mask=None, coef=None):
    return _fake_grads(q, k, v, coef)


# ------------------------------------------------------------------------------------------------
# Autograd
# ------------------------------------------------------------------------------------------------

def _grad_or_zeros(grad: Optional[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(out) if grad is None else grad


def _dcoef(dcoef: torch.Tensor, coef: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return dcoef if coef is not None else None


def _setup_topk(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, topk, scale, mask, coef = inputs
    out, lse, index = output
    ctx.save_for_backward(q, k, v, out, lse, index, coef)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse, index)


def _backward_topk(ctx: Any, grad_out, grad_lse, grad_index):
    q, k, v, out, lse, index, coef = ctx.saved_tensors
    dq, dk, dv, dcoef = torch.ops.vtrack.topk_attention_backward(
        _grad_or_zeros(grad_out, out), q, k, v, out, lse, index, ctx.scale, coef)
    return dq, dk, dv, None, None, None, _dcoef(dcoef, coef)


def _setup_fda(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, scale, mask, coef = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask, coef)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse)


def _backward_fda(ctx: Any, grad_out, grad_lse):
    q, k, v, out, lse, mask, coef = ctx.saved_tensors
    dq, dk, dv, dcoef = torch.ops.vtrack.fda_attention_backward(
        _grad_or_zeros(grad_out, out), q, k, v, out, lse, ctx.scale, mask, coef)
    return dq, dk, dv, None, None, _dcoef(dcoef, coef)


def _setup_ce(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, num_template, keep, template_index, scale, topk, mask, coef = inputs
    out, lse, index, score, keep_index = output
    ctx.save_for_backward(q, k, v, out, lse, index, mask, coef)
    ctx.scale = scale
    ctx.topk = topk
    ctx.mark_non_differentiable(lse, index, score, keep_index)


def _backward_ce(ctx: Any, grad_out, grad_lse, grad_index, grad_score, grad_keep):
    q, k, v, out, lse, index, mask, coef = ctx.saved_tensors
    go = _grad_or_zeros(grad_out, out)
    if ctx.topk > 0:
        dq, dk, dv, dcoef = torch.ops.vtrack.topk_attention_backward(go, q, k, v, out, lse, index, ctx.scale, coef)
    else:
        dq, dk, dv, dcoef = torch.ops.vtrack.fda_attention_backward(go, q, k, v, out, lse, ctx.scale, mask, coef)
    return dq, dk, dv, None, None, None, None, None, None, _dcoef(dcoef, coef)


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

CPU_ISAS = ("avx512bf16", "avx512", "avx2", "baseline")


def isa(request: Optional[str] = None) -> Optional[str]:
    """The instruction-set path the CPU kernels take ("avx512bf16", "avx512", "avx2" or "baseline"; None without the library).

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


def compute_path(dtype: torch.dtype) -> Optional[str]:
    """How the CPU kernels compute ``dtype`` on the ISA path in use (None without the library).

    ``"bf16-dot"``: bfloat16 forward with bf16 dot products (vdpbf16ps, float32 accumulation; the
    ``avx512bf16`` path), the backward widened to float32; ``"widened-f32"``: inputs widened exactly to
    float32 and the float32 engine (float16 always: rounding it to bf16 breaks the accuracy rule; bfloat16
    on CPUs without AVX512-BF16); ``"native"``: float32/float64. Never a silent reference run.
    """
    if dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype: expected float32, float64, bfloat16 or float16, got {dtype}")
    path = isa()
    if path is None:
        return None
    if dtype in (torch.float32, torch.float64):
        return "native"
    return "bf16-dot" if dtype == torch.bfloat16 and path == "avx512bf16" else "widened-f32"


# ------------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------------

def run_ops(inputs: AttentionInputs) -> KernelResult:
    """Run ``inputs`` through ``torch.ops.vtrack.*`` (whichever device kernel the tensors select).

    The meta/autograd registration (:func:`register_meta`) is made here if the library was loaded
    after import (``load_extension()``)."""
    if not register_meta():
        raise RuntimeError(f"the compiled extension is unavailable: {_ext.unavailable_reason()}")
    q, k, v = inputs.q, inputs.k, inputs.v
    coef = packed_coef(inputs)
    mask = inputs.key_padding_mask
    if inputs.ce is not None:
        ce = inputs.ce
        out, lse, index, score, keep_index = torch.ops.vtrack.ce_attention(
            q, k, v, ce.num_template, ce.keep, ce.template_index, inputs.scale, inputs.topk or 0, mask, coef)
        return KernelResult(out, lse, index if inputs.topk else None, score, keep_index)
    if inputs.topk is not None:
        out, lse, index = torch.ops.vtrack.topk_attention(q, k, v, inputs.topk, inputs.scale, mask, coef)
        return KernelResult(out, lse, index)
    out, lse = torch.ops.vtrack.fda_attention(q, k, v, inputs.scale, mask, coef)
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


__all__ = ["CppBackend", "CudaBackend", "load_extension", "register_meta", "run_ops", "isa", "supported_isas", "compute_path", "CPU_ISAS"]
