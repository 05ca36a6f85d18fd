"""Anchors, box coding and ATSS label assignment for DuML's offline classification (OFC-5s).

Geometry convention (SiamRPN++): score-map position ``(i, j)`` of a ``P x P`` map lies at crop
point ``(c + stride * (j - (P - 1) / 2), c + stride * (i - (P - 1) / 2))`` with
``c = crop_size / 2``, i.e. the map is centred on the crop centre. Crop coordinates are the
continuous ones of :mod:`vtrack.tracking.crops` (pixel ``j`` covers ``[j, j + 1)``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from vtrack.models.layers.score_voting import box_iou_xyxy


def anchor_shapes(stride: int, ratios: Sequence[float], scales: Sequence[float]) -> torch.Tensor:
    """SiamRPN++ anchor widths/heights ``[A,2]`` (A = len(ratios) * len(scales)).

    ``w = int(sqrt(stride^2 / r)) * s``, ``h = int(w0 * r) * s`` exactly as pysot's ``Anchors``.
    """
    if stride <= 0:
        raise ValueError(f"stride: expected a positive int, got {stride}")
    if not ratios or not scales or any(r <= 0 for r in ratios) or any(s <= 0 for s in scales):
        raise ValueError(f"ratios, scales: expected non-empty positive lists, got {ratios} and {scales}")
    out = []
    for r in ratios:
        ws = int(math.sqrt(stride * stride / r))
        hs = int(ws * r)
        for s in scales:
            out.append((ws * s, hs * s))
    return torch.tensor(out, dtype=torch.float32)


def score_centers(size: int, stride: int, crop_size: int) -> torch.Tensor:
    """Crop-pixel coordinates ``[size]`` of the positions of a centred score map (one axis)."""
    c = crop_size / 2.0
    return c + stride * (torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0)


def make_anchors(size: int, stride: int, crop_size: int, shapes: torch.Tensor) -> torch.Tensor:
    """Anchors ``[A,size,size,4]`` as (cx, cy, w, h) in crop pixels for a ``size x size`` map."""
    pos = score_centers(size, stride, crop_size)
    cy, cx = torch.meshgrid(pos, pos, indexing="ij")
    a = shapes.shape[0]
    out = torch.empty(a, size, size, 4)
    out[..., 0] = cx
    out[..., 1] = cy
    out[..., 2] = shapes[:, 0, None, None]
    out[..., 3] = shapes[:, 1, None, None]
    return out


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) on the last dim."""
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """(x, y, w, h) -> (x1, y1, x2, y2) on the last dim."""
    return torch.cat([b[..., :2], b[..., :2] + b[..., 2:]], -1)


def encode(gt: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """SiamRPN++ deltas of ``gt`` w.r.t. ``anchors`` (both (cx, cy, w, h)): dx, dy, log dw, log dh."""
    d_xy = (gt[..., :2] - anchors[..., :2]) / anchors[..., 2:]
    d_wh = torch.log(gt[..., 2:].clamp(min=1e-6) / anchors[..., 2:])
    return torch.cat([d_xy, d_wh], -1)


def decode(delta: torch.Tensor, anchors: torch.Tensor, max_log: float = math.log(1000.0 / 16)) -> torch.Tensor:
    """Inverse of :func:`encode`; log-size deltas are bounded by ``max_log`` to avoid overflow."""
    xy = anchors[..., :2] + delta[..., :2] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp(delta[..., 2:].clamp(max=max_log))
    return torch.cat([xy, wh], -1)


def atss_assign(anchors: torch.Tensor, gt_xywh: torch.Tensor, topk: int = 15, require_center: bool = True) -> torch.Tensor:
    """ATSS with max-IoU candidates (DuML's ``ATSS_Max.IoU``): positive mask per anchor.

    For each ground-truth box: the ``topk`` anchors with the highest IoU are the candidates;
    the IoU threshold is ``mean + std`` of the candidates' IoUs; a candidate is positive if its
    IoU reaches the threshold and (``require_center``) its centre lies inside the box. All other
    anchors are negative. A box left without a positive keeps its highest-IoU anchor.

    Args:
        anchors: ``[...,4]`` anchors (cx, cy, w, h), the same for every sample.
        gt_xywh: ``[N,4]`` ground-truth boxes (x, y, w, h) in the same pixels.
        topk: number of candidates (15 for OFC-5s, 11 for OFC-1s in the paper).
        require_center: keep ATSS's "anchor centre inside the box" condition.

    Returns:
        bool ``[N, *anchors.shape[:-1]]``.
    """
    if anchors.shape[-1] != 4:
        raise ValueError(f"anchors: expected [...,4], got {tuple(anchors.shape)}")
    if gt_xywh.ndim != 2 or gt_xywh.shape[1] != 4:
        raise ValueError(f"gt_xywh: expected [N,4], got {tuple(gt_xywh.shape)}")
    flat = anchors.reshape(-1, 4)
    if not 1 <= topk <= flat.shape[0]:
        raise ValueError(f"topk: expected an int in [1, {flat.shape[0]}], got {topk}")
    gt = xywh_to_xyxy(gt_xywh.to(flat.dtype))
    iou = box_iou_xyxy(cxcywh_to_xyxy(flat)[None], gt[:, None])  # [N, K]
    cand_iou, cand_idx = iou.topk(topk, dim=1)
    thr = cand_iou.mean(1) + cand_iou.std(1, unbiased=True if topk > 1 else False)
    cand = torch.zeros_like(iou, dtype=torch.bool).scatter_(1, cand_idx, True)
    pos = cand & (iou >= thr[:, None]) & (iou > 0)
    if require_center:
        c = flat[None, :, :2]
        inside = (c[..., 0] > gt[:, None, 0]) & (c[..., 0] < gt[:, None, 2]) & (c[..., 1] > gt[:, None, 1]) & (c[..., 1] < gt[:, None, 3])
        pos &= inside
    # A box whose candidates all fail keeps its best-overlapping anchor (as SiamRPN++'s
    # max-IoU rule), so every target has at least one positive.
    empty = ~pos.any(1)
    if empty.any():
        best = iou.argmax(1)
        pos[empty, best[empty]] = iou[empty, best[empty]] > 0
    return pos.reshape(gt.shape[0], *anchors.shape[:-1])
