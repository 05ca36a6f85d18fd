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

__all__ = ["BASELINES", "RUNTIMES", "build_tracker", "build_trained_tracker", "load_tracker_config", "load_model_weights",
           "load_state_into", "read_state_dict", "TrackerFactory"]

logger = logging.getLogger(__name__)

#: Baseline trackers buildable without a config.
BASELINES: dict[str, Callable[[], Tracker]] = {
    "static": StaticTracker,
    "csrt": lambda: OpenCVTracker("csrt"),
    "kcf": lambda: OpenCVTracker("kcf"),
}

#: Runtimes a trained tracker's network can run on (see vtrack.deploy).
RUNTIMES = ("pytorch", "onnxruntime")


def load_tracker_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a tracker YAML config (:func:`vtrack.config.load_yaml`, which also finds the packaged
    ``configs/...``) and check its ``model.name``."""
    from vtrack.config import load_yaml

    cfg = load_yaml(path)
    model = cfg.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ValueError(f"config: {path} needs a 'model' section with a 'name' (the tracker family)")
    return cfg


def load_state_into(model: Any, state: Any, *, source: str) -> None:
    """Load a state dict into ``model`` (strict; tensors are cast to the model's dtypes);
    ``source`` names where it came from in the error."""
    import torch

    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint: {source} holds neither a state dict nor a trainer checkpoint with a 'model' key")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint: {source} does not match the configured model: {err}") from None


def read_state_dict(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The weights of a checkpoint file: the trainer's ``{"model": state_dict, ...}`` format or a
    raw state dict (``torch.load(weights_only=True)`` on the CPU), or a ``.safetensors`` file."""
    from vtrack.io import load_torch_file

    p = Path(checkpoint)
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint: file not found: {p}")
        from safetensors.torch import load_file

        try:
            state = load_file(str(p))
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise ValueError(f"checkpoint: cannot read {p}: {err}") from None
    else:
        state = load_torch_file(p, what="checkpoint")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return state


def load_model_weights(model: Any, checkpoint: str | os.PathLike) -> None:
    """Load a checkpoint file (:func:`read_state_dict`) into ``model`` (strict)."""
    load_state_into(model, read_state_dict(checkpoint), source=str(checkpoint))


def build_trained_tracker(name: str, cfg: dict[str, Any], state: dict[str, Any] | None, *, device: Any = "cpu",
                          source: str = "state dict", runtime: str = "pytorch",
                          onnx_dir: str | os.PathLike | None = None, model: Any = None) -> Tracker:
    """Build the tracker of config ``cfg`` (sections ``model``/``tracker``) with the weights
    ``state`` on ``device``; its ``name`` is ``name``. ``model``: the model of ``cfg`` already
    built with its weights (then ``state`` is None). With ``runtime="onnxruntime"`` its network
    runs on onnxruntime (:func:`vtrack.deploy.use_onnxruntime`: the ONNX files of ``onnx_dir``,
    or exported on first use into the cache)."""
    import torch

    from vtrack.models import get_family

    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict) or "name" not in cfg["model"]:
        raise ValueError(f"config: expected a mapping with a 'model' section naming the family, got {type(cfg).__name__}")
    family = get_family(cfg["model"]["name"])
    if (model is None) == (state is None):
        raise ValueError("state/model: expected exactly one (the weights, or the model already holding them)")
    if model is None:
        model = family.build_model(cfg["model"])
        load_state_into(model, state, source=source)
    dev = torch.device(device)
    model = model.to(dev).eval()
    tracker = family.build_tracker(model, cfg, dev)
    if not isinstance(tracker, Tracker):
        raise TypeError(f"model.name: family {cfg['model']['name']!r} built {type(tracker).__name__}, not a Tracker")
    tracker.name = name
    if _check_runtime(runtime, onnx_dir) == "onnxruntime":
        from vtrack.deploy import use_onnxruntime

        use_onnxruntime(tracker, cfg, onnx_dir=onnx_dir)
    return tracker


def _check_runtime(runtime: str, onnx_dir: Any) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime: expected one of {RUNTIMES}, got {runtime!r}")
    if onnx_dir is not None and runtime != "onnxruntime":
        raise ValueError("onnx_dir: ONNX files are only used with runtime='onnxruntime'")
    return runtime


