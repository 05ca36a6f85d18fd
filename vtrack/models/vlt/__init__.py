"""VLT (Guo et al., NeurIPS 2022): vision-language tracking with ModaMixer and an asymmetric
SPOS architecture search; ``model.head: scar`` gives VLT_SCAR, ``tt`` gives VLT_TT.

Registered as the tracker family ``"vlt"`` (see :mod:`vtrack.models.registry`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vtrack.config import from_dict
from vtrack.models.registry import FamilyBase, register_family
from vtrack.models.vlt.criterion import SCARCriterion, TTCriterion
from vtrack.models.vlt.heads import score_offset
from vtrack.models.vlt.language import (
    HashingLanguageEncoder,
    LanguageEncoder,
    TransformersLanguageEncoder,
    build_language_encoder,
)
from vtrack.models.vlt.modamixer import ModaMixer
from vtrack.models.vlt.model import VLTConfig, VLTModel, load_arch, save_arch
from vtrack.models.vlt.search import EvolutionConfig, SearchResult, evolutionary_search
from vtrack.models.vlt.supernet import Architecture, SupernetBackbone, SupernetSpec
from vtrack.models.vlt.tracker import VLTTracker, VLTTrackerConfig

__all__ = [
    "Architecture", "EvolutionConfig", "HashingLanguageEncoder", "LanguageEncoder", "ModaMixer",
    "SearchResult", "SupernetBackbone", "SupernetSpec", "TransformersLanguageEncoder", "VLTConfig",
    "VLTFamily", "VLTModel", "VLTTracker", "VLTTrackerConfig", "build_language_encoder",
    "evolutionary_search", "load_arch", "save_arch", "feature_size",
]


def feature_size(size: int, strides: list[int]) -> int:
    """Spatial size after the stem (stride 2) and the stages (``strides``), each rounding up."""
    for s in [2, *strides]:
        size = math.ceil(size / s)
    return size


def _model_cfg(cfg: dict[str, Any]) -> VLTConfig:
    return from_dict(VLTConfig, cfg.get("model", {}), "model")


def score_size(mcfg: VLTConfig) -> int:
    """Side of the head's score map for the configured crop sizes."""
    fx = feature_size(mcfg.search_size, mcfg.strides)
    if mcfg.head == "tt":
        return fx
    fz = feature_size(mcfg.template_size, mcfg.strides)
    crop = mcfg.scar.template_crop
    return fx - (fz if crop is None else min(crop, fz)) + 1


@register_family("vlt")
class VLTFamily(FamilyBase):
    """Builds VLT models, losses, processing settings and trackers from a config."""

    def parse_model(self, model_cfg: dict[str, Any]) -> VLTConfig:
        """The validated ``model`` section."""
        return from_dict(VLTConfig, model_cfg, "model")

    def build_model(self, model_cfg: dict[str, Any]) -> VLTModel:
        """The network from the ``model`` section."""
        return VLTModel(self.parse_model(model_cfg))

    def build_criterion(self, cfg: dict[str, Any]) -> nn.Module:
        """SiamCAR or TransT loss, by ``model.head``."""
        return SCARCriterion() if _model_cfg(cfg).head == "scar" else TTCriterion()

    def processing_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Pair sampling; SiamFC context crops; ``fcos`` labels on the head's score grid."""
        m = _model_cfg(cfg)
        t = from_dict(VLTTrackerConfig, cfg.get("tracker", {}), "tracker")
        s = score_size(m)
        stride = m.stride
        offset = score_offset(m.search_size, s, stride) if m.head == "scar" else stride / 2
        return {
            "sample_mode": "pair",
            "crop_mode": t.context,
            "template": {"size": m.template_size, "factor": t.template_factor, "scale_jitter": 0.0, "center_jitter": 0.0},
            "search": {"size": m.search_size, "factor": t.search_factor, "scale_jitter": 0.18, "center_jitter": 1.0},
            "labels": [{"name": "fcos", "size": s, "stride": stride, "offset": offset}],
            "sampler": {"max_gap": 100},
        }

    def commands(self) -> dict[str, str]:
        """``vtrack search``: the architecture search on a trained supernet."""
        return {"search": "vtrack.experiments.vlt_search"}

    def build_tracker(self, model: VLTModel, cfg: dict[str, Any], device: torch.device | str = "cpu") -> VLTTracker:
        """Inference tracker from the ``tracker`` section."""
        return VLTTracker(model, from_dict(VLTTrackerConfig, cfg.get("tracker", {}), "tracker"), device)
