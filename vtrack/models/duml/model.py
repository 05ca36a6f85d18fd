"""The DuML network: ResNet features, OFC-5s accurate localization, ONR robust localization.

Geometry: a crop of side ``N`` gives stride-8 features of side ``W``; feature cell ``k`` lies at
crop point ``N/2 + stride * (k - (W-1)/2)`` (continuous crop coordinates, as
:mod:`vtrack.tracking.crops`) (the grid is centred on the crop centre, as
SiamRPN++ anchors). The OFC score map (side ``P = W - template_window + 1``) is centred the
same way; the ONR map lives on the feature grid and is resampled onto the OFC grid for fusion.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrack.models.backbones.resnet import ResNetBackbone
from vtrack.models.duml.anchors import anchor_shapes, make_anchors
from vtrack.models.duml.config import DuMLModelConfig
from vtrack.models.duml.onr import InstanceL2Norm, SteepestDescentGN, apply_filter
from vtrack.models.layers.xcorr import DepthwiseXCorrHead


def pixel_to_cell(p: torch.Tensor, crop_size: int, feat_size: int, stride: int) -> torch.Tensor:
    """Crop-pixel coordinates -> feature-cell coordinates (see module docstring)."""
    return (p - crop_size / 2.0) / stride + (feat_size - 1) / 2.0


def cell_to_pixel(k: torch.Tensor, crop_size: int, feat_size: int, stride: int) -> torch.Tensor:
    """Feature-cell coordinates -> crop-pixel coordinates."""
    return crop_size / 2.0 + stride * (k - (feat_size - 1) / 2.0)


def sample_windows(feat: torch.Tensor, centers: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly sample ``size x size`` windows of ``feat`` [N,C,H,W] centred at ``centers`` [N,2] (x, y cells).

    Cells outside the map read zero. With integer-aligned centres this is an exact crop.
    """
    n, _, h, w = feat.shape
    offs = torch.arange(size, device=feat.device, dtype=feat.dtype) - (size - 1) / 2.0
    gx = centers[:, 0, None] + offs[None]  # [N,size]
    gy = centers[:, 1, None] + offs[None]
    gx = 2.0 * gx / max(w - 1, 1) - 1.0
    gy = 2.0 * gy / max(h - 1, 1) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [N,size,size,2]
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class DuML(nn.Module):
    """Dual-modal localization network (OFC-5s + ONR) with the IoU-aware box branch.

    ``forward(batch)`` takes a sequence-mode training batch (``train_images`` [B,S,3,H,W],
    ``train_boxes`` [B,S,4], ``test_images`` [B,Q,3,H,W], optional ``test_boxes``; boxes xywh in
    crop pixels) and returns a dict:

    - ``cls``: OFC logits ``[B*Q,A,P,P]`` (absent in ``onr`` mode),
    - ``box``: anchor deltas ``[B*Q,A,4,P,P]``; ``iou``: IoU logits ``[B*Q,A,P,P]``,
    - ``onr_scores``: ``[I+1,Q,B,W,W]`` query scores of the initial and each optimised filter
      (absent in ``ofc`` mode),
    - ``anchors`` ``[A,P,P,4]`` (cx, cy, w, h crop pixels), plus geometry (``crop_size``,
      ``feat_size``, ``stride``).

    The template kernels are the windows of the support frames' features around their target
    centres, averaged over the support set (the paper's joint-training rule, footnote 1).
    """

    def __init__(self, cfg: DuMLModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNetBackbone(
            cfg.backbone, cfg.out_indices, cfg.channels, cfg.pretrained, cfg.frozen_stages, width=cfg.backbone_width
        )
        self.stride = self.backbone.stride
        self.num_layers = len(cfg.out_indices)
        self.register_buffer("anchor_wh", anchor_shapes(self.stride, cfg.anchor_ratios, cfg.anchor_scales), persistent=False)
        self.num_anchors = self.anchor_wh.shape[0]
        self.use_ofc = cfg.mode in ("dual", "ofc")
        self.use_onr = cfg.mode in ("dual", "onr")
        c, a, n = cfg.channels, self.num_anchors, self.num_layers
        # Box branch (deltas + IoU slot) is shared by every mode: the paper unifies it (Sec. 3.1).
        self.box_heads = nn.ModuleList(DepthwiseXCorrHead(c, c, 5 * a) for _ in range(n))
        self.box_weight = nn.Parameter(torch.ones(n))
        if self.use_ofc:
            self.cls_heads = nn.ModuleList(DepthwiseXCorrHead(c, c, a) for _ in range(n))
            self.cls_weight = nn.Parameter(torch.ones(n))  # alpha^l (softmax-normalised)
        if self.use_onr:
            d, k = cfg.onr_feature_dim, cfg.onr_filter_size
            self.feat_weight = nn.Parameter(torch.ones(n))  # beta^l (softmax-normalised)
            self.onr_feat = nn.Sequential(
                nn.Conv2d(c, d, 3, padding=1, bias=False), InstanceL2Norm(scale=1.0 / math.sqrt(d * k * k))
            )
            self.optimizer = SteepestDescentGN(
                num_iter=cfg.onr_train_iters,
                init_step_length=cfg.onr_init_step_length,
                init_filter_reg=cfg.onr_init_filter_reg,
                min_filter_reg=cfg.onr_min_filter_reg,
                num_dist_bins=cfg.onr_num_dist_bins,
                bin_displacement=cfg.onr_bin_displacement,
                init_gauss_sigma=cfg.onr_label_sigma,
                mask_init_factor=cfg.onr_mask_init_factor,
            )

    # ------------------------------------------------------------------ building blocks
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Adjusted block2..block4 features ``[N,C,W,W]`` of normalised crops ``[N,3,H,W]``."""
        return self.backbone(images)

    def template_kernels(self, feats: list[torch.Tensor], centers_px: torch.Tensor, crop_size: int) -> list[torch.Tensor]:
        """Per-layer template windows ``[N,C,t,t]`` around target centres ``[N,2]`` (crop pixels)."""
        w = feats[0].shape[-1]
        cells = pixel_to_cell(centers_px, crop_size, w, self.stride)
        return [sample_windows(f, cells, self.cfg.template_window) for f in feats]

    def embed_kernels(self, kernels: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """Template branches of the OFC heads (computed once per sequence at inference)."""
        out = {"box": [h.embed_kernel(k) for h, k in zip(self.box_heads, kernels)]}
        if self.use_ofc:
            out["cls"] = [h.embed_kernel(k) for h, k in zip(self.cls_heads, kernels)]
        return out

    def ofc(self, embedded: dict[str, list[torch.Tensor]], feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """OFC scores and box/IoU predictions from embedded kernels and search features."""
        wb = torch.softmax(self.box_weight, 0)
        box = sum(wb[i] * h.correlate(k, f) for i, (h, k, f) in enumerate(zip(self.box_heads, embedded["box"], feats)))
        n, _, p, q = box.shape
        box = box.reshape(n, self.num_anchors, 5, p, q)
        out = {"box": box[:, :, :4], "iou": box[:, :, 4]}
        if self.use_ofc:
            wc = torch.softmax(self.cls_weight, 0)
            out["cls"] = sum(wc[i] * h.correlate(k, f) for i, (h, k, f) in enumerate(zip(self.cls_heads, embedded["cls"], feats)))
        return out

    def onr_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """beta-fused, projected and L2-normalised features ``[N,D,W,W]`` for the online filter."""
        wf = torch.softmax(self.feat_weight, 0)
        return self.onr_feat(sum(wf[i] * f for i, f in enumerate(feats)))

    def initial_filter(self, onr_feat: torch.Tensor, centers_px: torch.Tensor, crop_size: int) -> torch.Tensor:
        """Template window of the ONR features adaptively pooled to the filter size: ``[N,D,k,k]``."""
        w = onr_feat.shape[-1]
        win = sample_windows(onr_feat, pixel_to_cell(centers_px, crop_size, w, self.stride), self.cfg.template_window)
        k = self.cfg.onr_filter_size
        return F.adaptive_avg_pool2d(win, (k, k))

    def resample_onr(self, scores: torch.Tensor, score_size: int) -> torch.Tensor:
        """ONR scores ``[N,W,W]`` on the feature grid -> ``[N,P,P]`` on the (centred) OFC grid."""
        n, h, w = scores.shape
        pos = torch.arange(score_size, device=scores.device, dtype=scores.dtype) - (score_size - 1) / 2.0
        gx = (pos + (w - 1) / 2.0) * 2.0 / max(w - 1, 1) - 1.0
        gy = (pos + (h - 1) / 2.0) * 2.0 / max(h - 1, 1) - 1.0
        grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)
        grid = grid[None].expand(n, -1, -1, -1)
        return F.grid_sample(scores[:, None], grid, mode="bilinear", align_corners=True)[:, 0]

    def anchors(self, score_size: int, crop_size: int) -> torch.Tensor:
        """Anchors ``[A,P,P,4]`` (cx, cy, w, h) in crop pixels for a ``P x P`` score map."""
        return make_anchors(score_size, self.stride, crop_size, self.anchor_wh.cpu()).to(self.anchor_wh.device)

    # ------------------------------------------------------------------ training forward
    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Sequence-mode forward (see the class docstring); works in train and eval mode."""
        for key in ("train_images", "train_boxes", "test_images"):
            if key not in batch:
                raise ValueError(f"batch: missing key {key!r} (DuML needs sequence-mode batches)")
        ti, tb, qi = batch["train_images"], batch["train_boxes"], batch["test_images"]
        if ti.ndim == 4:  # a single sequence without the batch dim
            ti, tb, qi = ti[None], tb[None], qi[None]
        if ti.ndim != 5 or qi.ndim != 5 or tb.shape != ti.shape[:2] + (4,):
            raise ValueError(
                "batch: expected train_images [B,S,3,H,W], train_boxes [B,S,4], test_images [B,Q,3,H,W]; got "
                f"{tuple(ti.shape)}, {tuple(tb.shape)}, {tuple(qi.shape)}"
            )
        if ti.shape[-2:] != qi.shape[-2:] or ti.shape[-1] != ti.shape[-2]:
            raise ValueError(f"batch: expected square crops of one size, got {tuple(ti.shape[-2:])} and {tuple(qi.shape[-2:])}")
        b, s = ti.shape[:2]
        q = qi.shape[1]
        crop = int(ti.shape[-1])
        feats = self.features(torch.cat([ti.flatten(0, 1), qi.flatten(0, 1)]))
        fs = [f[: b * s] for f in feats]
        fq = [f[b * s :] for f in feats]
        w = feats[0].shape[-1]
        centers = (tb[..., :2] + tb[..., 2:] / 2).to(feats[0].dtype)  # [B,S,2] crop px
        kernels = self.template_kernels(fs, centers.flatten(0, 1), crop)
        kernels = [k.reshape(b, s, *k.shape[1:]).mean(1).repeat_interleave(q, 0) for k in kernels]
        out: dict[str, Any] = self.ofc(self.embed_kernels(kernels), fq)
        p = out["box"].shape[-1]
        out.update(anchors=self.anchors(p, crop), crop_size=crop, feat_size=w, stride=self.stride)
        if self.use_onr:
            onr_s = self.onr_features(fs)
            onr_q = self.onr_features(fq)
            d = onr_s.shape[1]
            init = self.initial_filter(onr_s, centers.flatten(0, 1), crop)
            init = init.reshape(b, s, *init.shape[1:]).mean(1)
            sup = onr_s.reshape(b, s, d, w, w).transpose(0, 1)
            qry = onr_q.reshape(b, q, d, w, w).transpose(0, 1)
            cells = pixel_to_cell(centers, crop, w, self.stride).transpose(0, 1)  # [S,B,2]
            _, iterates, _ = self.optimizer(init, sup, cells)
            out["onr_scores"] = torch.stack([apply_filter(qry, f) for f in iterates])
        return out
