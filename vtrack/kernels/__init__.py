"""vtrack.kernels: fused attention ops for visual tracking (top-K sparse, force-directed, candidate elimination).

Public ops: :func:`topk_attention`, :func:`fda_attention`, :func:`ce_attention` and the composed
:func:`attention`. Each takes ``backend="auto"`` or a registered backend name; backends are listed
by :func:`registered_backends` and plugged in with :func:`register_backend` (see docs/kernels.md).
"""
from .checks import AttentionInputs, CEParams, FDAParams, build_inputs
from .dispatch import (ANY, Backend, Capabilities, KernelResult, available_backends, backend_reasons, capability_reasons,
                       check_backend, dispatch, get_backend, not_supported_reasons, register_backend, registered_backends,
                       select_backend, unregister_backend)
from .ops import ReferenceBackend, attention, ce_attention, fda_attention, topk_attention
from .sdpa import SdpaBackend


def load_extension() -> bool:
    """Load vtrack._C (JIT-building the CPU kernels when it is not built; ``VTRACK_NO_JIT=1`` disables
    that). The only call that builds: asking the dispatcher whether a backend runs never does."""
    from .cpp_ops import load_extension as _load

    return _load()


def _load_optional_backends() -> None:
    """Import the optional backend modules; each registers its backends on import.

    ``vtrack.kernels.triton`` (needs the ``triton`` package) and ``vtrack.kernels.cpp_ops`` (the
    compiled ``cpp``/``cuda`` backends, when that module exists). A backend that cannot be
    imported is skipped with a log message; the reference backend is always available.
    """
    import importlib
    import logging

    log = logging.getLogger(__name__)
    for mod in ("triton", "cpp_ops"):
        name = f"{__name__}.{mod}"
        try:
            importlib.import_module(name)
        except ImportError as err:
            level = logging.DEBUG if getattr(err, "name", None) == name else logging.WARNING
            log.log(level, "attention backend module %s not loaded: %s", name, err)


_load_optional_backends()

__all__ = [
    "ANY", "AttentionInputs", "Backend", "CEParams", "Capabilities", "FDAParams", "KernelResult", "ReferenceBackend",
    "SdpaBackend", "attention", "available_backends", "backend_reasons", "build_inputs", "capability_reasons",
    "ce_attention", "check_backend", "dispatch", "fda_attention", "get_backend", "load_extension",
    "not_supported_reasons", "register_backend", "registered_backends", "select_backend", "topk_attention",
    "unregister_backend",
]
