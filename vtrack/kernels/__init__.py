"""vtrack.kernels: fused attention ops for visual tracking (top-K sparse, force-directed, candidate elimination).

Public ops: :func:`topk_attention`, :func:`fda_attention`, :func:`ce_attention` and the composed
:func:`attention`. Each takes ``backend="auto"`` or a registered backend name; backends are listed
by :func:`registered_backends` and plugged in with :func:`register_backend` (see docs/kernels.md).
"""
from .checks import AttentionInputs, CEParams, FDAParams, build_inputs
from .dispatch import (Backend, available_backends, check_backend, dispatch, get_backend, not_supported_reasons, register_backend,
                       registered_backends, select_backend, unregister_backend)
from .ops import ReferenceBackend, attention, ce_attention, fda_attention, topk_attention


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
    "AttentionInputs", "Backend", "CEParams", "FDAParams", "ReferenceBackend", "attention", "available_backends",
    "build_inputs", "ce_attention", "check_backend", "dispatch", "fda_attention", "get_backend", "not_supported_reasons",
    "register_backend", "registered_backends", "select_backend", "topk_attention", "unregister_backend",
]
