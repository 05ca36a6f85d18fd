"""Training losses of VLT_SCAR (SiamCAR: focal classification, centerness BCE, IoU regression)
and VLT_TT (TransT: weighted classification BCE, L1 + GIoU on the positive cells)."""
from __future__ import annotations

import torch
from torch import nn

from vtrack.train.losses import bce_loss, box_cxcywh_to_xyxy, giou_loss, iou_loss, l1_loss, sigmoid_focal_loss


class SCARCriterion(nn.Module):
    """SiamCAR loss on ``fcos`` labels: ``w_cls*focal + w_reg*IoU(ltrb) + w_ctr*BCE(centerness)``.

    IoU and centerness terms use positive cells only; the IoU term is weighted by the centerness
    target (FCOS). Classification is normalised by the number of positives.
    """

    def __init__(self, w_cls: float = 1.0, w_reg: float = 3.0, w_ctr: float = 1.0) -> None:
        super().__init__()
        self.w_cls, self.w_reg, self.w_ctr = w_cls, w_reg, w_ctr

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and logged stats."""
        cls_t = batch["label_cls"].float()
        if cls_t.shape != out["cls"].shape[:1] + out["cls"].shape[2:]:
            raise ValueError(f"label_cls: expected {tuple(out['cls'].shape[:1] + out['cls'].shape[2:])}, got {tuple(cls_t.shape)}")
        pos = cls_t > 0.5
        npos = pos.sum().clamp_min(1).float()
        l_cls = sigmoid_focal_loss(out["cls"][:, 0], cls_t, reduction="sum") / npos
        if pos.any():
            ctr_t = batch["label_centerness"].float()[pos]
            pred = out["ltrb"].permute(0, 2, 3, 1)[pos]
            tgt = batch["label_ltrb"].float().permute(0, 2, 3, 1)[pos]
            l_reg = iou_loss(pred, tgt, box_format="ltrb", mode="linear", weight=ctr_t)
            l_ctr = bce_loss(out["ctr"][:, 0][pos], ctr_t)
        else:
            l_reg = out["ltrb"].sum() * 0.0
            l_ctr = out["ctr"].sum() * 0.0
        loss = self.w_cls * l_cls + self.w_reg * l_reg + self.w_ctr * l_ctr
        return loss, {"cls": float(l_cls.detach()), "reg": float(l_reg.detach()), "ctr": float(l_ctr.detach())}


class TTCriterion(nn.Module):
    """TransT loss: every search cell inside the target box is a positive (TransT's matcher);
    BCE with negatives down-weighted by ``eos_coef``, L1 and GIoU between each positive cell's
    normalised (cx, cy, w, h) box and the target; TransT's weights 8.334 / 5 / 2."""

    def __init__(self, w_cls: float = 8.334, w_l1: float = 5.0, w_giou: float = 2.0, eos_coef: float = 0.0625) -> None:
        super().__init__()
        self.w_cls, self.w_l1, self.w_giou, self.eos_coef = w_cls, w_l1, w_giou, eos_coef

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and logged stats."""
        cls_t = batch["label_cls"].float()
        logits = out["cls"][:, 0]
        if cls_t.shape != logits.shape:
            raise ValueError(f"label_cls: expected {tuple(logits.shape)}, got {tuple(cls_t.shape)}")
        pos = cls_t > 0.5
        weight = torch.where(pos, torch.ones_like(cls_t), torch.full_like(cls_t, self.eos_coef))
        l_cls = bce_loss(logits, cls_t, weight=weight, reduction="sum") / weight.sum()
        if pos.any():
            size = batch["search"].shape[-1]
            gt = batch["search_box"].float() / size  # xywh normalised
            gt_cxcywh = torch.cat([gt[:, :2] + gt[:, 2:] / 2, gt[:, 2:]], 1)
            pred = out["box"].permute(0, 2, 3, 1)[pos]
            tgt = gt_cxcywh[:, None, None, :].expand(*cls_t.shape, 4)[pos]
            l_l1 = l1_loss(pred, tgt)
            l_giou = giou_loss(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(tgt))
        else:
            l_l1 = l_giou = out["box"].sum() * 0.0
        loss = self.w_cls * l_cls + self.w_l1 * l_l1 + self.w_giou * l_giou
        return loss, {"cls": float(l_cls.detach()), "l1": float(l_l1.detach()), "giou": float(l_giou.detach())}
