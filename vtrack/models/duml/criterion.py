"""DuML training loss (eq. 6): lambda_r * hinge(ONR) + lambda_a * focal(OFC) + lambda_b * L1(box) + lambda_o * BCE(IoU).

The paper's eq. 6 lists the loss types as "focal, hinge, L1, BCE" for (r, a, b, o) but its own
text trains ONR with the hinge loss and OFC with the focal loss (and the labels y^r Gaussian,
y^a Bernoulli); vtrack follows the text: lambda_r weighs the hinge loss and lambda_a the focal loss.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrack.models.duml.anchors import atss_assign, cxcywh_to_xyxy, decode, encode, xywh_to_xyxy
from vtrack.models.duml.config import DuMLModelConfig
from vtrack.models.duml.model import pixel_to_cell
from vtrack.models.duml.onr import gaussian_map
from vtrack.models.layers.score_voting import box_iou_xyxy


def split_focal_loss(logits: torch.Tensor, positive: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss with positives and negatives each averaged and weighted 1/2.

    (The paper: "the loss of negatives and positives samples are split and normalized with each
    of their total amount such that background and foreground contribute equally".)
    """
    if logits.shape != positive.shape:
        raise ValueError(f"positive: expected shape {tuple(logits.shape)}, got {tuple(positive.shape)}")
    p = torch.sigmoid(logits)
    target = positive.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.where(positive, p, 1.0 - p)
    loss = ce * (1.0 - p_t) ** gamma
    terms = []
    for m in (positive, ~positive):
        if m.any():
            terms.append(loss[m].mean())
    return 0.5 * sum(terms) if len(terms) == 2 else terms[0]


def hinge_regression_loss(scores: torch.Tensor, label: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """DiMP's ``LBHinge``: squared error, with negatives (label < threshold) penalised only above 0.

    Summed over the map and averaged over frames. ``scores``/``label``: ``[..., H, W]``.
    """
    neg = (label < threshold).to(scores.dtype)
    pred = neg * F.relu(scores) + (1.0 - neg) * scores
    err = (pred - (1.0 - neg) * label) ** 2
    return err.sum(dim=(-2, -1)).mean()


class DuMLCriterion(nn.Module):
    """``criterion(outputs, batch) -> (loss, stats)`` for :class:`~vtrack.models.duml.model.DuML`.

    Labels are built here from ``batch["test_boxes"]`` ([B,Q,4] xywh, crop pixels): ATSS
    (max-IoU top-k) positives for OFC, anchor deltas for the box branch, the IoU of the decoded
    (detached) boxes with the ground truth for the IoU slot, and Gaussian maps (sigma
    ``onr_label_sigma`` cells) for the ONR hinge loss, which is applied to the initial filter,
    the intermediate and the final iterate with DiMP's relative weights.
    """

    def __init__(self, cfg: DuMLModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.w = cfg.loss

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and per-term statistics (floats)."""
        if "test_boxes" not in batch:
            raise ValueError("batch: missing key 'test_boxes'")
        tb = batch["test_boxes"]
        if tb.ndim == 2:
            tb = tb[None]
        box = outputs["box"]
        gt = tb.reshape(-1, 4).to(box.dtype)
        if gt.shape[0] != box.shape[0]:
            raise ValueError(f"batch['test_boxes']: expected {box.shape[0]} boxes (B*Q), got {gt.shape[0]}")
        anchors = outputs["anchors"].to(box.dtype)  # [A,P,P,4]
        pos = atss_assign(anchors, gt, topk=self.w.atss_topk)  # [N,A,P,P]
        stats: dict[str, float] = {"num_pos": float(pos.sum()) / max(gt.shape[0], 1)}
        total = box.new_zeros(())

        if "cls" in outputs and self.w.accurate > 0:
            l_a = split_focal_loss(outputs["cls"], pos, self.w.focal_gamma)
            total = total + self.w.accurate * l_a
            stats["loss_ofc"] = float(l_a.detach())

        gt_c = torch.cat([gt[:, :2] + gt[:, 2:] / 2, gt[:, 2:]], -1)
        pred = box.permute(0, 1, 3, 4, 2)  # [N,A,P,P,4]
        target = encode(gt_c[:, None, None, None, :], anchors[None])
        l_b = (pred - target).abs().sum(-1)[pos].mean()
        with torch.no_grad():
            iou_t = box_iou_xyxy(cxcywh_to_xyxy(decode(pred, anchors[None])), xywh_to_xyxy(gt)[:, None, None, None, :])
        l_o = F.binary_cross_entropy_with_logits(outputs["iou"][pos], iou_t[pos])
        total = total + self.w.box * l_b + self.w.iou * l_o
        stats.update(loss_box=float(l_b.detach()), loss_iou=float(l_o.detach()), iou_pos=float(iou_t[pos].mean()))

        if "onr_scores" in outputs and self.w.robust > 0:
            scores = outputs["onr_scores"]  # [I+1,Q,B,W,W]
            q, b, w = scores.shape[1], scores.shape[2], scores.shape[-1]
            centers = (tb[..., :2] + tb[..., 2:] / 2).to(scores.dtype).transpose(0, 1).reshape(-1, 2)  # [Q*B,2]
            cells = pixel_to_cell(centers, outputs["crop_size"], w, outputs["stride"])
            label = gaussian_map(cells, (w, w), self.cfg.onr_label_sigma).reshape(q, b, w, w)
            per_iter = [hinge_regression_loss(s, label, self.w.hinge_threshold) for s in scores]
            l_r = per_iter[-1]
            norm = 1.0
            if len(per_iter) > 1:
                l_r = l_r + self.w.onr_init_weight * per_iter[0]
                norm += self.w.onr_init_weight
            if len(per_iter) > 2:
                l_r = l_r + self.w.onr_iter_weight * torch.stack(per_iter[1:-1]).mean()
                norm += self.w.onr_iter_weight
            l_r = l_r / norm
            total = total + self.w.robust * l_r
            stats.update(loss_onr=float(l_r.detach()), loss_onr_init=float(per_iter[0].detach()), loss_onr_final=float(per_iter[-1].detach()))
        if not torch.isfinite(total):
            raise FloatingPointError(f"DuML loss is not finite: {stats}")
        stats["loss"] = float(total.detach())
        return total, stats
