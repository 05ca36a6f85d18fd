"""Registration of the ``duml`` tracker family (see :class:`vtrack.models.registry.TrackerFamily`)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vtrack.models.duml.config import DuMLModelConfig, model_config, parse_model, tracker_config
from vtrack.models.duml.criterion import DuMLCriterion
from vtrack.models.duml.model import DuML
from vtrack.models.duml.tracker import DuMLTracker
from vtrack.models.registry import FamilyBase, register_family


@register_family("duml")
class DuMLFamily(FamilyBase):
    """DuML: OFC-5s + ONR dual-modal localization with IoU score voting (sequence-mode training)."""

    def parse_model(self, model_cfg: dict[str, Any]) -> DuMLModelConfig:
        """The validated ``model`` section."""
        return parse_model(model_cfg)

    def build_model(self, model_cfg: dict[str, Any]) -> nn.Module:
        """A :class:`DuML` network from the ``model`` section."""
        return DuML(parse_model(model_cfg))

    def build_criterion(self, cfg: dict[str, Any]) -> nn.Module:
        """The eq. 6 loss; weights from the full config's ``model.loss``."""
        return DuMLCriterion(model_config(cfg))

    def processing_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Sequence-mode crops in SiamFC geometry: every frame is a search-size crop.

        Support (3) and query (2) frames are search crops (``factor = search/template`` of the
        SiamFC context box); the template kernel is taken from the support features, so the
        processing's template crop is not used by the model. Jitter follows SiamRPN++'s search
        augmentation (scale 0.18, a shift of up to 0.75 target sizes).
        """
        mc = model_config(cfg)
        t, s = mc.template_size, mc.search_size
        return {
            "sample_mode": "sequence",
            "crop_mode": "siamfc",
            "pad": "mean",
            "template": {"size": t, "factor": 1.0, "scale_jitter": 0.05, "center_jitter": 0.0},
            "search": {"size": s, "factor": s / t, "scale_jitter": 0.18, "center_jitter": 1.5},
            "labels": [],
            "sampler": {"num_support": 3, "num_query": 2, "max_gap": 100},
            "normalize": True,
        }

    def build_tracker(self, model: nn.Module, cfg: dict[str, Any], device: str | torch.device = "cpu") -> DuMLTracker:
        """A :class:`DuMLTracker` with the ``tracker`` section's options."""
        return DuMLTracker(model, tracker_config(cfg), device)

    def deploy_note(self, cfg: dict[str, Any]) -> str:
        """The search branch is exported; initialisation and the online optimiser stay in PyTorch."""
        online = tracker_config(cfg).online and parse_model(cfg["model"]).mode in ("dual", "onr")
        return ("offline network exported (search branch); first-frame samples, template kernels "
                + ("and the online ONR filter (applied and optimised by steepest descent, online: true) "
                   if online else "") + "run in PyTorch around it")
