"""Loader of the compiled extension ``vtrack._C`` (C++ CPU kernels, CUDA kernels when built with CUDA).

Order of attempts:

1. at ``import vtrack.kernels``: ``import vtrack._C`` (:func:`fast_load`) - built by ``pip install
   -e .`` / ``python setup.py build_ext --inplace``; when it fails, one warning says why;
2. only when asked (:func:`load`, public as ``vtrack.kernels.load_extension()``; the tests and
   ``onnx`` export ask): a JIT build of the CPU kernels with
   :func:`torch.utils.cpp_extension.load` (ninja), cached in torch's extension directory
   (``TORCH_EXTENSIONS_DIR``); disabled by ``VTRACK_NO_JIT=1``;
3. otherwise the ops stay unavailable and the dispatcher falls back to the other backends (the
   reason, :func:`status`, appears in the "cpp"/"cuda" backends' not-supported reasons).

The dispatcher's supported-check reads :func:`status` only: it never imports, builds or compiles.

This module also holds the compiler-flag logic shared with ``setup.py`` (which imports it by path,
so it must only import the standard library at module level).
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"


def source_files(with_cuda: bool = False) -> list[str]:
    """Absolute paths of the extension sources: ops.cpp, cpu/*.cpp and (``with_cuda``) cuda/*.cu."""
    files = [CSRC / "ops.cpp", *sorted((CSRC / "cpu").glob("*.cpp"))]
    if with_cuda:
        files += sorted((CSRC / "cuda").glob("*.cu"))
    return [str(f) for f in files]


def _compiler() -> str:
    return os.environ.get("CXX", "c++")


@functools.lru_cache(maxsize=None)
def compiler_accepts(flags: tuple[str, ...], compiler: Optional[str] = None) -> bool:
    """Whether the C++ compiler compiles (and links, for OpenMP) a tiny program with ``flags``."""
    compiler = compiler or _compiler()
    if shutil.which(compiler) is None:
        return False
    src = "#include <cmath>\nint main() { float x = 1.0f; return static_cast<int>(std::exp(x)) - 2; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.cpp"
        path.write_text(src)
        cmd = [compiler, *flags, str(path), "-o", str(Path(tmp) / "probe")]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
    return res.returncode == 0


def openmp_flags() -> list[str]:
    """-fopenmp when the compiler supports it, else -fopenmp-simd (vectorisation hints only), else nothing."""
    for flags in (("-fopenmp",), ("-fopenmp-simd",)):
        if compiler_accepts(flags):
            return list(flags)
    return []


def std_flags() -> list[str]:
    """-std=c++20 (what torch's headers are written for) when the compiler takes it, else -std=c++17."""
    return ["-std=c++20"] if compiler_accepts(("-std=c++20",)) else ["-std=c++17"]


def cpu_compile_flags() -> list[str]:
    """C++ flags of the CPU kernels: -O3, the C++ standard and OpenMP, probed at build time.

    There is deliberately no -march flag: the build runs on any CPU of its architecture. The kernel engine
    is compiled once per x86 ISA (csrc/cpu/isa_*.cpp, with target pragmas) and chosen at run time.
    """
    return ["-O3", *std_flags(), "-fno-math-errno", *openmp_flags()]


def cpu_link_flags() -> list[str]:
    """Link flags (OpenMP runtime when compiled with -fopenmp)."""
    return ["-fopenmp"] if "-fopenmp" in openmp_flags() else []


def nvcc_flags() -> list[str]:
    """nvcc flags of the CUDA kernels."""
    return ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]


def cuda_build_possible() -> bool:
    """True when torch has CUDA, nvcc is found and ``VTRACK_NO_CUDA`` is not set."""
    if os.environ.get("VTRACK_NO_CUDA", "0") == "1":
        return False
    import torch
    from torch.utils import cpp_extension

    if torch.version.cuda is None:
        return False
    home = cpp_extension.CUDA_HOME
    return bool(home) and (Path(home) / "bin" / "nvcc").exists()


class _State:
    lock = threading.Lock()
    tried = False
    loaded_from: Optional[str] = None
    error: Optional[str] = None
    import_error: Optional[str] = None
    warned = False
    cuda_built: Optional[bool] = None  # read once when the ops load (torch.compile cannot trace the query)


def _warn_once(reason: str) -> None:
    if not _State.warned:
        _State.warned = True
        warnings.warn(f"vtrack C++ kernels unavailable, falling back to other backends: {reason}",
                      RuntimeWarning, stacklevel=3)


def _try_import() -> Optional[str]:
    try:
        importlib.import_module("vtrack._C")
        return None
    except ImportError as exc:  # missing, or built against another torch
        return f"import vtrack._C failed ({exc})"
    except OSError as exc:
        return f"import vtrack._C failed ({exc})"


def _try_jit() -> Optional[str]:
    if os.environ.get("VTRACK_NO_JIT", "0") == "1":
        return "JIT build disabled (VTRACK_NO_JIT=1)"
    if not (CSRC / "ops.cpp").exists():
        return f"no C++ sources at {CSRC} for a JIT build"
    try:
        from torch.utils import cpp_extension

        if not cpp_extension.is_ninja_available():
            return "JIT build needs ninja (pip install ninja)"
        logger.info("building the vtrack C++ kernels with torch.utils.cpp_extension.load (first use, cached)")
        cpp_extension.load(
            name="vtrack_C_jit",
            sources=source_files(with_cuda=False),
            extra_cflags=cpu_compile_flags(),
            extra_ldflags=cpu_link_flags(),
            is_python_module=False,
            verbose=False,
        )
        return None
    except Exception as exc:  # compiler missing or failing: report why, never crash the import
        return f"JIT build failed ({type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''})"


def _mark_loaded(source: str) -> None:
    """Record where the ops came from and whether they have CUDA kernels (called under the lock)."""
    _State.loaded_from = source
    _State.cuda_built = _has_cuda_kernels()


def _has_cuda_kernels() -> bool:
    """Whether the registered vtrack ops have kernels for the CUDA dispatch key (not traceable by
    torch.compile: read once and kept in ``_State.cuda_built``)."""
    import torch

    return bool(torch._C._dispatch_has_kernel_for_dispatch_key("vtrack::topk_attention", "CUDA"))


def ops_registered() -> bool:
    """Whether the vtrack operators are registered with torch (by whichever library)."""
    import torch

    try:
        return hasattr(torch.ops.vtrack, "topk_attention")
    except (AttributeError, RuntimeError):
        return False


def load() -> bool:
    """Load the extension once (import, else JIT build); True when ``torch.ops.vtrack`` ops exist.

    On failure, warns once with the reason and returns False; :func:`unavailable_reason` gives it.
    """
    with _State.lock:
        if _State.tried:
            return _State.error is None
        _State.tried = True
        if ops_registered():
            _mark_loaded("already registered")
            return True
        reasons = []
        err = _try_import()
        if err is None and ops_registered():
            _mark_loaded("vtrack._C")
            return True
        reasons.append(err or "vtrack._C imported but registered no ops")
        err = _try_jit()
        if err is None and ops_registered():
            _mark_loaded("jit")
            return True
        reasons.append(err or "JIT-built library registered no ops")
        _State.error = "; ".join(reasons)
        _warn_once(_State.error)
        return False


def fast_load() -> bool:
    """Only the cheap attempt: ``import vtrack._C`` (no JIT build). True when the ops exist.

    A failure warns once (with :func:`status`) and leaves :func:`load` free to try the JIT build later.
    """
    with _State.lock:
        if _State.tried:
            return _State.error is None
        if ops_registered():
            _State.tried = True
            _mark_loaded("already registered")
            return True
        err = _try_import()
        if err is None and ops_registered():
            _State.tried = True
            _mark_loaded("vtrack._C")
            return True
        _State.import_error = err or "vtrack._C imported but registered no ops"
    why = status()
    if why:
        _warn_once(why)
    return False


def _jit_hint() -> str:
    if os.environ.get("VTRACK_NO_JIT", "0") == "1":
        return "JIT build disabled (VTRACK_NO_JIT=1)"
    return "not JIT-built: vtrack.kernels.load_extension() builds it (cached), or build vtrack._C (make build)"


def status() -> Optional[str]:
    """None when the ops are loaded, else why not. A pure read of the loader's state: it never
    imports, loads or builds anything (what the dispatcher's supported-check calls)."""
    if _State.tried:
        return _State.error
    if ops_registered():
        return None
    first = _State.import_error or "vtrack._C not loaded"
    return f"{first}; {_jit_hint()}"


def unavailable_reason() -> Optional[str]:
    """None when the extension is loaded (loading it if needed, JIT build included), else why it is not."""
    return None if load() else _State.error


def loaded_from() -> Optional[str]:
    """"vtrack._C", "jit" or "already registered" once loaded, else None."""
    load()
    return _State.loaded_from


def cuda_kernels_built() -> bool:
    """Whether the loaded library has CUDA kernels (registered for the CUDA dispatch key). Pure:
    False when the library is not loaded (nothing is loaded or built here). Read once at load, so
    the dispatcher's check stays traceable by torch.compile (fullgraph)."""
    if status() is not None:
        return False
    if _State.cuda_built is None:  # registered by another library without load(): read it once
        _State.cuda_built = _has_cuda_kernels()
    return _State.cuda_built


__all__ = ["load", "fast_load", "status", "unavailable_reason", "loaded_from", "cuda_kernels_built", "source_files", "cpu_compile_flags",
           "cpu_link_flags", "nvcc_flags", "cuda_build_possible", "compiler_accepts", "ops_registered"]
