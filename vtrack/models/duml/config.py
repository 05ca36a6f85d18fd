"""Validated option sets of DuML: ``model`` (architecture + loss) and ``tracker`` (inference)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vtrack.config import from_dict
from vtrack.tracking.postprocess import StateUpdateConfig

MODES = ("dual", "ofc", "onr")


@dataclass
class LossConfig:
    """Weights of eq. 6 and their settings (paper: lambda_r=1, lambda_a=10, lambda_b=1.2, lambda_o=1.2)."""

    robust: float = 1.0  # lambda_r: ONR hinge loss (outer loop)
    accurate: float = 10.0  # lambda_a: OFC focal loss
    box: float = 1.2  # lambda_b: L1 on anchor deltas
    iou: float = 1.2  # lambda_o: BCE on the IoU slot
    focal_gamma: float = 2.0
    atss_topk: int = 15
    hinge_threshold: float = 0.05  # DiMP LBHinge: labels below are negatives
    onr_init_weight: float = 1.0  # DiMP weights of the initial filter's / intermediate iterates' loss
    onr_iter_weight: float = 4.0


@dataclass
class DuMLModelConfig:
    """Architecture of a DuML model (the ``model`` config section)."""

    name: str = "duml"
    mode: Literal["dual", "ofc", "onr"] = "dual"
    backbone: str = "resnet50"
    backbone_width: float = 1.0  # multiplier of the ResNet's stage channels (0.5: half-width, CPU-sized)
    pretrained: str | None = None
    frozen_stages: int = 0
    out_indices: list[int] = field(default_factory=lambda: [2, 3, 4])
    channels: int = 256
    template_size: int = 127  # SiamFC exemplar size: fixes the crop scale (search = template * search/template)
    search_size: int = 255
    template_window: int = 8  # template kernel side in feature cells, taken around the target
    anchor_ratios: list[float] = field(default_factory=lambda: [0.33, 0.5, 1.0, 2.0, 3.0])
    anchor_scales: list[float] = field(default_factory=lambda: [8.0])
    onr_feature_dim: int = 256
    onr_filter_size: int = 5
    onr_train_iters: int = 5
    onr_num_dist_bins: int = 40
    onr_bin_displacement: float = 0.25
    onr_label_sigma: float = 2.0  # cells; Gaussian of the outer-loop labels and the initial inner label
    onr_init_step_length: float = 0.9
    onr_init_filter_reg: float = 0.1
    onr_min_filter_reg: float = 1e-3
    onr_mask_init_factor: float = 3.0
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class DuMLTrackerConfig:
    """Inference options (the ``tracker`` config section)."""

    search_size: int | None = None  # None: the model's; the paper uses 319 on NFS30/UAV123/LaSOT
    mu: float | None = None  # fusion weight of ONR; None: 0.8 for dual, 1 for onr-only, 0 for ofc-only
    score_voting: bool = True
    voting_eps: float = 0.01
    voting_sigma: float = 0.0025
    penalty_k: float = 0.05
    window_influence: float = 0.42
    # the shared state update; SiamRPN++'s size smoothing lr = 0.38 * penalty * score is
    # size_lr 0.38 with size_lr_by_score (a partial mapping starts from StateUpdateConfig's defaults)
    update: StateUpdateConfig = field(default_factory=lambda: StateUpdateConfig(size_lr=0.38, size_lr_by_score=True))
    context_amount: float = 0.5
    memory_size: int = 50
    init_iters: int = 10
    update_interval: int = 20
    update_iters: int = 2
    update_lr: float = 0.1
    hard_negative_iters: int = 1
    hard_negative_lr: float = 0.2
    init_samples_minimum_weight: float = 0.25
    target_not_found_threshold: float = 0.25
    hard_negative_threshold: float = 0.5
    target_neighborhood_scale: float = 2.2
    init_augment: list[str] = field(default_factory=lambda: ["identity", "fliplr", "blur", "rotate", "shift"])
    online: bool = True  # False freezes the ONR filter after initialisation


def model_config(cfg: dict[str, Any]) -> DuMLModelConfig:
    """The validated ``model`` section of a full config (sections ``model``, ``tracker``, ...)."""
    if isinstance(cfg, DuMLModelConfig):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg: expected a config mapping, got {type(cfg).__name__}")
    return parse_model(cfg.get("model") or {})


def parse_model(model_cfg: dict[str, Any]) -> DuMLModelConfig:
    """The validated ``model`` section itself."""
    mc = from_dict(DuMLModelConfig, model_cfg, "model")
    if mc.mode not in MODES:
        raise ValueError(f"model.mode: expected one of {MODES}, got {mc.mode!r}")
    for key in ("channels", "template_size", "search_size", "template_window", "onr_feature_dim", "onr_filter_size"):
        if getattr(mc, key) <= 0:
            raise ValueError(f"model.{key}: expected a positive int, got {getattr(mc, key)}")
    if mc.search_size < mc.template_size:
        raise ValueError(f"model.search_size: expected >= template_size ({mc.template_size}), got {mc.search_size}")
    if mc.onr_label_sigma <= 0:
        raise ValueError(f"model.onr_label_sigma: expected > 0, got {mc.onr_label_sigma}")
    if not 0 < mc.backbone_width <= 4:
        raise ValueError(f"model.backbone_width: expected a number in (0, 4], got {mc.backbone_width}")
    return mc


def tracker_config(cfg: dict[str, Any]) -> DuMLTrackerConfig:
    """The validated ``tracker`` section of a full config (missing section: defaults)."""
    if isinstance(cfg, DuMLTrackerConfig):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg: expected a config mapping, got {type(cfg).__name__}")
    tc = from_dict(DuMLTrackerConfig, cfg.get("tracker") or {}, "tracker")
    if tc.mu is not None and not 0.0 <= tc.mu <= 1.0:
        raise ValueError(f"tracker.mu: expected a float in [0, 1], got {tc.mu}")
    if tc.search_size is not None and tc.search_size < 1:
        raise ValueError(f"tracker.search_size: expected a positive int, got {tc.search_size}")
    if tc.memory_size < 1:
        raise ValueError(f"tracker.memory_size: expected >= 1, got {tc.memory_size}")
    allowed = {"identity", "fliplr", "blur", "rotate", "shift"}
    bad = [a for a in tc.init_augment if a not in allowed]
    if bad:
        raise ValueError(f"tracker.init_augment: expected items of {sorted(allowed)}, got {bad[0]!r}")
    return tc
