"""vtrack.kernels: fused attention ops for visual tracking (top-K sparse, force-directed, candidate elimination).

Public ops: :func:`topk_attention`, :func:`fda_attention`, :func:`ce_attention` and the composed
:func:`attention`. Each takes ``backend="auto"`` or a registered backend name; backends are listed
by :func:`registered_backends` and plugged in with :func:`register_backend` (see docs/kernels.md).
"""
from .checks import AttentionInputs, CEParams, FDAParams, build_inputs
from .dispatch import (Backend, available_backends, dispatch, get_backend, not_supported_reasons, register_backend,
                       registered_backends, select_backend, unregister_backend)
from .ops import ReferenceBackend, attention, ce_attention, fda_attention, topk_attention

try:  # the Triton backend registers itself; Triton may be absent (e.g. some CPU-only installs)
    from . import triton as _triton_backend  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the install
    import logging as _logging

    _logging.getLogger(__name__).info("Triton backend unavailable: %s", _err)

__all__ = [
    "AttentionInputs", "Backend", "CEParams", "FDAParams", "ReferenceBackend", "attention", "available_backends",
    "build_inputs", "ce_attention", "dispatch", "fda_attention", "get_backend", "not_supported_reasons",
    "register_backend", "registered_backends", "select_backend", "topk_attention", "unregister_backend",
]
