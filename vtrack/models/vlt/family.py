"""Registration of the ``vlt`` tracker family (see :class:`vtrack.models.registry.TrackerFamily`)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vtrack.config import from_dict
from vtrack.models.registry import FamilyBase, register_family
from vtrack.models.vlt.config import VLTConfig, VLTTrackerConfig
from vtrack.models.vlt.criterion import SCARCriterion, TTCriterion
from vtrack.models.vlt.heads import score_offset
from vtrack.models.vlt.model import VLTModel, score_size
from vtrack.models.vlt.tracker import VLTTracker


def _model_cfg(cfg: dict[str, Any]) -> VLTConfig:
    return from_dict(VLTConfig, cfg.get("model", {}), "model")


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

    def extras(self, cfg: dict[str, Any]) -> tuple[str, ...]:
        """The ``text`` extra for the transformers and MiniLM language encoders; none for hashing."""
        return ("text",) if _model_cfg(cfg).language.kind in ("transformers", "minilm") else ()

    def deploy_note(self, cfg: dict[str, Any]) -> str:
        """The sentence vector (once per sequence) stays in PyTorch."""
        return "the sentence vector (text encoder or template embedding, once per sequence) runs in PyTorch"
