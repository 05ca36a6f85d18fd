"""Registry of tracker families (timm-style): a name maps to a family object that knows how to
build the model, its training criterion/processing and its inference tracker from a config.

Shared code looks families up by name through this registry and never branches on names.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

_FAMILIES: dict[str, Any] = {}
# Modules imported lazily the first time a name is looked up; each registers its families.
_BUILTIN_MODULES = (
    "vtrack.models.ostrack",
    "vtrack.models.sparsett",
    "vtrack.models.duml",
    "vtrack.models.vlt",
)
T = TypeVar("T")


def register_family(name: str) -> Callable[[T], T]:
    """Class/object decorator registering a tracker family under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def deco(obj: T) -> T:
        if name in _FAMILIES and _FAMILIES[name] is not obj:
            raise ValueError(f"name: tracker family {name!r} is already registered")
        _FAMILIES[name] = obj
        return obj

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # a real missing dependency inside the module: surface it
                raise


def get_family(name: str) -> Any:
    """Return the registered family ``name`` (instantiated if a class was registered)."""
    if name not in _FAMILIES:
        _load_builtins()
    if name not in _FAMILIES:
        raise ValueError(f"model.name: unknown tracker family {name!r}; known: {sorted(_FAMILIES)}")
    fam = _FAMILIES[name]
    return fam() if isinstance(fam, type) else fam


def list_families(include_private: bool = False) -> list[str]:
    """Names of the registered tracker families; names starting with ``_`` (test or scratch
    families) are listed only with ``include_private=True``."""
    _load_builtins()
    return sorted(n for n in _FAMILIES if include_private or not n.startswith("_"))
