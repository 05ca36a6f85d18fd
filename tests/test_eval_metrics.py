"""Metrics against hand-computed values (see docs/evaluation.md for each definition)."""
import numpy as np
import pytest

from vtrack.eval import metrics as M


def _ope_case():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
    pred = np.array(
        [
            [50, 50, 3, 3],  # replaced by the gt (first frame)
            [0, 0, 10, 10],  # IoU 1, centre error 0
            [5, 0, 10, 10],  # IoU 50/150 = 1/3, centre error 5, normalized 0.5
            [30, 30, 10, 10],  # IoU 0, centre error sqrt(1800)
        ],
        dtype=float,
    )
    return pred, gt


def test_iou_and_center_errors():
    pred, gt = _ope_case()
    np.testing.assert_allclose(M.iou(pred, gt), [0, 1, 1 / 3, 0])
    np.testing.assert_allclose(M.center_error(pred, gt), [np.hypot(46.5, 46.5), 0, 5, np.sqrt(1800)])
    np.testing.assert_allclose(M.normalized_center_error(pred, gt)[1:3], [0, 0.5])
    assert np.isnan(M.iou([[np.nan] * 4], [[0, 0, 1, 1]])[0])
    assert M.iou([[0, 0, 0, 5]], [[0, 0, 1, 1]])[0] == 0.0
    with pytest.raises(ValueError, match="pred"):
        M.iou(pred[:2], gt)


def test_ope_sequence_hand_computed():
    pred, gt = _ope_case()
    c = M.ope_sequence(pred, gt, name="s")
    # IoUs (first frame = gt): 1, 1, 1/3, 0 ; success = fraction with IoU > t
    expected = np.array([0.75] * 7 + [0.5] * 13 + [0.0])  # t = 0..0.30 | 0.35..0.95 | 1.0
    np.testing.assert_allclose(c.success, expected)
    assert c.auc == pytest.approx((7 * 0.75 + 13 * 0.5) / 21)
    assert c.precision[20] == 0.75 and c.precision[4] == 0.5 and c.precision[50] == 1.0
    assert c.norm_precision[20] == 0.5 and c.norm_precision[50] == 0.75  # 0.5 <= 0.5 inclusive
    s = M.ope_summary([c, c])
    assert s.auc == pytest.approx(c.auc) and s.precision_20 == 0.75 and s.norm_precision_20 == 0.5


def test_ope_invalid_frames_fail_and_exclude_invalid():
    pred, gt = _ope_case()
    pred[3] = gt[3]  # perfect on the last frame ...
    valid = np.array([True, True, True, False])  # ... but the target is absent there
    c = M.ope_sequence(pred, gt, valid)
    assert c.success[0] == 0.75 and c.precision[20] == 0.75  # absent frame = failure, /4
    e = M.ope_sequence(pred, gt, valid, exclude_invalid=True)
    assert e.success[0] == 1.0 and e.precision[20] == 1.0  # 3 of 3 counted frames
    assert e.success[10] == pytest.approx(2 / 3)  # IoU > 0.5: frames 0, 1
    # NaN gt rows are invalid too
    gt_nan = gt.copy()
    gt_nan[3] = np.nan
    assert M.ope_sequence(pred, gt_nan).success[0] == 0.75


def test_ope_zero_size_prediction_takes_previous_box():
    gt = np.tile([1.0, 1.0, 10.0, 10.0], (3, 1))
    pred = np.array([[1, 1, 10, 10], [1, 1, 10, 10], [40, 40, 0, 0]], float)
    assert M.ope_sequence(pred, gt).success[-2] == 1.0  # frame 2 becomes frame 1's box
    assert M.ope_sequence(pred, gt, mode="matlab").success[-2] == 1.0  # calcSeqErrRobust too
    assert M.ope_sequence(pred, gt, mode="got10k").success[-2] == pytest.approx(2 / 3)  # kept
    with pytest.raises(ValueError, match="pred"):
        M.ope_sequence(np.full((3, 4), np.nan), gt)
    with pytest.raises(ValueError, match="mode"):
        M.ope_sequence(pred, gt, mode="pysot")


