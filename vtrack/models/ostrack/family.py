"""Registration of the ``ostrack`` and ``esat`` tracker families (see :class:`vtrack.models.registry.TrackerFamily`)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from vtrack.models.ostrack.config import ModelSection, parse_model, parse_tracker
from vtrack.models.ostrack.criterion import OSTrackCriterion
from vtrack.models.ostrack.model import OSTrack
from vtrack.models.ostrack.tracker import OSTrackTracker
from vtrack.models.registry import FamilyBase, register_family

# ESAT = OSTrack + FDA (alpha = beta = 0.1, the paper's best; delta = 1/head_dim, see docs/ostrack.md)
# + self-supervised position loss (weights 0.01 abs, 0.1 pn).
ESAT_DEFAULTS: dict[str, Any] = {
    "backbone": {"fda": {"alpha": 0.1, "beta": 0.1, "delta": 1.0 / 64.0, "learnable": False}},
    "position": {"channels": 256, "num_layers": 3},
}


def _section(cfg: Mapping[str, Any], name: str) -> Any:
    if not isinstance(cfg, Mapping):
        raise TypeError(f"cfg: expected a config mapping, got {type(cfg).__name__}")
    return cfg.get(name)


@register_family("ostrack")
class OSTrackFamily(FamilyBase):
    """Family of the registry (see :class:`vtrack.models.registry.TrackerFamily`): model,
    criterion, processing, tracker. ``defaults`` is a ``model`` section preset merged under the
    user's config (ESAT's options in :class:`ESATFamily`)."""

    defaults: dict[str, Any] = {}

    def parse_model(self, model_cfg: Mapping[str, Any]) -> ModelSection:
        """Validate the ``model`` section with this family's defaults."""
        return parse_model(model_cfg, self.defaults)

    def build_model(self, model_cfg: Mapping[str, Any]) -> OSTrack:
        """Build the model from the ``model`` section."""
        return OSTrack(self.parse_model(model_cfg))

    def build_criterion(self, cfg: Mapping[str, Any]) -> nn.Module:
        """Training loss from the full config (uses ``model.loss`` and the crop size)."""
        m = self.parse_model(_section(cfg, "model") or {})
        return OSTrackCriterion(m.loss, m.search_size)

    def processing_config(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Crop sizes/factors, jitter and label generators for vtrack.train.processing (OSTrack's recipe)."""
        m = self.parse_model(_section(cfg, "model") or {})
        t = parse_tracker(_section(cfg, "tracker"))
        labels: list[dict[str, Any]] = [{"name": "gaussian_heatmap", "stride": m.backbone.patch_size}]
        if m.position is not None:
            labels.append({"name": "position", "stride": m.backbone.patch_size})
        return {
            "sample_mode": "pair",
            "crop_mode": "area",
            "template": {"size": m.template_size, "factor": t.template_factor, "scale_jitter": 0.0, "center_jitter": 0.0},
            "search": {"size": m.search_size, "factor": t.search_factor, "scale_jitter": 0.25, "center_jitter": 3.0},
            "labels": labels,
        }

    def variants(self) -> dict[str, dict[str, Any]]:
        """Early candidate elimination on and off (the same weights serve both)."""
        return {"CE on": {"model.backbone.ce_enabled": True}, "CE off": {"model.backbone.ce_enabled": False}}

    def build_tracker(self, model: nn.Module, cfg: Mapping[str, Any], device: torch.device | str = "cpu") -> OSTrackTracker:
        """Inference tracker around a built (trained) model; options from ``cfg["tracker"]``."""
        if not isinstance(model, OSTrack):
            raise TypeError(f"model: expected an OSTrack model built by this family, got {type(model).__name__}")
        return OSTrackTracker(model, parse_tracker(_section(cfg, "tracker")), device)


@register_family("esat")
class ESATFamily(OSTrackFamily):
    """ESAT: the OSTrack family with :data:`ESAT_DEFAULTS` (FDA in every layer, position head)."""

    defaults = ESAT_DEFAULTS
