"""Config schemas of the SparseTT family (``model``, ``loss`` options and ``tracker`` sections)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vtrack.tracking.crops import CropConfig
from vtrack.tracking.postprocess import StateUpdateConfig

__all__ = ["SparseTTLossConfig", "SparseTTModelConfig", "SparseTTTrackerConfig"]


@dataclass
class SparseTTLossConfig:
    """Loss weights of SparseTT eq. 4 and the focal/IoU loss options.

    ``L = w_fc [l_fc L_cls_fc + (1 - l_fc) L_box_fc] + w_conv [(1 - l_conv) L_cls_conv + l_conv L_box_conv]``
    """

    w_fc: float = 2.0
    lambda_fc: float = 0.7
    w_conv: float = 2.5
    lambda_conv: float = 0.8
    focal_alpha: float = 0.75
    focal_gamma: float = 2.0
    iou_mode: Literal["log", "linear"] = "log"

    def __post_init__(self) -> None:
        for name in ("w_fc", "w_conv", "focal_gamma"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
        for name in ("lambda_fc", "lambda_conv", "focal_alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")


@dataclass
class SparseTTModelConfig:
    """The ``model`` section of a SparseTT config.

    Attributes:
        name: family name, ``"sparsett"``.
        backbone: timm Swin variant.
        backbone_kwargs: timm constructor overrides (``embed_dim``, ``depths``, ``num_heads``,
            ``window_size``) for a reduced Swin.
        backbone_out_index: 0-based Swin stage used (2 = stage 3, stride 16).
        pretrained: local Swin checkpoint (timm or original layout), or null.
        drop_path_rate: backbone stochastic depth.
        template_size / search_size: crop sides in pixels (127 / 289 in the paper).
        dim: transformer width (256).
        num_heads, ffn_dim, dropout: transformer options (8, 2048, 0.1).
        num_encoder_layers: N (2); 0 removes the encoder.
        num_decoder_layers: M (2).
        topk: K of the sparse self-attention in the decoder (32); null = all keys (plain MSA).
        backend: kernel backend of the sparse attention.
        pos_encoding: ``"sine"`` (fixed, any size) or ``"learned"`` (one table per crop size).
        head_input: ``"concat"`` feeds [decoder output, search features] to the heads (the
            SparseTT release), ``"decoder"`` the decoder output only.
        head_channels: hidden width of both heads (1024 in the release).
        head_conv_blocks: L, blocks of the conv-head (8).
        loss: loss weights (eq. 4).
    """

    name: str = "sparsett"
    backbone: str = "swin_tiny_patch4_window7_224"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    backbone_out_index: int = 2
    pretrained: str | None = None
    drop_path_rate: float = 0.2
    template_size: int = 127
    search_size: int = 289
    dim: int = 256
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    topk: int | None = 32
    backend: str = "auto"
    pos_encoding: Literal["sine", "learned"] = "sine"
    head_input: Literal["concat", "decoder"] = "concat"
    head_channels: int = 1024
    head_conv_blocks: int = 8
    loss: SparseTTLossConfig = field(default_factory=SparseTTLossConfig)

    def __post_init__(self) -> None:
        for name in ("template_size", "search_size", "dim", "num_heads", "ffn_dim", "num_decoder_layers",
                     "head_channels", "head_conv_blocks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.num_encoder_layers < 0:
            raise ValueError(f"num_encoder_layers: expected an int >= 0, got {self.num_encoder_layers}")
        if self.topk is not None and self.topk <= 0:
            raise ValueError(f"topk: expected a positive int or null (all keys), got {self.topk}")
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads: expected a divisor of dim={self.dim}, got {self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a float in [0, 1), got {self.dropout}")


@dataclass
class SparseTTTrackerConfig:
    """The ``tracker`` section: SiamFC++-style post-processing of the fused score map.

    Attributes:
        penalty_k: scale/ratio change penalty ``exp(-(r_c * s_c - 1) * penalty_k)``.
        window_influence: weight of the cosine window in ``(1 - w) * score + w * window``.
        update: the shared state update (:class:`~vtrack.tracking.postprocess.StateUpdateConfig`);
            SparseTT's size smoothing ``lr = test_lr * penalised score`` is ``size_lr = test_lr``
            with ``size_lr_by_score: true`` (the default, the release's 0.95). A partial ``update``
            mapping starts from StateUpdateConfig's own defaults, so give both keys.
        crop: crop window placement (:class:`~vtrack.tracking.crops.CropConfig`).
        backend: kernel backend at inference (null keeps the model's).
    """

    penalty_k: float = 0.04
    window_influence: float = 0.21
    update: StateUpdateConfig = field(default_factory=lambda: StateUpdateConfig(size_lr=0.95, size_lr_by_score=True))
    crop: CropConfig = field(default_factory=CropConfig)
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.penalty_k < 0:
            raise ValueError(f"penalty_k: expected >= 0, got {self.penalty_k}")
        if not 0.0 <= self.window_influence <= 1.0:
            raise ValueError(f"window_influence: expected a value in [0, 1], got {self.window_influence}")
