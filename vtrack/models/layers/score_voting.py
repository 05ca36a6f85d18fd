"""IoU-guided score voting for the final box (DuML, eq. 4-5)."""
from __future__ import annotations

import torch


def box_iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of boxes ``a`` [...,4] and ``b`` [...,4] (x1, y1, x2, y2), broadcasting."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def score_voting(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    ious: torch.Tensor,
    best: int,
    *,
    eps: float = 0.01,
    sigma: float = 0.0025,
) -> torch.Tensor:
    """Vote the final box from the predictions adjacent to the selected one.

    ``b* = sum_y w_y o_y b_y / sum_y w_y o_y`` over the predictions ``y`` whose box overlaps the
    selected box ``b_best`` with IoU > ``eps``, where ``w_y = s_y * exp(-(1 - IoU(b_y, b_best))^2
    / sigma)`` and ``o_y`` is the predicted IoU of box ``y``.

    Args:
        boxes: ``[N,4]`` candidate boxes (x1, y1, x2, y2).
        scores: ``[N]`` localization scores ``s`` (the fused score map, flattened); negative
            scores weigh zero (a weight must be non-negative).
        ious: ``[N]`` predicted IoU scores ``o`` in [0, 1].
        best: index of the selected prediction ``y*``.
        eps: IoU threshold for a prediction to take part (0.01 in the paper).
        sigma: width of the Gaussian prior on the IoU with the selected box (0.0025).

    Returns:
        The voted box ``[4]`` (x1, y1, x2, y2). Falls back to ``boxes[best]`` when every weight
        is zero (e.g. all scores non-positive).
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes: expected [N,4], got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    if scores.shape != (n,) or ious.shape != (n,):
        raise ValueError(f"scores, ious: expected [{n}] each, got {tuple(scores.shape)} and {tuple(ious.shape)}")
    if not 0 <= int(best) < n:
        raise ValueError(f"best: expected an index in [0, {n}), got {best}")
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive float, got {sigma}")
    ref = boxes[int(best)]
    overlap = box_iou_xyxy(boxes, ref[None])
    weight = scores.clamp(min=0) * torch.exp(-((1.0 - overlap) ** 2) / sigma) * ious.clamp(min=0)
    weight = torch.where(overlap > eps, weight, torch.zeros_like(weight))
    total = weight.sum()
    if not total > 0:
        return ref.clone()
    return (weight[:, None] * boxes).sum(0) / total
