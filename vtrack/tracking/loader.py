"""Build any tracker from a short spec: a baseline name or a trained model (config + checkpoint).

``build_tracker("static")``, ``build_tracker("csrt")``, ``build_tracker("kcf")``, or
``build_tracker(name, config="ostrack.yaml", checkpoint="ckpt.pth", device="cuda")`` where the
config's ``model.name`` picks the family in :mod:`vtrack.models.registry`.
:class:`TrackerFactory` is the picklable form the parallel runner sends to its workers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vtrack.tracking.base import Tracker
from vtrack.tracking.baselines import OpenCVTracker, StaticTracker

__all__ = ["BASELINES", "build_tracker", "load_tracker_config", "load_model_weights", "TrackerFactory"]

logger = logging.getLogger(__name__)

#: Baseline trackers buildable without a config.
BASELINES: dict[str, Callable[[], Tracker]] = {
    "static": StaticTracker,
    "csrt": lambda: OpenCVTracker("csrt"),
    "kcf": lambda: OpenCVTracker("kcf"),
}


def load_tracker_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a tracker YAML config (:func:`vtrack.config.load_yaml`, which also finds the packaged
    ``configs/...``) and check its ``model.name``."""
    from vtrack.config import load_yaml

    cfg = load_yaml(path)
    model = cfg.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ValueError(f"config: {path} needs a 'model' section with a 'name' (the tracker family)")
    return cfg


def load_model_weights(model: Any, checkpoint: str | os.PathLike) -> None:
    """Load a checkpoint into ``model`` (strict): the trainer's ``{"model": state_dict, ...}``
    format or a raw state dict; ``torch.load(weights_only=True)`` on the CPU."""
    import torch

    p = Path(checkpoint)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint: file not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"checkpoint: cannot read {p}: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint: {p} holds neither a state dict nor a trainer checkpoint with a 'model' key")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint: {p} does not match the configured model: {err}") from None


def build_tracker(
    spec: str,
    *,
    device: Any = "cpu",
    config: str | os.PathLike | dict[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> Tracker:
    """Build a tracker.

    Args:
        spec: ``"static"``, ``"csrt"``, ``"kcf"``, or (with ``config``) a name for a trained
            tracker; a path to a ``.yaml``/``.yml`` file is taken as the config itself.
        device: torch device for trained trackers (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        config: YAML path (or an already loaded dict) with sections ``model`` and ``tracker``.
        checkpoint: weights for the model (required for trained trackers).

    Raises:
        ValueError: unknown spec, missing checkpoint, bad config or checkpoint.
        TrackerUnavailableError: CSRT/KCF without opencv-contrib.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec: expected a tracker name (str), got {spec!r}")
    if spec in BASELINES:
        if config is not None or checkpoint is not None:
            raise ValueError(f"config/checkpoint: the baseline tracker {spec!r} takes neither")
        return BASELINES[spec]()
    if config is None and spec.endswith((".yaml", ".yml")):
        config = spec
    if config is None:
        raise ValueError(
            f"tracker: unknown tracker {spec!r}; expected one of {sorted(BASELINES)} "
            "or a trained tracker given by a config (--config) and a checkpoint"
        )
    if checkpoint is None:
        raise ValueError(f"checkpoint: the trained tracker {spec!r} needs a checkpoint (--checkpoint)")
    import torch

    from vtrack.models import get_family

    cfg = config if isinstance(config, dict) else load_tracker_config(config)
    family = get_family(cfg["model"]["name"])
    model = family.build_model(cfg["model"])
    load_model_weights(model, checkpoint)
    dev = torch.device(device)
    model = model.to(dev).eval()
    tracker = family.build_tracker(model, cfg, dev)
    if not isinstance(tracker, Tracker):
        raise TypeError(f"model.name: family {cfg['model']['name']!r} built {type(tracker).__name__}, not a Tracker")
    if not spec.endswith((".yaml", ".yml")):
        tracker.name = spec
    return tracker


@dataclass(frozen=True)
class TrackerFactory:
    """Picklable recipe for :func:`build_tracker` (each runner worker builds its own tracker)."""

    spec: str
    device: str = "cpu"
    config: str | None = None
    checkpoint: str | None = None

    def __call__(self) -> Tracker:
        """Build a fresh tracker."""
        return build_tracker(self.spec, device=self.device, config=self.config, checkpoint=self.checkpoint)

    @property
    def name(self) -> str:
        """Display name of the tracker (the config file stem for a bare config path)."""
        if self.spec.endswith((".yaml", ".yml")):
            return Path(self.spec).stem
        return self.spec
