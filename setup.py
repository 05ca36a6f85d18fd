"""Install vtrack and build its C++/CUDA extension vtrack._C (see docs/cpp.md).

The extension always holds the CPU kernels (csrc/ops.cpp, csrc/cpu/*.cpp); the CUDA kernels
(csrc/cuda/*.cu) are added when torch was built with CUDA and nvcc is found. Compiler flags
(-O3, OpenMP; never -march: the kernel engine is compiled once per x86 ISA and chosen at run time,
see csrc/cpu/attention_cpu.cpp) are chosen by probing the compiler at build time; see
``vtrack/kernels/_ext.py`` (shared with the JIT fallback). Environment switches:

* ``VTRACK_NO_EXT=1``: do not build the extension (the loader then JIT-builds it on first use);
* ``VTRACK_REQUIRE_EXT=1``: a failing extension build fails the install (default: a warning);
* ``VTRACK_NO_CUDA=1``: build the CPU kernels only even when CUDA is available.
"""
import importlib.util
import logging
import os
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("vtrack.setup")


def _load_build_helpers():
    """Import vtrack/kernels/_ext.py by path (without importing the vtrack package)."""
    spec = importlib.util.spec_from_file_location("_vtrack_ext_build", ROOT / "vtrack" / "kernels" / "_ext.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extensions():
    """The extension list and cmdclass, or ([], {}) when torch is missing or the build is disabled."""
    if os.environ.get("VTRACK_NO_EXT", "0") == "1":
        return [], {}
    try:
        import torch  # noqa: F401  (needs --no-build-isolation)
        from torch.utils import cpp_extension
    except ImportError:
        log.warning("torch is not importable at build time: vtrack._C is not built (it is JIT-built on first use)")
        return [], {}
    helpers = _load_build_helpers()
    optional = os.environ.get("VTRACK_REQUIRE_EXT", "0") != "1"
    cxx_flags = helpers.cpu_compile_flags()
    link_flags = helpers.cpu_link_flags()
    with_cuda = helpers.cuda_build_possible()
    rel = [os.path.relpath(p, ROOT) for p in helpers.source_files(with_cuda=with_cuda)]
    if with_cuda:
        ext = cpp_extension.CUDAExtension(
            "vtrack._C", rel,
            extra_compile_args={"cxx": cxx_flags + ["-DVTRACK_WITH_CUDA"], "nvcc": helpers.nvcc_flags()},
            extra_link_args=link_flags, optional=optional)
    else:
        ext = cpp_extension.CppExtension(
            "vtrack._C", rel, extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags, optional=optional)
    return [ext], {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

# Everything else (name, version, dependencies, extras, entry points, package data) is declared
# once in pyproject.toml's [project] table.
setup(ext_modules=ext_modules, cmdclass=cmdclass)
