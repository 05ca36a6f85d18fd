"""Registration of the ``sparsett`` tracker family (see :class:`vtrack.models.registry.TrackerFamily`)."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from vtrack.config import from_dict
from vtrack.models.registry import FamilyBase, register_family
from vtrack.models.sparsett.config import SparseTTModelConfig, SparseTTTrackerConfig
from vtrack.models.sparsett.criterion import SparseTTCriterion
from vtrack.models.sparsett.model import SparseTT, score_map_geometry, score_map_points
from vtrack.models.sparsett.tracker import SparseTTTracker


def _section(cfg: Any, name: str) -> dict[str, Any]:
    """``cfg[name]`` of a full config (``{}`` when absent)."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"cfg: expected a config mapping, got {type(cfg).__name__}")
    sec = cfg.get(name) or {}
    if not isinstance(sec, Mapping):
        raise TypeError(f"{name}: expected a mapping, got {sec!r}")
    return dict(sec)


def _model_config(cfg: Mapping[str, Any]) -> SparseTTModelConfig:
    """The validated ``model`` section of a full config."""
    return from_dict(SparseTTModelConfig, _section(cfg, "model"), "model")


@register_family("sparsett")
class SparseTTFamily(FamilyBase):
    """Family of SparseTT (see :class:`vtrack.models.registry.TrackerFamily`)."""

    def parse_model(self, model_cfg: Mapping[str, Any]) -> SparseTTModelConfig:
        """The validated ``model`` section (:class:`SparseTTModelConfig`)."""
        if not isinstance(model_cfg, Mapping):
            raise TypeError(f"model_cfg: expected the model section (a mapping), got {type(model_cfg).__name__}")
        return from_dict(SparseTTModelConfig, dict(model_cfg), "model")

    def build_model(self, model_cfg: Mapping[str, Any]) -> SparseTT:
        """The network from the ``model`` section (:class:`SparseTTModelConfig`)."""
        return SparseTT(self.parse_model(model_cfg))

    def build_criterion(self, cfg: Mapping[str, Any]) -> SparseTTCriterion:
        """Eq. 4 criterion; loss weights from the full config's ``model.loss``."""
        mc = _model_config(cfg)
        size, stride, _ = score_map_geometry(mc)
        return SparseTTCriterion(mc.loss, points=score_map_points(size, stride, mc.search_size))

    def processing_config(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Pair sampling, SiamFC context crops and SiamFC++ (``fcos``) labels on the model's score map.

        Returns a ``vtrack.train.schema.ProcessingConfig`` mapping; ``data.processing`` overrides
        it (e.g. the jitter). Jitter after the paper (sec. 4.1): scale in [1/1.3, 1.3] for both
        crops, translation up to 0.2 x the context side for the template and a SiamFC++-sized
        shift for the search region; template and search frames at most 100 frames apart (a default
        for ``data.sampler.max_gap``).
        """
        mc = _model_config(cfg)
        size, stride, offset = score_map_geometry(mc)
        return {
            "sample_mode": "pair",
            "crop_mode": "siamfc",
            "template": {"size": mc.template_size, "factor": 1.0, "scale_jitter": 0.3, "center_jitter": 0.8},
            "search": {"size": mc.search_size, "factor": mc.search_size / mc.template_size, "scale_jitter": 0.3,
                       "center_jitter": 1.8},
            "labels": [{"name": "fcos", "size": size, "stride": stride, "offset": offset}],
            "sampler": {"max_gap": 100},
        }

    def build_tracker(self, model: SparseTT, cfg: Mapping[str, Any], device: torch.device | str) -> SparseTTTracker:
        """Inference tracker; options from the ``tracker`` section (:class:`SparseTTTrackerConfig`)."""
        tcfg = from_dict(SparseTTTrackerConfig, _section(cfg, "tracker"), "tracker")
        return SparseTTTracker(model, tcfg, device)
