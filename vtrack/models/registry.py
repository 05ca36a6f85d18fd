"""Registry of tracker families (timm-style): a name maps to a family class that knows how to
build the model, its training criterion/processing and its inference tracker from a config.

Every family is a class written against one contract, :class:`TrackerFamily`, and registered the
same way::

    @register_family("ostrack")
    class OSTrackFamily(FamilyBase):
        ...

``register_family`` checks the class against the contract (every hook present, callable and with
the contract's parameters) and raises a TypeError naming what is missing. Shared code looks
families up by name through :func:`get_family` and never branches on names.

Which config a hook receives is fixed by the contract, so no family has to guess:
``build_model`` and ``parse_model`` get the ``model`` section; every other hook gets the **full**
config (sections ``model``, ``data``, ``train``, ``tracker``).
"""
from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from torch import nn

    from vtrack.tracking.base import Tracker


@runtime_checkable
class TrackerFamily(Protocol):
    """The contract of a tracker family: one signature for each hook.

    ``name`` is set by :func:`register_family`.
    """

    name: str

    def parse_model(self, model_cfg: Mapping[str, Any]) -> Any:
        """Validate the ``model`` section; returns the family's model config dataclass."""

    def build_model(self, model_cfg: Mapping[str, Any]) -> nn.Module:
        """The network from the ``model`` section; ``model(batch: dict) -> dict``."""

    def build_criterion(self, cfg: Mapping[str, Any]) -> nn.Module:
        """Training loss from the full config; ``criterion(outputs, batch) -> (loss, stats)``."""

    def processing_config(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Crop sizes/factors and label generators (``vtrack.train.processing``) from the full config."""

    def build_tracker(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device | str) -> Tracker:
        """Inference tracker around a built model; options from the full config's ``tracker`` section."""

    def variants(self) -> dict[str, dict[str, Any]]:
        """Named variants as config overrides, ``{"CE off": {"model.backbone.ce_enabled": False}}``
        (dotted key paths of the full config -> value); ``{}`` when the family has none."""

    def commands(self) -> dict[str, str]:
        """Extra ``vtrack`` subcommands: command name -> module providing ``register(subparsers)``
        (outside ``vtrack.models``; the CLI imports it lazily); ``{}`` when none."""


# hook name -> parameter names after ``self`` (from the Protocol, so the two cannot drift apart)
HOOKS: dict[str, tuple[str, ...]] = {
    name: tuple(p for p in inspect.signature(fn).parameters if p != "self")
    for name, fn in vars(TrackerFamily).items()
    if inspect.isfunction(fn) and not name.startswith("_")
}


class FamilyBase:
    """Optional base class with the contract's defaults: no variants, no extra commands."""

    name: str = ""

    def variants(self) -> dict[str, dict[str, Any]]:
        """No variants."""
        return {}

    def commands(self) -> dict[str, str]:
        """No extra commands."""
        return {}

    def deploy_note(self, cfg: dict[str, Any]) -> str:
        """What of the tracker of ``cfg`` stays in PyTorch on the onnxruntime runtime ("" = nothing:
        every network call is an exported branch). Optional hook, read by ``vtrack bench deploy``."""
        return ""

    def extras(self, cfg: dict[str, Any]) -> tuple[str, ...]:
        """The optional extras (keys of :data:`vtrack.extras.EXTRAS`) that building the tracker of
        ``cfg`` needs; ``()`` = none. Optional hook, read by the model zoo and ``vtrack demo``."""
        return ()


_FAMILIES: dict[str, type] = {}
_INSTANCES: dict[str, TrackerFamily] = {}
# Modules imported lazily the first time a name is looked up; each registers its families.
_BUILTIN_MODULES = (
    "vtrack.models.ostrack",
    "vtrack.models.sparsett",
    "vtrack.models.duml",
    "vtrack.models.vlt",
)
T = TypeVar("T", bound=type)


def check_family(cls: Any, name: str = "") -> None:
    """Raise TypeError unless ``cls`` is a class implementing every :class:`TrackerFamily` hook
    with the contract's parameters."""
    label = f"tracker family {name!r}" if name else "tracker family"
    if not isinstance(cls, type):
        raise TypeError(f"{label}: expected a class implementing TrackerFamily, got an instance of "
                        f"{type(cls).__name__} (register the class, not an object)")
    missing = [h for h in HOOKS if not callable(getattr(cls, h, None))]
    if missing:
        raise TypeError(f"{label}: {cls.__name__} is missing the hook(s) {missing} of "
                        "vtrack.models.registry.TrackerFamily (see docs/design.md)")
    for hook, params in HOOKS.items():
        got = tuple(p for p in inspect.signature(getattr(cls, hook)).parameters if p != "self")
        if got != params:
            raise TypeError(f"{label}: {cls.__name__}.{hook} takes {list(got)}; "
                            f"the TrackerFamily contract expects {list(params)}")


def register_family(name: str) -> Callable[[T], T]:
    """Class decorator registering a tracker family class under ``name`` (checked against
    :class:`TrackerFamily`; the class's ``name`` attribute is set to ``name``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def deco(cls: T) -> T:
        check_family(cls, name)
        if name in _FAMILIES and _FAMILIES[name] is not cls:
            raise ValueError(f"name: tracker family {name!r} is already registered")
        if "name" not in vars(cls):
            cls.name = name  # type: ignore[attr-defined]
        _FAMILIES[name] = cls
        _INSTANCES.pop(name, None)
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # a real missing dependency inside the module: surface it
                raise


def get_family(name: str) -> TrackerFamily:
    """The family registered as ``name`` (one shared instance of its class)."""
    if not isinstance(name, str):
        raise TypeError(f"model.name: expected a tracker family name (str), got {type(name).__name__}")
    if name not in _FAMILIES:
        _load_builtins()
    if name not in _FAMILIES:
        raise ValueError(f"model.name: unknown tracker family {name!r}; known: {list_families()}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _FAMILIES[name]()
    return _INSTANCES[name]


def list_families(include_private: bool = False) -> list[str]:
    """Names of the registered tracker families; names starting with ``_`` (test or scratch
    families) are listed only with ``include_private=True``."""
    _load_builtins()
    return sorted(n for n in _FAMILIES if include_private or not n.startswith("_"))
