"""Losses used by the five trackers, as plain functions (each tested against hand-computed values).

Boxes are ``(x1, y1, x2, y2)`` unless a function says otherwise; ``reduction`` is ``"mean"``,
``"sum"`` or ``"none"`` everywhere. An optional ``weight`` multiplies the element-wise loss before
reduction; with ``reduction="mean"`` and a weight, the sum is divided by ``weight.sum()`` (the
number of positives for a 0/1 mask), as detection codebases do.

Conventions taken from the papers' code bases:

- :func:`centernet_focal_loss`: CenterNet / OSTrack weighted focal loss on a Gaussian heatmap
  (``alpha=2``, ``beta=4``), normalised by the number of positives (peaks equal to 1).
- :func:`sigmoid_focal_loss`: RetinaNet focal loss on logits (DuML offline classification).
- :func:`giou_loss` / :func:`iou_loss`: 1 - GIoU, and IoU loss ``1 - IoU`` (``"linear"``) or
  ``-log(IoU)`` (``"log"``, UnitBox/FCOS/SiamCAR); :func:`iou_loss` also takes FCOS ``ltrb``
  distances measured from the same location.
- :func:`hinge_loss`: DiMP/DuML label-based hinge: a squared error where predictions on
  negatives (label < threshold) are only penalised when positive.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "centernet_focal_loss",
    "sigmoid_focal_loss",
    "box_iou",
    "generalized_box_iou",
    "giou_loss",
    "iou_loss",
    "l1_loss",
    "bce_loss",
    "hinge_loss",
    "cross_entropy_loss",
    "box_xywh_to_xyxy",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "LOSSES",
    "get_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{nb}: expected the shape of {na} {tuple(a.shape)}, got {tuple(b.shape)}")


def _reduce(loss: torch.Tensor, reduction: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    if weight is not None:
        weight = _check_tensor(weight, "weight").to(loss.dtype)
        try:
            loss = loss * weight
        except RuntimeError:
            raise ValueError(
                f"weight: expected a shape broadcastable to the loss {tuple(loss.shape)}, got {tuple(weight.shape)}"
            ) from None
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is not None:
        denom = torch.broadcast_to(weight, loss.shape).sum() if weight.shape != loss.shape else weight.sum()
        return loss.sum() / denom.clamp_min(torch.finfo(loss.dtype).eps)
    return loss.mean()


# ---------------------------------------------------------------------------------------------
# Box helpers
# ---------------------------------------------------------------------------------------------
def box_xywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    """(x, y, w, h) -> (x1, y1, x2, y2) on the last dimension."""
    x, y, w, h = _check_tensor(box, "box").unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def box_cxcywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) on the last dimension."""
    cx, cy, w, h = _check_tensor(box, "box").unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(box: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h) on the last dimension."""
    x1, y1, x2, y2 = _check_tensor(box, "box").unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def _check_boxes(pred: torch.Tensor, target: torch.Tensor) -> None:
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    if pred.shape[-1:] != (4,):
        raise ValueError(f"pred: expected boxes [..., 4], got shape {tuple(pred.shape)}")
    _check_same_shape(pred, target, "pred", "target")


def box_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU of ``(x1, y1, x2, y2)`` boxes ``[..., 4]``; returns ``(iou, union)``."""
    _check_boxes(pred, target)
    area_p = (pred[..., 2] - pred[..., 0]).clamp_min(0) * (pred[..., 3] - pred[..., 1]).clamp_min(0)
    area_t = (target[..., 2] - target[..., 0]).clamp_min(0) * (target[..., 3] - target[..., 1]).clamp_min(0)
    lt = torch.maximum(pred[..., :2], target[..., :2])
    rb = torch.minimum(pred[..., 2:], target[..., 2:])
    wh = (rb - lt).clamp_min(0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_p + area_t - inter
    return inter / union.clamp_min(eps), union


def generalized_box_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise generalised IoU (Rezatofighi et al.) of xyxy boxes; returns ``(giou, iou)``."""
    iou, union = box_iou(pred, target, eps)
    lt = torch.minimum(pred[..., :2], target[..., :2])
    rb = torch.maximum(pred[..., 2:], target[..., 2:])
    wh = (rb - lt).clamp_min(0)
    enclosing = wh[..., 0] * wh[..., 1]
    giou = iou - (enclosing - union) / enclosing.clamp_min(eps)
    return giou, iou


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
def centernet_focal_loss(
    pred: torch.Tensor, target: torch.Tensor, *, alpha: float = 2.0, beta: float = 4.0, eps: float = 1e-12
) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss (OSTrack's weighted focal loss).

    ``pred`` holds probabilities in (0, 1) (after sigmoid), ``target`` a Gaussian heatmap whose
    peaks equal 1. Positives are ``target == 1``::

        pos = -(1 - p)^alpha log(p)              where target == 1
        neg = -(1 - target)^beta p^alpha log(1 - p)   elsewhere
        loss = (sum pos + sum neg) / max(#pos, 1)

    With no positive (negative pairs) the negative sum alone is returned, as CenterNet does.
    """
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    _check_same_shape(pred, target, "pred", "target")
    pred = pred.float().clamp(eps, 1.0 - eps)
    target = target.float()
    pos = target.eq(1).float()
    neg = 1.0 - pos
    neg_weights = torch.pow(1.0 - target, beta)
    pos_loss = (torch.log(pred) * torch.pow(1.0 - pred, alpha) * pos).sum()
    neg_loss = (torch.log(1.0 - pred) * torch.pow(pred, alpha) * neg_weights * neg).sum()
    num_pos = pos.sum()
    if num_pos.item() == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """RetinaNet focal loss on logits with 0/1 (or soft) targets.

    ``FL = -a_t (1 - p_t)^gamma log(p_t)`` with ``p_t = p`` for target 1 and ``1 - p`` for 0,
    ``a_t = alpha`` / ``1 - alpha`` (no alpha weighting when ``alpha`` is None).
    """
    _check_tensor(logits, "logits")
    _check_tensor(target, "target")
    _check_same_shape(logits, target, "logits", "target")
    logits = logits.float()
    target = target.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return _reduce(loss, reduction, weight)


def giou_loss(
    pred: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """``1 - GIoU`` of xyxy boxes ``[..., 4]``."""
    giou, _ = generalized_box_iou(pred.float(), target.float())
    return _reduce(1.0 - giou, reduction, weight)


def _ltrb_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of two boxes given as (l, t, r, b) distances from the same point (FCOS)."""
    area_p = (pred[..., 0] + pred[..., 2]) * (pred[..., 1] + pred[..., 3])
    area_t = (target[..., 0] + target[..., 2]) * (target[..., 1] + target[..., 3])
    w = torch.minimum(pred[..., 0], target[..., 0]) + torch.minimum(pred[..., 2], target[..., 2])
    h = torch.minimum(pred[..., 1], target[..., 1]) + torch.minimum(pred[..., 3], target[..., 3])
    inter = w.clamp_min(0) * h.clamp_min(0)
    return inter / (area_p + area_t - inter).clamp_min(eps)


def iou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: str = "linear",
    box_format: str = "xyxy",
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    eps: float = 1e-7,
) -> torch.Tensor:
    """IoU loss: ``1 - IoU`` (``mode="linear"``) or ``-log(IoU)`` (``mode="log"``).

    ``box_format`` is ``"xyxy"`` or ``"ltrb"`` (non-negative distances to the left/top/right/
    bottom sides from a common location, as FCOS/SiamCAR regress).
    """
    _check_boxes(pred, target)
    if box_format == "xyxy":
        iou, _ = box_iou(pred.float(), target.float(), eps)
    elif box_format == "ltrb":
        iou = _ltrb_iou(pred.float(), target.float(), eps)
    else:
        raise ValueError(f"box_format: expected 'xyxy' or 'ltrb', got {box_format!r}")
    if mode == "linear":
        loss = 1.0 - iou
    elif mode == "log":
        loss = -torch.log(iou.clamp_min(eps))
    else:
        raise ValueError(f"mode: expected 'linear' or 'log', got {mode!r}")
    return _reduce(loss, reduction, weight)


def l1_loss(
    pred: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Element-wise ``|pred - target|``."""
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    _check_same_shape(pred, target, "pred", "target")
    return _reduce((pred.float() - target.float()).abs(), reduction, weight)


def bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary cross-entropy on logits (numerically stable ``log(1 + exp(-|x|))`` form)."""
    _check_tensor(logits, "logits")
    _check_tensor(target, "target")
    _check_same_shape(logits, target, "logits", "target")
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none", pos_weight=pos_weight)
    return _reduce(loss, reduction, weight)


def hinge_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = 0.05,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Label-based hinge loss of DiMP/DuML's online module (squared error).

    Where ``target < threshold`` (background) the prediction is replaced by ``relu(pred)`` and
    its target by 0, so negative scores on background cost nothing; elsewhere the loss is
    ``(pred - target)^2``.
    """
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    _check_same_shape(pred, target, "pred", "target")
    pred = pred.float()
    target = target.float()
    neg = (target < threshold).float()
    pos = 1.0 - neg
    p = neg * F.relu(pred) + pos * pred
    return _reduce((p - pos * target) ** 2, reduction, weight)


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax cross-entropy over dim 1 of ``logits`` [N, C, ...] with int64 class ``target`` [N, ...].

    ``mean`` averages over the non-ignored targets (0 when all are ignored, not NaN).
    """
    _check_tensor(logits, "logits")
    _check_tensor(target, "target")
    if target.dtype != torch.long:
        raise TypeError(f"target: expected an int64 class-index tensor, got dtype {target.dtype}")
    if logits.dim() != target.dim() + 1 or logits.shape[:1] + logits.shape[2:] != target.shape:
        raise ValueError(f"target: expected shape {tuple(logits.shape[:1] + logits.shape[2:])} for logits "
                         f"{tuple(logits.shape)}, got {tuple(target.shape)}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    loss = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none",
                           label_smoothing=label_smoothing)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    n = (target != ignore_index).sum()
    return loss.sum() / n.clamp_min(1)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "centernet_focal": centernet_focal_loss,
    "sigmoid_focal": sigmoid_focal_loss,
    "giou": giou_loss,
    "iou": iou_loss,
    "l1": l1_loss,
    "bce": bce_loss,
    "hinge": hinge_loss,
    "cross_entropy": cross_entropy_loss,
}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """Loss function by name (for criteria configured by name)."""
    if name not in LOSSES:
        raise ValueError(f"loss: unknown loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]
