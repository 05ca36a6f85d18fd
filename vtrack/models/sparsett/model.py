"""SparseTT network: Swin backbone, target focus network (sparse transformer), double-head predictor.

Fu et al., "SparseTT: Visual Tracking with Sparse Transformers", IJCAI 2022.

* Feature extraction: one Swin backbone shared by template and search; stage-3 features
  (stride 16), then a 1x1 conv + BN per branch to ``dim`` channels.
* Target focus network: an encoder of N post-norm layers (MSA + FFN) over the template tokens
  plus a spatial position encoding (eq. 1) and a decoder of M layers over the search tokens plus
  their position encoding (eq. 2), each layer = sparse MSA (top-K, :func:`vtrack.kernels.topk_attention`)
  -> cross-attention to the encoded template -> FFN, post-norm (eq. 3).
* Double-head predictor (:mod:`vtrack.models.sparsett.heads`).

Outputs (``model(batch)``, same in train and eval mode): ``cls_fc``/``cls_conv`` logits
[B, 1, S, S], ``ltrb_fc``/``ltrb_conv`` [B, 4, S, S] distances in search-crop pixels from the
score-map points (:attr:`SparseTT.points`, [S*S, 2] xy), ``box`` [B, S*S, 4] xyxy boxes of the
conv-head, ``score`` [B, S, S] the fused foreground probability and ``points`` [S*S, 2].
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import nn

from vtrack.models.backbones.swin import SwinBackbone, swin_feature_size
from vtrack.models.layers.transformer import (TransformerDecoder, TransformerEncoder,
                                              sine_position_encoding)
from vtrack.models.sparsett.config import SparseTTModelConfig
from vtrack.models.sparsett.heads import DoubleHead, fuse_scores
from vtrack.models.layers.backend import BackendSwitchable

__all__ = ["SparseTT", "score_map_geometry", "score_map_points"]


def score_map_points(size: int, stride: int, crop_size: int) -> torch.Tensor:
    """Centres [size*size, 2] (x, y) of a ``size x size`` score map with ``stride`` in a crop.

    The grid is centred on the crop centre ``crop_size / 2`` (continuous pixel coordinates, pixel
    i covering [i, i+1)), row-major like ``feature.flatten(2)``.
    """
    for name, val in (("size", size), ("stride", stride), ("crop_size", crop_size)):
        if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise ValueError(f"{name}: expected a positive int, got {val!r}")
    coords = crop_size / 2.0 + (torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0) * stride
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1)


def score_map_geometry(cfg: SparseTTModelConfig) -> tuple[int, int, float]:
    """``(size, stride, offset)`` of the score map of a config, without building the model.

    Point (i, j) of the ``size x size`` map sits at pixel ``(offset + j*stride, offset + i*stride)``
    of the search crop (the ``fcos`` label generator's convention).
    """
    if not isinstance(cfg, SparseTTModelConfig):
        raise TypeError(f"cfg: expected SparseTTModelConfig, got {type(cfg).__name__}")
    if "patch_size" in cfg.backbone_kwargs:
        patch = int(cfg.backbone_kwargs["patch_size"])
    else:
        m = re.search(r"patch(\d+)", cfg.backbone)
        patch = int(m.group(1)) if m else 4
    size = swin_feature_size(cfg.search_size, cfg.backbone_out_index, patch)
    stride = patch * 2 ** cfg.backbone_out_index
    return size, stride, cfg.search_size / 2.0 - (size - 1) / 2.0 * stride


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))


class SparseTT(BackendSwitchable, nn.Module):
    """The SparseTT tracker network (see the module docstring).

    Args:
        cfg: a :class:`SparseTTModelConfig` (or the ``model`` mapping of a config).
    """

    def __init__(self, cfg: SparseTTModelConfig | Mapping[str, Any]) -> None:
        super().__init__()
        if isinstance(cfg, Mapping):
            from vtrack.config import from_dict

            cfg = from_dict(SparseTTModelConfig, dict(cfg), "model")
        if not isinstance(cfg, SparseTTModelConfig):
            raise TypeError(f"cfg: expected SparseTTModelConfig or a mapping, got {type(cfg).__name__}")
        self.cfg = cfg
        self.backbone = SwinBackbone(cfg.backbone, out_index=cfg.backbone_out_index, pretrained=cfg.pretrained,
                                     drop_path_rate=cfg.drop_path_rate, model_kwargs=cfg.backbone_kwargs)
        self.stride = self.backbone.stride
        self.template_feat = self.backbone.output_size(cfg.template_size)
        self.search_feat = self.backbone.output_size(cfg.search_size)
        if (self.search_feat, self.stride) != score_map_geometry(cfg)[:2]:
            raise ValueError(f"model.backbone_kwargs: the backbone gives a {self.search_feat}x{self.search_feat} map at "
                             f"stride {self.stride}, the config implies {score_map_geometry(cfg)[:2]} (patch_size?)")
        c = self.backbone.out_channels
        self.adjust_z = _conv_bn(c, cfg.dim)
        self.adjust_x = _conv_bn(c, cfg.dim)
        layer_kw = dict(dropout=cfg.dropout, backend=cfg.backend)
        self.encoder = TransformerEncoder(cfg.num_encoder_layers, cfg.dim, cfg.num_heads, cfg.ffn_dim, **layer_kw)
        self.decoder = TransformerDecoder(cfg.num_decoder_layers, cfg.dim, cfg.num_heads, cfg.ffn_dim,
                                          self_topk=cfg.topk, **layer_kw)
        if cfg.pos_encoding == "learned":
            self.pos_z = nn.Parameter(torch.randn(self.template_feat ** 2, cfg.dim) * 0.02)
            self.pos_x = nn.Parameter(torch.randn(self.search_feat ** 2, cfg.dim) * 0.02)
        else:
            self.register_buffer("pos_z", sine_position_encoding(self.template_feat, self.template_feat, cfg.dim),
                                 persistent=False)
            self.register_buffer("pos_x", sine_position_encoding(self.search_feat, self.search_feat, cfg.dim),
                                 persistent=False)
        head_in = cfg.dim * 2 if cfg.head_input == "concat" else cfg.dim
        self.head = DoubleHead(head_in, cfg.head_channels, cfg.head_conv_blocks, stride=self.stride)
        self.register_buffer("points", score_map_points(self.search_feat, self.stride, cfg.search_size),
                             persistent=False)

    @property
    def score_size(self) -> int:
        """Side S of the score map."""
        return self.search_feat

    def _check_images(self, x: Any, name: str, size: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a float tensor [B, 3, {size}, {size}], got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise ValueError(f"{name}: expected shape [B, 3, {size}, {size}], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor (normalised image), got {x.dtype}")
        return x

    def encode_template(self, template: torch.Tensor) -> torch.Tensor:
        """Encoded template tokens [B, Hz*Wz, dim] from normalised template crops [B, 3, Hz, Wz]."""
        self._check_images(template, "template", self.cfg.template_size)
        z = self.adjust_z(self.backbone(template)).flatten(2).transpose(1, 2)
        return self.encoder(z + self.pos_z.to(z.dtype))

    def decode_search(self, search: torch.Tensor, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predictions for normalised search crops [B, 3, Hx, Wx] given the encoded template ``memory``."""
        self._check_images(search, "search", self.cfg.search_size)
        if not isinstance(memory, torch.Tensor) or memory.dim() != 3 or memory.shape[0] != search.shape[0]:
            raise ValueError(f"memory: expected encoded template tokens [{search.shape[0]}, L, {self.cfg.dim}], "
                             f"got {getattr(memory, 'shape', type(memory).__name__)}")
        fx = self.adjust_x(self.backbone(search))
        b, c, h, w = fx.shape
        x = fx.flatten(2).transpose(1, 2)
        y = self.decoder(x + self.pos_x.to(x.dtype), memory)
        feat = y.transpose(1, 2).reshape(b, c, h, w)
        if self.cfg.head_input == "concat":
            feat = torch.cat((feat, fx), dim=1)
        out = self.head(feat)
        ltrb = out["ltrb_conv"].flatten(2).transpose(1, 2)  # [B, S*S, 4]
        pts = self.points.to(ltrb.dtype)
        out["box"] = torch.cat((pts - ltrb[..., :2], pts + ltrb[..., 2:]), dim=-1)
        out["score"] = fuse_scores(torch.sigmoid(out["cls_fc"]), torch.sigmoid(out["cls_conv"]))[:, 0]
        out["points"] = pts
        return out

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Predictions for a pair batch with ``template`` and ``search`` images (see docs/design.md)."""
        if not isinstance(batch, Mapping):
            raise TypeError(f"batch: expected a mapping with 'template' and 'search', got {type(batch).__name__}")
        for key in ("template", "search"):
            if key not in batch:
                raise ValueError(f"batch: missing key {key!r} (have {sorted(batch)})")
        return self.decode_search(batch["search"], self.encode_template(batch["template"]))
