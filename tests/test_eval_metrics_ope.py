"""One-pass evaluation modes: ``got10k`` equals the got10k toolkit's ExperimentOTB/UAV123 reports,
``matlab`` replaces predictions as the MATLAB kits' calcSeqErrRobust."""
import numpy as np
import pytest

from vtrack.eval import metrics as M

# identical float boxes whose plain IoU is 1 + 4e-16 (x + w - x != w in floating point)
FLOAT_BOX = [86.3, 54.1, 31.0, 43.3]


def test_got10k_mode_clips_iou_at_one():
    gt = np.array([FLOAT_BOX, FLOAT_BOX])
    pred = gt.copy()
    assert M.iou(pred, gt)[0] > 1.0
    pyt = M.ope_sequence(pred, gt)
    g10 = M.ope_sequence(pred, gt, mode="got10k")
    assert pyt.success[-1] == 1.0  # pytracking: IoU > 1.0 passes the last bin
    assert g10.success[-1] == 0.0 and g10.success[-2] == 1.0
    assert pyt.auc - g10.auc == pytest.approx(1 / 21)


def test_got10k_mode_counts_every_frame_with_a_ground_truth():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 0, 10]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    valid = [True, False, True, True]
    c = M.ope_sequence(pred, gt, valid, mode="got10k")
    # valid is ignored; the NaN frame fails; the zero-width gt counts (IoU 0, centre error 5)
    assert c.success[0] == pytest.approx(2 / 4) and c.precision[5] == pytest.approx(3 / 4)
    assert M.ope_sequence(pred, gt, valid, mode="got10k", exclude_invalid=True).success[0] == pytest.approx(2 / 3)
    # zero-size predictions are kept (no previous box), unlike pytracking
    z = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    assert M.ope_sequence(z, gt[:2], mode="got10k").success[0] == 0.5
    assert M.ope_sequence(z, gt[:2]).success[0] == 1.0
    with pytest.raises(ValueError, match="mode"):
        M.ope_sequence(z, gt[:2], mode="otb")


def test_matlab_mode_replaces_nan_and_empty_predictions():
    gt = np.tile([1.0, 1.0, 10.0, 10.0], (6, 1))
    gt[5] = np.nan
    pred = np.array(
        [
            [1, 1, 10, 10],
            [1, 1, 10, 10],
            [np.nan] * 4,  # all NaN -> previous box (IoU 1)
            [40, 40, 0, 5],  # w <= 0 -> previous, which is already frame 1's box
            [np.nan, 1, 10, 10],  # partly NaN with a positive size: kept (MATLAB's all())
            [40, 40, -1, -1],  # gt NaN: not replaced; the frame fails anyway
        ],
        float,
    )
    c = M.ope_sequence(pred, gt, mode="matlab")
    np.testing.assert_array_equal(c.ious[:5] > 0.99, [True, True, True, True, False])
    assert c.success[0] == pytest.approx(4 / 6) and c.precision[0] == pytest.approx(4 / 6)
    # the other modes refuse such predictions
    with pytest.raises(ValueError, match="not finite"):
        M.ope_sequence(pred, gt)


def _random_ope(seed, n_seq=4, nan_rows=False):
    rng = np.random.default_rng(seed)
    preds, gts = {}, {}
    for k in range(n_seq):
        T = int(rng.integers(30, 90))
        gt = np.concatenate([rng.uniform(0, 200, (T, 2)), rng.uniform(5, 60, (T, 2))], 1)
        gt = np.round(gt, 1)
        pred = gt + rng.normal(0, 6, (T, 4))
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        pred[rng.random(T) < 0.05, 2:] = 0  # empty predictions
        pred[rng.random(T) < 0.05] += 80  # lost frames
        if nan_rows:
            missing = rng.random(T) < 0.1
            missing[0] = False
            gt[missing] = np.nan
        preds[f"s{k}"], gts[f"s{k}"] = pred, gt
    return preds, gts


@pytest.mark.parametrize("uav", [False, True])
def test_got10k_mode_equals_got10k_toolkit(tmp_path, uav, monkeypatch):
    """The got10k toolkit's own ExperimentOTB.report (ExperimentUAV123 for NaN gt rows) on
    result files that vtrack scores in ``got10k`` mode."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from got10k.experiments import ExperimentOTB, ExperimentUAV123

    preds, gts = _random_ope(7 + uav, nan_rows=uav)
    names = list(preds)

    class Dataset:
        seq_names = names

        def __iter__(self):
            return iter([(None, gts[n]) for n in names])

        def __len__(self):
            return len(names)

    exp = object.__new__(ExperimentUAV123 if uav else ExperimentOTB)
    exp.dataset, exp.nbins_iou, exp.nbins_ce = Dataset(), 21, 51
    exp.result_dir, exp.report_dir = str(tmp_path / "results"), str(tmp_path / "reports")
    (tmp_path / "results" / "t").mkdir(parents=True)
    for n in names:
        np.savetxt(tmp_path / "results" / "t" / f"{n}.txt", preds[n], delimiter=",", fmt="%.17g")
    exp.plot_curves = lambda names: None  # the plots are not scored
    ref = exp.report(["t"])["t"]["overall"]
    curves = [M.ope_sequence(preds[n], gts[n], mode="got10k", exclude_invalid=uav, name=n) for n in names]
    ours = M.ope_summary(curves, mode="got10k")
    np.testing.assert_allclose(ours.success, ref["success_curve"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.precision, ref["precision_curve"], rtol=0, atol=1e-12)
    assert ours.auc == pytest.approx(ref["success_score"], abs=1e-12)
    assert ours.precision_20 == pytest.approx(ref["precision_score"], abs=1e-12)
    assert ours.as_dict()["op50"] == pytest.approx(ref["success_rate"], abs=1e-12)