def build_tracker(
    spec: str,
    *,
    device: Any = "cpu",
    config: str | os.PathLike | dict[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    runtime: str = "pytorch",
    onnx_dir: str | os.PathLike | None = None,
) -> Tracker:
    """Build a tracker.

    Args:
        spec: ``"static"``, ``"csrt"``, ``"kcf"``, the name of a model-zoo tracker
            (:mod:`vtrack.zoo`, without ``checkpoint``; with ``config``, the entry's weights run
            with that config, whose ``model`` section must equal the entry's), or (with ``config``
            and ``checkpoint``) a name for a trained tracker; a path to a ``.yaml``/``.yml`` file
            is taken as the config itself.
        device: torch device for trained trackers (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        config: YAML path (or an already loaded dict) with sections ``model`` and ``tracker``.
        checkpoint: weights for the model (required for trained trackers).
        runtime: ``"pytorch"`` or ``"onnxruntime"`` (the network's branches exported to ONNX,
            see :func:`vtrack.deploy.use_onnxruntime`; pre- and post-processing unchanged).
        onnx_dir: with onnxruntime, a folder written by ``vtrack export`` (default: export on
            first use into the cache).

    Raises:
        ValueError: unknown spec, missing checkpoint, bad config or checkpoint.
        vtrack.zoo.ZooWeightsError: a zoo tracker's weights file is missing, truncated or altered.
        TrackerUnavailableError: CSRT/KCF without opencv-contrib.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec: expected a tracker name (str), got {spec!r}")
    _check_runtime(runtime, onnx_dir)
    if spec in BASELINES:
        if runtime != "pytorch":
            raise ValueError(f"runtime: the baseline tracker {spec!r} has no network to run on {runtime}")
        if config is not None or checkpoint is not None:
            raise ValueError(f"config/checkpoint: the baseline tracker {spec!r} takes neither")
        return BASELINES[spec]()
    if config is None and spec.endswith((".yaml", ".yml")):
        config = spec
    if checkpoint is None:
        from vtrack import zoo

        if zoo.is_zoo_name(spec):  # the entry's weights, with its own config or with ``config``
            cfg = None if config is None else config if isinstance(config, dict) else load_tracker_config(config)
            return zoo.build_zoo_tracker(spec, device=device, runtime=runtime, onnx_dir=onnx_dir, config=cfg)
    if config is None and checkpoint is None:
        names = [e.name for e in zoo.list_entries()]
        raise ValueError(
            f"tracker: unknown tracker {spec!r}; expected one of {sorted(BASELINES)}, a zoo tracker "
            f"({', '.join(names) if names else 'the zoo is empty'}; see `vtrack zoo list`) "
            "or a trained tracker given by a config (--config) and a checkpoint"
        )
    if config is None:
        raise ValueError(f"config: the trained tracker {spec!r} needs a config (--config) with its checkpoint")
    if checkpoint is None:
        raise ValueError(f"checkpoint: the trained tracker {spec!r} needs a checkpoint (--checkpoint)")
    cfg = config if isinstance(config, dict) else load_tracker_config(config)
    from vtrack.models.registry import list_families

    if spec in list_families(include_private=True) and spec != cfg["model"]["name"]:
        raise ValueError(f"tracker: {spec!r} names a tracker family but the config's model.name is "
                         f"{cfg['model']['name']!r}; use --tracker {cfg['model']['name']} (or a free label "
                         "that is not a family name) with this config")
    name = Path(spec).stem if spec.endswith((".yaml", ".yml")) else spec
    return build_trained_tracker(name, cfg, read_state_dict(checkpoint), device=device, source=str(checkpoint),
                                 runtime=runtime, onnx_dir=onnx_dir)


@dataclass(frozen=True)
class TrackerFactory:
    """Picklable recipe for :func:`build_tracker` (each runner worker builds its own tracker)."""

    spec: str
    device: str = "cpu"
    config: str | None = None
    checkpoint: str | None = None
    runtime: str = "pytorch"
    onnx_dir: str | None = None

    def __call__(self) -> Tracker:
        """Build a fresh tracker."""
        return build_tracker(self.spec, device=self.device, config=self.config, checkpoint=self.checkpoint,
                             runtime=self.runtime, onnx_dir=self.onnx_dir)

    @property
    def name(self) -> str:
        """Display name of the tracker (the config file stem for a bare config path)."""
        if self.spec.endswith((".yaml", ".yml")):
            return Path(self.spec).stem
        return self.spec
