"""OSTrack/ESAT training loss: focal + 2 GIoU + 5 L1 (+ 0.01 abs + 0.1 pn position losses)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vtrack.models.layers.heads import decode_center_boxes
from vtrack.models.ostrack.config import LossSection
from vtrack.models.ostrack.position import position_losses


class OSTrackCriterion(nn.Module):
    """``criterion(outputs, batch) -> (loss, stats)``.

    * focal: CenterNet weighted focal loss (alpha 2, beta 4) of ``score_map`` against
      ``batch["label_heatmap"]`` ([B,1,F,F], the ``gaussian_heatmap`` label generator).
    * GIoU and L1 on normalised xyxy boxes of positive pairs, the box decoded at the
      ground-truth heatmap's peak (as OSTrack trains the size/offset branches).
    * ESAT (when the model has a position head): cross-entropy of the absolute and positive/negative
      classifiers against ``label_pos_abs`` / ``label_pos_pn`` (the ``position`` generator).

    Args:
        weights: loss weights.
        search_size: search crop side in pixels (normalises ``batch["search_box"]``).
    """

    def __init__(self, weights: LossSection, search_size: int) -> None:
        super().__init__()
        if search_size <= 0:
            raise ValueError(f"search_size: expected a positive int, got {search_size}")
        self.weights = weights
        self.search_size = int(search_size)

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted sum of the losses and their float values (``stats``)."""
        from vtrack.train.losses import box_cxcywh_to_xyxy, box_xywh_to_xyxy, centernet_focal_loss, giou_loss, l1_loss

        for key in ("label_heatmap", "search_box"):
            if key not in batch:
                raise ValueError(f"batch: missing {key!r} (configure the gaussian_heatmap label generator); got {sorted(batch)}")
        score = outputs["score_map"]
        heat = batch["label_heatmap"].to(score.dtype)
        if heat.dim() == 3:
            heat = heat.unsqueeze(1)
        if heat.shape != score.shape:
            raise ValueError(f"batch['label_heatmap']: expected shape {tuple(score.shape)}, got {tuple(heat.shape)}")
        positive = batch.get("positive")
        pos = torch.ones(score.shape[0], dtype=torch.bool, device=score.device) if positive is None else positive.to(score.device).bool()
        l_focal = centernet_focal_loss(score, heat)
        gt_boxes, _ = decode_center_boxes(heat, outputs["size_map"], outputs["offset_map"])
        pred = box_cxcywh_to_xyxy(gt_boxes)
        target = box_xywh_to_xyxy(batch["search_box"].to(pred) / self.search_size)
        if bool(pos.any()):
            l_giou = giou_loss(pred[pos], target[pos])
            l_l1 = l1_loss(pred[pos], target[pos])
        else:
            l_giou = l_l1 = pred.sum() * 0.0
        w = self.weights
        loss = w.focal * l_focal + w.giou * l_giou + w.l1 * l_l1
        stats = {"loss/focal": float(l_focal.detach()), "loss/giou": float(l_giou.detach()), "loss/l1": float(l_l1.detach())}
        if "pos_abs_logits" in outputs:
            for key in ("label_pos_abs", "label_pos_pn"):
                if key not in batch:
                    raise ValueError(f"batch: missing {key!r} (configure the position label generator for ESAT)")
            l_abs, l_pn = position_losses(
                outputs["pos_abs_logits"], outputs["pos_pn_logits"],
                batch["label_pos_abs"].to(score.device).long(), batch["label_pos_pn"].to(score.device).long(),
            )
            loss = loss + w.pos_abs * l_abs + w.pos_pn * l_pn
            stats.update({"loss/pos_abs": float(l_abs.detach()), "loss/pos_pn": float(l_pn.detach())})
        with torch.no_grad():
            from vtrack.train.losses import box_iou

            pred_boxes = box_cxcywh_to_xyxy(outputs["boxes"])
            iou, _ = box_iou(pred_boxes[pos], target[pos]) if bool(pos.any()) else (pred.new_zeros(1), None)
        stats["iou"] = float(iou.mean())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is not finite: {stats}")
        stats["loss"] = float(loss.detach())
        return loss, stats
