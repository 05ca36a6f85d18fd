"""Training losses against hand-computed values."""
import math

import pytest
import torch

from vtrack.train import losses as L


def test_centernet_focal_hand_values():
    pred = torch.tensor([0.5, 0.2])
    gt = torch.tensor([1.0, 0.5])
    pos = -(0.5**2) * math.log(0.5)
    neg = -((1 - 0.5) ** 4) * 0.2**2 * math.log(0.8)
    assert L.centernet_focal_loss(pred, gt).item() == pytest.approx(pos + neg, rel=1e-6)
    # no positive: negative sum alone, not divided
    assert L.centernet_focal_loss(torch.tensor([0.2]), torch.tensor([0.5])).item() == pytest.approx(neg, rel=1e-6)
    # two positives: normalised by 2
    two = L.centernet_focal_loss(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 1.0])).item()
    assert two == pytest.approx(pos, rel=1e-6)


def test_sigmoid_focal_hand_values():
    logits = torch.zeros(2)
    target = torch.tensor([1.0, 0.0])
    ce = math.log(2.0)
    expected = [0.25 * 0.25 * ce, 0.75 * 0.25 * ce]
    out = L.sigmoid_focal_loss(logits, target, reduction="none")
    assert out.tolist() == pytest.approx(expected, rel=1e-6)
    assert L.sigmoid_focal_loss(logits, target).item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    assert L.sigmoid_focal_loss(logits, target, alpha=None, gamma=0.0, reduction="sum").item() == pytest.approx(2 * ce)


def test_giou_iou_l1():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    giou = 1 / 7 - 2 / 9
    assert L.giou_loss(a, b).item() == pytest.approx(1 - giou, rel=1e-6)
    assert L.iou_loss(a, b).item() == pytest.approx(6 / 7, rel=1e-6)
    assert L.iou_loss(a, b, mode="log").item() == pytest.approx(math.log(7), rel=1e-6)
    # ltrb from the point (1, 1): pred box (0,0,2,2), target box (1,1,3,3)
    assert L.iou_loss(torch.tensor([[1.0, 1, 1, 1]]), torch.tensor([[0.0, 0, 2, 2]]), box_format="ltrb").item() == (
        pytest.approx(6 / 7, rel=1e-6)
    )
    assert L.giou_loss(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert L.l1_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == pytest.approx(1.5)
    w = torch.tensor([1.0, 0.0])
    assert L.l1_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]), weight=w).item() == pytest.approx(1.0)


def test_bce_hinge_ce():
    assert L.bce_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(math.log(2))
    assert L.bce_loss(torch.tensor([100.0]), torch.tensor([0.0])).item() == pytest.approx(100.0, rel=1e-6)
    pred = torch.tensor([-1.0, 0.5, 0.8])
    tgt = torch.tensor([0.0, 0.0, 1.0])
    assert L.hinge_loss(pred, tgt).item() == pytest.approx((0 + 0.25 + 0.04) / 3, rel=1e-6)
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 1.0]])
    target = torch.tensor([1, -100])
    assert L.cross_entropy_loss(logits, target).item() == pytest.approx(-math.log(0.75), rel=1e-6)
    assert L.cross_entropy_loss(logits, torch.tensor([-100, -100])).item() == 0.0


def test_loss_input_errors():
    with pytest.raises(ValueError, match="target: expected the shape"):
        L.l1_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        L.l1_loss(torch.zeros(2), torch.zeros(2), reduction="avg")
    with pytest.raises(TypeError, match="target: expected an int64"):
        L.cross_entropy_loss(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown loss"):
        L.get_loss("nope")
    assert L.get_loss("giou") is L.giou_loss
