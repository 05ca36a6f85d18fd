"""The "cpp" (C++ CPU) and "cuda" (CUDA) backends of :mod:`vtrack.kernels`.

The compiled library ``vtrack._C`` (``csrc/``) registers the fused backends' five operators
``torch.ops.vtrack.topk_attention``, ``fda_attention``, ``ce_attention``, ``topk_attention_backward``
and ``fda_attention_backward`` with the schemas of :data:`vtrack.kernels.fused.SCHEMAS` (the Triton
backend registers the same ops as ``vtrack::triton_*``).

This module registers their fake (meta) kernels and autograd formulas (:func:`vtrack.kernels.fused.register`,
so ``torch.compile(fullgraph=True)`` and ``torch.library.opcheck`` work) and plugs the two
backends into the dispatcher with their declared :class:`~vtrack.kernels.dispatch.Capabilities`.
``import vtrack._C`` happens at import; a JIT build only on an explicit
``vtrack.kernels.load_extension()`` (see :mod:`vtrack.kernels._ext`). When the library is missing
the backends report why (``unavailable_reason``, a pure read) and "auto" picks another backend.

Both backends return the dispatcher's one schema :class:`~vtrack.kernels.dispatch.KernelResult`
``(out, lse, index, score, keep_index)`` through :func:`vtrack.kernels.fused.run`.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

import torch

from . import _ext, fused
from .checks import AttentionInputs
from .dispatch import Capabilities, KernelResult, register_backend

logger = logging.getLogger(__name__)

CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
CUDA_MAX_HEAD_DIM = 128
CUDA_MAX_TOPK_KEYS = 8192

_LOCK = threading.Lock()
_META_DONE = [False]


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
        fused.register("")
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

    ``"bf16-amx"``: bfloat16 on the ``avx512bf16`` path with the forward's Q.K^T and dense P.V as AMX-BF16 tile
    products (TDPBF16PS, float32 accumulation; where the CPU has amx_tile + amx_bf16, the OS grants the tile data
    and ``VTRACK_CPU_AMX`` is not 0, see :func:`amx_status`), the other products as for ``"bf16-dot"``;
    ``"bf16-dot"``: bfloat16 with bf16 dot products (vdpbf16ps, float32 accumulation; the ``avx512bf16``
    path): the forward's Q.K^T and P.V, the dense backward's Q.K^T, dO.V^T and dS.K; ``"widened-f32"``: inputs widened exactly to
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
    if dtype == torch.bfloat16 and path == "avx512bf16":
        return str(torch.ops.vtrack.cpu_bf16_path())  # "bf16-amx" or "bf16-dot" (reads VTRACK_CPU_AMX now)
    return "widened-f32"


def amx_status() -> Optional[str]:
    """``""`` when the bfloat16 kernels run their block products on AMX-BF16 tiles, else why not (None without the library).

    The reasons: the CPU lacks amx_tile/amx_bf16, the OS does not enable the tile state or refuses this process
    the tile data (Linux ``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, asked once), or the environment
    variable ``VTRACK_CPU_AMX`` is ``0``/``off`` (read on every call). AMX is used only on the ``avx512bf16``
    ISA path (see :func:`compute_path`).
    """
    if not _ext.load():
        return None
    return str(torch.ops.vtrack.cpu_amx_status())


def amx_available() -> bool:
    """Whether the CPU and OS allow the AMX-BF16 path (whatever ``VTRACK_CPU_AMX`` says; False without the library)."""
    why = amx_status()
    return why is not None and why in ("", "VTRACK_CPU_AMX=0")


def amx_uses() -> int:
    """How many times a CPU kernel worker configured AMX tiles so far in this process (0 without the library).

    Each bfloat16 kernel call on the AMX path adds one per worker thread's task range, so a difference around a
    call tells whether AMX really ran."""
    return int(torch.ops.vtrack.cpu_amx_uses()) if _ext.load() else 0


# ------------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------------

def run_ops(inputs: AttentionInputs) -> KernelResult:
    """Run ``inputs`` through ``torch.ops.vtrack.*`` (whichever device kernel the tensors select).

    The meta/autograd registration (:func:`register_meta`) is made here if the library was loaded
    after import (``load_extension()``)."""
    if not register_meta():
        raise RuntimeError(f"the compiled extension is unavailable: {_ext.unavailable_reason()}")
    return fused.run(inputs, "")


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


__all__ = ["CppBackend", "CudaBackend", "load_extension", "register_meta", "run_ops", "isa", "supported_isas", "compute_path", "amx_status",
           "amx_available", "amx_uses", "CPU_ISAS"]
