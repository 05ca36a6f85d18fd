"""Compatibility shims, each applied only when needed.

The PyPI torchvision wheel is a CUDA build. Next to a CPU-only torch its compiled ops do not
load and ``import torchvision`` (hence ``import timm``) fails with
"operator torchvision::nms does not exist". Defining the two op schemas first lets the Python
part import; torchvision.ops stays unavailable then (vtrack reads images with OpenCV).
"""
from __future__ import annotations

import logging
import types

import torch

log = logging.getLogger(__name__)
_LIB: torch.library.Library | None = None


def _torchvision_ops_missing() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute access resolves the op
    except (AttributeError, RuntimeError):
        return True
    return False


def ensure_torchvision_importable() -> None:
    """Define torchvision::nms/qnms schemas when the compiled torchvision ops are missing."""
    global _LIB
    if _LIB is not None:
        return
    try:
        import torchvision  # noqa: F401

        return
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
    except ImportError:
        return
    if not _torchvision_ops_missing():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB = lib
    import sys

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    log.debug("defined torchvision::nms/qnms schemas (CPU torch with a CUDA torchvision wheel)")


def import_timm() -> types.ModuleType:
    """Import timm after applying the torchvision shim if needed."""
    ensure_torchvision_importable()
    import timm

    return timm