def test_ope_matlab_mode_nonpositive_gt():
    gt = np.array([[1, 1, 10, 10], [0, 5, 10, 10], [1, 1, 10, 10]], float)
    pred = np.array([[1, 1, 10, 10], [90, 90, 5, 5], [1, 1, 10, 10]], float)
    m = M.ope_sequence(pred, gt, mode="matlab")
    # frame 1: gt x <= 0 -> IoU -1 (fails success) but centre error -1 (counts for precision)
    assert m.success[0] == pytest.approx(2 / 3)
    assert m.precision[0] == 1.0 and m.norm_precision[0] == 1.0
    p = M.ope_sequence(pred, gt)  # pytracking: x = 0 is a valid box -> plain failure
    assert p.success[0] == pytest.approx(2 / 3) and p.precision[20] == pytest.approx(2 / 3)
    # matlab summary drops sequences whose curve is zero everywhere
    zero = M.SequenceCurves("z", np.zeros(21), np.zeros(51), np.zeros(51), np.zeros(1), np.zeros(1), np.ones(1, bool), 1)
    assert M.ope_summary([m, zero], mode="matlab").auc == pytest.approx(m.auc)
    assert M.ope_summary([m, zero]).auc == pytest.approx(m.auc / 2)


def test_got10k_pooled_over_frames():
    gt_a = np.tile([0.0, 0.0, 10.0, 10.0], (3, 1))
    pred_a = np.array([[9, 9, 1, 1], [0, 0, 10, 10], [5, 0, 10, 10]], float)
    gt_b = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
    pred_b = np.array([[0, 0, 1, 1], [0, 0, 10, 5], [0, 0, 10, 8], [20, 20, 5, 5]], float)
    res = M.got10k_metrics(
        {"a": pred_a, "b": pred_b},
        {"a": gt_a, "b": gt_b},
        covers={"a": np.array([8, 8, 0])},  # a's last frame has cover 0: not counted
    )
    # counted IoUs (first frames excluded): a -> [1]; b -> [0.5, 0.8, 0]
    assert res.num_frames == 4
    assert res.ao == pytest.approx(2.3 / 4, abs=1e-9)  # pooled, not (1 + 1.3/3) / 2
    assert res.sr50 == pytest.approx(0.5)  # 1 and 0.8 (0.5 is not > 0.5)
    assert res.sr75 == pytest.approx(0.5)
    assert res.per_sequence["b"]["ao"] == pytest.approx(1.3 / 3, abs=1e-9)
    assert len(res.success_curve) == 101


def test_got10k_clips_to_resolution_like_the_toolkit():
    gt = np.array([[0, 0, 8, 10], [0, 0, 8, 10]], float)
    pred = np.array([[0, 0, 8, 10], [-4, 0, 8, 10]], float)
    # toolkit clipping: x -> 0 first, then w clipped to W - x: (-4,0,8,10) -> (0,0,8,10): IoU 1
    r = M.got10k_metrics({"s": pred}, {"s": gt}, resolutions={"s": (20, 20)}, times={"s": [0.5, 0.25]})
    assert r.ao == pytest.approx(1.0)
    assert r.fps == pytest.approx(3.0)  # mean of 1/t
    # without a resolution: plain IoU 40 / 120
    assert M.got10k_metrics({"s": pred}, {"s": gt}).ao == pytest.approx(1 / 3)
    # gt box leaving the image is clipped too
    gt2 = np.array([[0, 0, 5, 5], [15, 15, 10, 10]], float)
    pred2 = np.array([[0, 0, 5, 5], [15, 15, 5, 5]], float)
    assert M.got10k_metrics({"s": pred2}, {"s": gt2}, resolutions={"s": (20, 20)}).ao == pytest.approx(1.0)
    # repetitions are pooled
    rep = M.got10k_metrics({"s": [pred2, pred2]}, {"s": gt2})
    assert rep.num_frames == 2 and rep.ao == pytest.approx(0.25)
    with pytest.raises(ValueError, match="ground truth"):
        M.got10k_metrics({"x": pred}, {"s": gt})


def test_trackingnet_conventions():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[3, 3, 3, 3], [0.4, 0, 10.2, 5]], float)  # rounds to (0,0,10,5): IoU 0.5
    c = M.trackingnet_sequence(pred, gt)
    assert c.success[10] == 1.0 and c.success[11] == 0.5  # IoU >= 0.5 counts (>=)
    assert c.success[20] == 0.5  # the exact first frame counts at t = 1 (>=)
    s = M.trackingnet_summary([c])
    assert s["success"] == pytest.approx(10 * 0.05 + 0.75 * 0.05 + 9 * 0.5 * 0.05)  # 0.7625
    # centre error 2.5 px -> fails 0 px, passes 2.5 px (grid step 2.5)
    assert s["precision"] == pytest.approx(0.75 * 0.05 + 19 * 0.05)  # 0.9875
    # normalized error 0.25 -> grid index 10 of linspace(0, 0.5, 21)
    assert s["norm_precision"] == pytest.approx(9 * 0.5 * 0.05 + 0.75 * 0.05 + 10 * 0.05)
