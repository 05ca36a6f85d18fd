"""Config schemas of the OSTrack family (``model`` and ``tracker`` sections); ESAT uses the same ones."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from vtrack.models.layers.attention import FDAConfig
from vtrack.tracking.crops import CropConfig
from vtrack.tracking.postprocess import StateUpdateConfig


@dataclass
class BackboneSection:
    """One-stream ViT: geometry, kernel backend, pretrained file, candidate elimination, FDA."""

    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    backend: str = "auto"
    pretrained: str | None = None
    ce_enabled: bool = True
    ce_layers: list[int] = field(default_factory=lambda: [4, 7, 10])
    ce_keep_ratio: float = 0.7
    ce_start_epoch: int = 20
    ce_warmup_epochs: int = 80
    fda: FDAConfig | None = None  # force-directed attention (ESAT)

    def __post_init__(self) -> None:
        if not 0.0 < self.ce_keep_ratio <= 1.0:
            raise ValueError(f"backbone.ce_keep_ratio: expected a ratio in (0, 1], got {self.ce_keep_ratio}")
        bad = [i for i in self.ce_layers if not 1 <= i <= self.depth]
        if bad:
            raise ValueError(f"backbone.ce_layers: expected 1-based layer indices in 1..{self.depth}, got {self.ce_layers}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"backbone.num_heads: {self.num_heads} does not divide embed_dim {self.embed_dim}")


@dataclass
class HeadSection:
    """Centre head: conv-BN-ReLU layers per branch and the width of the first one."""

    channels: int = 256
    num_layers: int = 4


@dataclass
class PositionSection:
    """ESAT position head: L conv-BN-ReLU layers of width ``channels`` per input."""

    channels: int = 256
    num_layers: int = 3


@dataclass
class LossSection:
    """Loss weights: focal + 2 GIoU + 5 L1 (OSTrack) + 0.01 abs + 0.1 pn position losses (ESAT)."""

    focal: float = 1.0
    giou: float = 2.0
    l1: float = 5.0
    pos_abs: float = 0.01
    pos_pn: float = 0.1


@dataclass
class ModelSection:
    """``model`` section of an OSTrack/ESAT config."""

    name: str = "ostrack"
    template_size: int = 128
    search_size: int = 256
    backbone: BackboneSection = field(default_factory=BackboneSection)
    head: HeadSection = field(default_factory=HeadSection)
    position: PositionSection | None = None
    loss: LossSection = field(default_factory=LossSection)

    def __post_init__(self) -> None:
        for name in ("template_size", "search_size"):
            size = getattr(self, name)
            if size <= 0 or size % self.backbone.patch_size:
                raise ValueError(f"model.{name}: expected a positive multiple of patch_size {self.backbone.patch_size}, got {size}")


@dataclass
class TrackerSection:
    """``tracker`` section: crop context factors, Hann window and its weight, state update
    (:class:`~vtrack.tracking.postprocess.StateUpdateConfig`), online template update (every
    ``template_update_interval`` frames when the confidence reaches ``template_update_threshold``;
    0 = never), crop alignment (:class:`~vtrack.tracking.crops.CropConfig`), backend and CE overrides."""

    template_factor: float = 2.0
    search_factor: float = 4.0
    window: bool = True
    window_influence: float = 1.0
    update: StateUpdateConfig = field(default_factory=StateUpdateConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    template_update_interval: int = 0
    template_update_threshold: float = 0.7
    backend: str | None = None
    ce_enabled: bool | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.window_influence <= 1.0:
            raise ValueError(f"tracker.window_influence: expected a value in [0, 1], got {self.window_influence}")
        if isinstance(self.template_update_interval, bool) or self.template_update_interval < 0:
            raise ValueError(f"tracker.template_update_interval: expected an int >= 0 (0: never), "
                             f"got {self.template_update_interval!r}")
        if not 0.0 <= self.template_update_threshold <= 1.0:
            raise ValueError(f"tracker.template_update_threshold: expected a value in [0, 1], "
                             f"got {self.template_update_threshold}")


def parse_model(cfg: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> ModelSection:
    """Validate a ``model`` section (plain mapping) into :class:`ModelSection`.

    ``defaults`` (a family's preset, e.g. ESAT's FDA and position head) are merged under ``cfg``.
    """
    from vtrack.config import deep_merge, from_dict

    if not isinstance(cfg, Mapping):
        raise TypeError(f"model: expected a mapping, got {type(cfg).__name__}")
    return from_dict(ModelSection, deep_merge(dict(defaults or {}), dict(cfg)), "model")


def parse_tracker(cfg: Mapping[str, Any] | None) -> TrackerSection:
    """Validate a ``tracker`` section (None = defaults)."""
    from vtrack.config import from_dict

    return from_dict(TrackerSection, dict(cfg or {}), "tracker")

