"""SparseTT training objective (eq. 4) with SiamFC++-style dense labels.

Labels come from the batch (``label_cls`` [B, S, S] and ``label_ltrb`` [B, 4, S, S] of the
``fcos`` generator configured by the family's ``processing_config``) or, when absent, are built
from ``search_box`` on the model's score-map points with the same rule: a point is positive when it lies strictly inside the target
box of a positive pair (SiamFC++ / FCOS assignment), its regression target being the distances
(left, top, right, bottom) to the box sides. Negative pairs (``positive == False``) have no
positive point and no regression term.

``L = w_fc [l_fc FL(cls_fc) + (1 - l_fc) IoU(box_fc)] + w_conv [(1 - l_conv) FL(cls_conv) + l_conv IoU(box_conv)]``
with the sigmoid focal loss normalised by the number of positives and the IoU loss averaged over
positives.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from vtrack.models.sparsett.config import SparseTTLossConfig
from vtrack.train.losses import iou_loss, sigmoid_focal_loss

__all__ = ["SparseTTCriterion", "dense_labels"]


def dense_labels(points: torch.Tensor, boxes_xywh: torch.Tensor,
                 positive: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SiamFC++ labels on score-map ``points`` [P, 2] for ``boxes_xywh`` [B, 4] (crop pixels).

    Returns ``(cls [B, P] float 0/1, ltrb [B, P, 4])``; ``positive`` [B] bool zeroes the
    classification labels of negative pairs.
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points: expected a tensor [P, 2], got {getattr(points, 'shape', type(points).__name__)}")
    if not isinstance(boxes_xywh, torch.Tensor) or boxes_xywh.dim() != 2 or boxes_xywh.shape[1] != 4:
        raise ValueError(f"search_box: expected a tensor [B, 4] (x, y, w, h), "
                         f"got {getattr(boxes_xywh, 'shape', type(boxes_xywh).__name__)}")
    boxes = boxes_xywh.to(points.dtype)
    x1, y1 = boxes[:, 0:1], boxes[:, 1:2]
    x2, y2 = x1 + boxes[:, 2:3], y1 + boxes[:, 3:4]
    px, py = points[None, :, 0], points[None, :, 1]
    ltrb = torch.stack((px - x1, py - y1, x2 - px, y2 - py), dim=-1)
    cls = (ltrb.min(dim=-1).values > 0).to(points.dtype)
    if positive is not None:
        cls = cls * positive.to(device=cls.device, dtype=cls.dtype).reshape(-1, 1)
    return cls, ltrb


class SparseTTCriterion(nn.Module):
    """``criterion(outputs, batch) -> (loss, stats)`` for :class:`~vtrack.models.sparsett.model.SparseTT`.

    Needs ``outputs`` from the model (``cls_*``, ``ltrb_*``) and either the ``fcos`` labels or
    ``batch["search_box"]`` [B, 4] xywh in search-crop pixels (optionally ``batch["positive"]``
    [B] bool) plus the score-map ``points`` (constructor argument or ``outputs["points"]``).
    """

    def __init__(self, cfg: SparseTTLossConfig | Mapping[str, Any] | None = None, *,
                 points: torch.Tensor | None = None) -> None:
        super().__init__()
        from vtrack.config import as_config

        self.cfg = cfg = as_config(SparseTTLossConfig, cfg, "model.loss")
        self.points: torch.Tensor | None
        self.register_buffer("points", None if points is None else points.detach().clone(), persistent=False)

    def _cls_loss(self, logits: torch.Tensor, cls: torch.Tensor, num_pos: torch.Tensor) -> torch.Tensor:
        loss = sigmoid_focal_loss(logits.flatten(1), cls, alpha=self.cfg.focal_alpha, gamma=self.cfg.focal_gamma,
                                  reduction="sum")
        return loss / num_pos

    def _box_loss(self, ltrb_pred: torch.Tensor, ltrb: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        pred = ltrb_pred.flatten(2).transpose(1, 2)  # [B, P, 4]
        if not bool(cls.any()):
            return pred.sum() * 0.0  # keeps the graph (and DDP) intact on all-negative batches
        mask = cls > 0
        return iou_loss(pred[mask], ltrb[mask].clamp_min(0.0), mode=self.cfg.iou_mode, box_format="ltrb")

    def forward(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 4 loss and float stats (the four terms, positives per sample, mean IoU of the conv-head)."""
        for key in ("cls_fc", "cls_conv", "ltrb_fc", "ltrb_conv"):
            if key not in outputs:
                raise ValueError(f"outputs: missing {key!r}; expected SparseTT model outputs")
        if "search_box" not in batch and "label_cls" not in batch:
            raise ValueError(f"batch: missing 'search_box' or 'label_cls'/'label_ltrb' (have {sorted(batch)})")
        logits_fc = outputs["cls_fc"]
        if "label_cls" in batch and "label_ltrb" in batch:  # from the ``fcos`` label generator
            cls = torch.as_tensor(batch["label_cls"], device=logits_fc.device, dtype=torch.float32).flatten(1)
            ltrb = torch.as_tensor(batch["label_ltrb"], device=logits_fc.device, dtype=torch.float32)
            ltrb = ltrb.flatten(2).transpose(1, 2)
            if cls.shape != logits_fc.flatten(1).shape or ltrb.shape != (*cls.shape, 4):
                raise ValueError(f"label_cls/label_ltrb: expected [B, S, S] and [B, 4, S, S] for score map "
                                 f"{tuple(logits_fc.shape)}, got {tuple(batch['label_cls'].shape)} and "
                                 f"{tuple(batch['label_ltrb'].shape)}")
        else:
            points = outputs.get("points", self.points)
            if points is None:
                raise ValueError("points: pass the score-map points (SparseTTCriterion(points=model.points))")
            points = points.to(device=logits_fc.device, dtype=torch.float32)
            if points.shape != (logits_fc[0].numel(), 2):
                raise ValueError(f"points: expected [{logits_fc[0].numel()}, 2] for score map "
                                 f"{tuple(logits_fc.shape)}, got {tuple(points.shape)}")
            boxes = torch.as_tensor(batch["search_box"], device=logits_fc.device, dtype=torch.float32)
            positive = batch.get("positive")
            if positive is not None:
                positive = torch.as_tensor(positive, device=logits_fc.device, dtype=torch.bool)
            cls, ltrb = dense_labels(points, boxes, positive)
        num_pos = cls.sum().clamp_min(1.0)
        c = self.cfg
        l_cls_fc = self._cls_loss(logits_fc, cls, num_pos)
        l_cls_conv = self._cls_loss(outputs["cls_conv"], cls, num_pos)
        l_box_fc = self._box_loss(outputs["ltrb_fc"], ltrb, cls)
        l_box_conv = self._box_loss(outputs["ltrb_conv"], ltrb, cls)
        loss = (c.w_fc * (c.lambda_fc * l_cls_fc + (1 - c.lambda_fc) * l_box_fc)
                + c.w_conv * ((1 - c.lambda_conv) * l_cls_conv + c.lambda_conv * l_box_conv))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SparseTT loss is not finite: cls_fc={float(l_cls_fc)}, "
                                     f"box_fc={float(l_box_fc)}, cls_conv={float(l_cls_conv)}, "
                                     f"box_conv={float(l_box_conv)}")
        with torch.no_grad():
            mask = cls > 0
            if bool(mask.any()):
                pred = outputs["ltrb_conv"].flatten(2).transpose(1, 2)[mask].float()
                iou = 1.0 - iou_loss(pred, ltrb[mask], mode="linear", box_format="ltrb")
            else:
                iou = torch.zeros(())
        terms = {"loss": loss, "cls_fc": l_cls_fc, "box_fc": l_box_fc, "cls_conv": l_cls_conv, "box_conv": l_box_conv}
        stats = {**{k: float(v.detach()) for k, v in terms.items()},
                 "num_pos": float(cls.sum()) / max(cls.shape[0], 1), "iou_conv": float(iou)}
        return loss, stats
