"""VOT reset-based metrics (overlap, accuracy, robustness, EAO) equal vot-toolkit 0.9.0's.

Three kinds of checks: hand-computed cases for each rule of the toolkit; a line-by-line
transcription of the toolkit's source (``vot/region/raster.py``, ``vot/analysis/supervised.py``)
run on random reset-based trajectories; and, marked slow, the real toolkit's own analysis
classes on the same trajectories (``pip install vot-toolkit==0.9.0``, see docs/evaluation.md).
"""
import math

import numpy as np
import pytest

from vtrack.eval import metrics as M

NAN = [np.nan] * 4


# --------------------------------------------------------------------------------------------
# hand-computed cases
# --------------------------------------------------------------------------------------------
def test_vot_overlap_rounds_each_coordinate_separately():
    gt = [[0, 0, 10, 10]] * 4
    # x=0.4, w=10.4: round(x)+round(w)-1 = 9 (the toolkit), not round(x+w-1) = 10
    pred = [[0, 0, 10, 10], [0.4, 0, 10.4, 10], [5, 0, 10, 10], [2.5, 0, 3.5, 10]]
    ov = M.vot_overlap(pred, gt, 100, 100)
    # 2.5 -> 2 and 3.5 -> 4 (half to even): columns 2..5, 40 pixels inside the gt's 100
    np.testing.assert_allclose(ov, [1, 1, 50 / 150, 40 / 100])
    # rounding happens in float32: 0.50000001 is 0.5 in float32 and rounds to 0 (float64: 1)
    assert M.vot_overlap([[0.50000001, 0, 10, 10]], [[0, 0, 10, 10]], 100, 100)[0] == 1.0
    # bounded to the image: pred columns 5..14 -> 5..11 at width 12
    assert M.vot_overlap([[5, 0, 10, 10]], [[0, 0, 10, 10]], 12, 100)[0] == pytest.approx(50 / 120)


def test_vot_overlap_toolkit_special_cases():
    # union of the bounds without extent: "two empty regions are identical" -> 1, even for two
    # one-pixel-wide boxes in the same column but different rows; two empty boxes at different
    # places have a union with extent and no pixel: 0
    assert M.vot_overlap([[3, 3, 0, 0]], [[3, 3, 0, 0]], 100, 100)[0] == 1.0
    assert M.vot_overlap([[0, 0, 0, 0]], [[3, 3, 0, 0]], 100, 100)[0] == 0.0
    assert M.vot_overlap([[5, 0, 1, 3]], [[5, 10, 1, 3]], 100, 100)[0] == 1.0
    # both boxes outside the image: the raster bounds are empty -> 0 (not 1)
    assert M.vot_overlap([[200, 200, 5, 5]], [[300, 300, 5, 5]], 100, 100)[0] == 0.0
    # an empty prediction against a box: 0; NaN rows stay NaN
    ov = M.vot_overlap([[4, 4, 0, 0], NAN], [[0, 0, 10, 10], [0, 0, 10, 10]], 100, 100)
    assert ov[0] == 0.0 and np.isnan(ov[1])
    with pytest.raises(ValueError, match="width, height"):
        M.vot_overlap([[0, 0, 1, 1]], [[0, 0, 1, 1]], 0, 10)


def test_vot_overlap_polygon_ground_truth():
    square = [0, 0, 10, 0, 10, 10, 0, 10]
    diamond = [5, 0, 10, 5, 5, 10, 0, 5]
    ov = M.vot_overlap([[0, 0, 10, 10], [0, 0, 11, 11], [2, 2, 5, 5]], [square, square, diamond], 50, 50)
    # a polygon covers its corners' pixels: the square is columns/rows 0..10 (121 pixels)
    # the diamond |x-5| + |y-5| <= 5 holds 61 pixels, 24 of the box's 25 (all but (2, 2))
    np.testing.assert_allclose(ov, [100 / 121, 1.0, 24 / (25 + 61 - 24)])
    # rows of boxes and polygons are not mixed; NaN polygons give NaN
    assert np.isnan(M.vot_overlap([[0, 0, 1, 1]], [[np.nan] * 8], 50, 50)[0])
    with pytest.raises(ValueError, match="polygons"):
        M.vot_overlap([[0, 0, 1, 1]], [[0, 0, 1, 1, 2]], 50, 50)


def test_vot_run_and_score_against_polygon_ground_truth(tmp_path):
    """The runner's failure test and the scores use the sequence's polygons (as the toolkit):
    a box inside the polygon's bounding box but off the rotated polygon is a failure."""
    import cv2

    from vtrack.data.sequence import Sequence
    from vtrack.eval.runner import track_sequence_vot
    from vtrack.tracking.base import TrackResult, Tracker

    class Corner(Tracker):
        def _initialize(self, image, box, info):
            pass

        def _track(self, image):
            return TrackResult(box=(0.0, 0.0, 5.0, 5.0), score=1.0)

    frames = []
    for t in range(12):
        frames.append(str(tmp_path / f"{t:08d}.png"))
        cv2.imwrite(frames[-1], np.zeros((50, 50, 3), np.uint8))
    diamond = np.tile([20.0, 0, 40, 20, 20, 40, 0, 20], (12, 1))
    seq = Sequence("d", frames, np.tile([0.0, 0, 40, 40], (12, 1)), attributes={"polygons": diamond})
    out = track_sequence_vot(Corner(), seq)
    assert out.codes[:3].tolist() == [M.VOT_CODE_INIT, M.VOT_CODE_FAILURE, M.VOT_CODE_SKIP]
    assert out.codes[6] == M.VOT_CODE_INIT  # re-initialized 5 frames after the failure
    boxes_only = Sequence("d", frames, seq.boxes)
    assert track_sequence_vot(Corner(), boxes_only).codes[1] == M.VOT_CODE_TRACKED  # overlaps the box
    np.testing.assert_array_equal(M.vot_ground_truth(seq), diamond)


def _run_with_failure():
    """30 frames: init 0, tracked 1..14 (1..9 exact, 10..14 half), failure 15, skip 16..19,
    init 20, tracked 21..29 exact."""
    codes = np.full(30, M.VOT_CODE_TRACKED)
    codes[0] = codes[20] = M.VOT_CODE_INIT
    codes[15] = M.VOT_CODE_FAILURE
    codes[16:20] = M.VOT_CODE_SKIP
    boxes = np.tile([0.0, 0.0, 10.0, 10.0], (30, 1))
    boxes[10:15] = [0, 0, 10, 5]
    boxes[codes != M.VOT_CODE_TRACKED] = np.nan
    return M.VOTRun(codes, boxes), np.tile([0.0, 0.0, 10.0, 10.0], (30, 1))


def test_vot_accuracy_robustness_toolkit_rules():
    run, gt = _run_with_failure()
    short = M.VOTRun([1] + [-1] * 9, np.tile([0.0, 0.0, 10.0, 5.0], (10, 1)))  # wholly in burn-in
    gt10 = np.tile([0.0, 0.0, 10.0, 10.0], (10, 1))
    sizes = {"a": (100, 100), "b": (100, 100)}
    r = M.vot_accuracy_robustness({"a": [run]}, {"a": gt}, {"a": (100, 100)})
    # burn-in 10 from each init: frames 10..14 remain (all 0.5); frames 20..29 are burn-in
    assert r.accuracy == pytest.approx(0.5)
    assert r.failures == 1 and r.robustness == pytest.approx(100 / 30)
    assert r.failures_mean == 1 and r.robustness_exp == pytest.approx(math.exp(-30 * 1 / 30))
    # a sequence with no frame outside burn-in scores 0 and keeps its weight (length 10)
    r2 = M.vot_accuracy_robustness({"a": run, "b": short}, {"a": gt, "b": gt10}, sizes)
    assert r2.per_sequence["b"]["accuracy"] == 0.0
    assert r2.accuracy == pytest.approx((0.5 * 30 + 0.0 * 10) / 40)
    # R: failures per sequence weighted by length; AR robustness exp(-30 F / mean length)
    assert r2.failures_mean == pytest.approx(30 / 40)
    assert r2.robustness_exp == pytest.approx(math.exp(-30 * (30 / 40) / 20))
    assert r2.as_dict()["robustness_exp"] == r2.robustness_exp
    # burn-in 2: accuracy weighted by sequence length
    r3 = M.vot_accuracy_robustness({"a": run, "b": short}, {"a": gt, "b": gt10}, sizes, burnin=2)
    acc_a = (8 * 1 + 5 * 0.5 + 8 * 1) / 21
    assert r3.per_sequence["a"]["accuracy"] == pytest.approx(acc_a)
    assert r3.accuracy == pytest.approx((acc_a * 30 + 0.5 * 10) / 40)
    # two runs, one without any frame outside burn-in: the sequence's accuracy is halved
    r4 = M.vot_accuracy_robustness({"b": [short, short]}, {"b": gt10}, {"b": (100, 100)}, burnin=2)
    short_bad = M.VOTRun([1, -1, 2, 0, 0, 0, 0, 1, -1, -1], [NAN, [0, 0, 10, 10]] + [NAN] * 8)
    r5 = M.vot_accuracy_robustness({"b": [short, short_bad]}, {"b": gt10}, {"b": (100, 100)}, burnin=3)
    assert r4.accuracy == pytest.approx(0.5)
    assert r5.accuracy == pytest.approx((0.5 + 0.0) / 2) and r5.failures_mean == 0.5
    with pytest.raises(ValueError, match="sensitivity"):
        M.vot_accuracy_robustness({"b": short}, {"b": gt10}, {"b": (100, 100)}, sensitivity=0)
    with pytest.raises(ValueError, match="start with an initialization"):
        M.VOTRun([M.VOT_CODE_TRACKED], [[0, 0, 1, 1]])


def test_vot_eao_toolkit_rules():
    gt8 = np.tile([0.0, 0.0, 10.0, 10.0], (8, 1))
    half, full = [0, 0, 10, 5], [0, 0, 10, 10]
    # run a: init, .5, 1, failure at 3, then skipped: segment [0, .5, 1], zero-padded
    a = M.VOTRun([1, -1, -1, 2, 0, 0, 0, 0], [NAN, half, full, NAN, NAN, NAN, NAN, NAN])
    # run b: no failure: segment [0, 1, 1, .5, .5] keeps its length 5 (the longest segment)
    b = M.VOTRun([1, -1, -1, -1, -1], [NAN, full, full, half, half])
    gts = {"a": gt8, "b": gt8[:5]}
    sizes = {"a": (50, 50), "b": (50, 50)}
    res = M.vot_eao({"a": a, "b": b}, gts, sizes, interval=(2, 4))
    # padded to the longest segment (5), not the longest sequence (8); curve[j] = mean of 1..j
    curve = [0.0, 0.75, 0.875, (0.5 + 2.5 / 3) / 2, (0.375 + 0.75) / 2]
    np.testing.assert_allclose(res["curve"], curve)
    # EAO = mean(curve[low..high]) indexed exactly so
    assert res["eao"] == pytest.approx(np.mean(curve[2:5]))
    assert M.vot_eao({"a": a, "b": b}, gts, sizes, interval=(4, 400))["eao"] == pytest.approx(curve[4])
    # every segment weighs 1, whatever the number of runs of its sequence
    two = M.vot_eao({"a": a, "b": [b, b]}, gts, sizes, interval=(1, 1))
    assert two["curve"][1] == pytest.approx((0.5 + 1 + 1) / 3)
    # a re-initialization after the last failure starts a final segment without failure
    c = M.VOTRun([1, -1, 2, 0, 1, -1, -1, -1], [NAN, full, NAN, NAN, NAN, half, half, half])
    one = M.vot_eao({"c": c}, {"c": gt8}, {"c": (50, 50)}, interval=(1, 3))
    np.testing.assert_allclose(one["curve"], [0.0, 0.75, 0.5, (1 / 3 + 0.5) / 2])  # [0, 1] padded, [0, .5, .5, .5]
    with pytest.raises(ValueError, match="longest segment"):
        M.vot_eao({"a": a, "b": b}, gts, sizes, interval=(5, 400))
    with pytest.raises(ValueError, match="longest segment"):
        M.vot_eao({"a": a, "b": b}, gts, sizes)  # VOT2018's [100, 356]
    assert M.EAO_RANGES["vot2018"] == (100, 356)


# --------------------------------------------------------------------------------------------
# random reset-based trajectories
# --------------------------------------------------------------------------------------------
def _trajectories(seed: int, num_seqs: int = 3, runs: int = 3, lengths=(60, 200), p_fail: float = 0.03,
                  polygons: bool = False):
    """Fractional ground-truth boxes drifting in a 320x240 image (``polygons``: the boxes rotated
    by up to 20 degrees, as 8-number polygons) and noisy predicted boxes that jump away with
    probability ``p_fail`` (a failure, re-initialized 5 frames later); plus one 8-frame
    sequence that lies wholly in burn-in."""
    rng = np.random.default_rng(seed)
    W, H = 320, 240
    gts, sizes, all_runs = {}, {}, {}
    for k in range(num_seqs + 1):
        T = int(rng.integers(*lengths)) if k < num_seqs else 8
        c = np.cumsum(rng.normal(0, 1.5, (T, 2)), 0) + [150, 110]
        wh = np.abs(30 + np.cumsum(rng.normal(0, 0.3, (T, 2)), 0)) + 3
        gt = np.concatenate([c - wh / 2, wh], 1)
        half = rng.random(T) < 0.2
        gt[half] = np.round(gt[half] * 2) / 2  # some half-pixel ground truth too
        name = f"seq{k}"
        regions = gt
        if polygons:
            a = np.deg2rad(rng.uniform(-20, 20, T))
            corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
            off = corners[None] * gt[:, None, 2:]  # [T, 4, 2]
            rot = np.stack([off[..., 0] * np.cos(a)[:, None] - off[..., 1] * np.sin(a)[:, None],
                            off[..., 0] * np.sin(a)[:, None] + off[..., 1] * np.cos(a)[:, None]], -1)
            regions = (rot + (gt[:, :2] + gt[:, 2:] / 2)[:, None]).reshape(T, 8)
        gts[name], sizes[name] = regions, (W, H)
        all_runs[name] = []
        for _ in range(runs):
            codes = np.zeros(T, np.int64)
            boxes = np.full((T, 4), np.nan)
            nxt = 0
            for i in range(T):
                if i < nxt:
                    continue
                if i == nxt:
                    codes[i] = M.VOT_CODE_INIT
                    continue
                box = gt[i] + rng.normal(0, 2.5, 4) * [1, 1, 0.5, 0.5]
                if rng.random() < 0.2:
                    box = np.round(box * 2) / 2  # half-pixel coordinates exercise the rounding rule
                if rng.random() < p_fail:
                    box[:2] += 300
                if M.vot_overlap([box], regions[i : i + 1], W, H)[0] <= 0:
                    codes[i] = M.VOT_CODE_FAILURE
                    nxt = i + 5
                else:
                    codes[i] = M.VOT_CODE_TRACKED
                    boxes[i] = box
            all_runs[name].append(M.VOTRun(codes, boxes))
    return all_runs, gts, sizes


# A transcription of vot-toolkit 0.9.0 for rectangles, kept as close to its source as Python
# allows; ``None`` stands for a special (init/failure/unknown) region, which the toolkit treats
# as an empty region.
def _tk_meta(r):  # _infer_meta (lines 335-353): np.round of the float32 Rectangle/Polygon data
    if r is None:
        return None
    d = np.round(np.asarray(r, dtype=np.float32))
    return d.reshape(-1, 2) if len(d) > 4 else d


def _tk_region_bounds(d):  # _region_bounds / _bounds_rectangle / _bounds_polygon (lines 185-243)
    if d is None:
        return (0, 0, 0, 0)
    if d.ndim == 2:
        return (int(round(d[:, 0].min())), int(round(d[:, 1].min())), int(round(d[:, 0].max())),
                int(round(d[:, 1].max())))
    return (int(round(d[0])), int(round(d[1])), int(round(d[0] + d[2] - 1)), int(round(d[1] + d[3] - 1)))


def _tk_raster_polygon(data, b):  # rasterize_polygon (lines 73-151)
    count = data.shape[0]
    width, height = b[2] - b[0] + 1, b[3] - b[1] + 1
    node_x = np.zeros((count,), dtype=np.int64)
    mask = np.zeros((height, width), dtype=np.uint8)
    polygon = data.astype(np.float64) - np.array([[b[0], b[1]]])
    for pixel_y in range(height):
        nodes, j = 0, count - 1
        for i in range(count):
            if (((polygon[i, 1] <= pixel_y) and (polygon[j, 1] > pixel_y))
                    or ((polygon[j, 1] <= pixel_y) and (polygon[i, 1] > pixel_y))
                    or ((polygon[i, 1] < pixel_y) and (polygon[j, 1] >= pixel_y))
                    or ((polygon[j, 1] < pixel_y) and (polygon[i, 1] >= pixel_y))
                    or ((polygon[i, 1] == polygon[j, 1]) and (polygon[i, 1] == pixel_y))):
                r = polygon[j, 1] - polygon[i, 1]
                k = polygon[j, 0] - polygon[i, 0]
                node_x[nodes] = int(polygon[i, 0] + (pixel_y - polygon[i, 1]) / r * k) if r != 0 else int(polygon[i, 0])
                nodes += 1
            j = i
        i = 0
        while i < nodes - 1:  # bubble sort
            if node_x[i] > node_x[i + 1]:
                node_x[i], node_x[i + 1] = node_x[i + 1], node_x[i]
                if i:
                    i -= 1
            else:
                i += 1
        i = 0
        while i < nodes - 1:
            if node_x[i] >= width:
                break
            if node_x[i] == node_x[i + 1] and i < nodes - 2:
                i += 1
                continue
            if node_x[i + 1] >= 0:
                if node_x[i] < 0:
                    node_x[i] = 0
                if node_x[i + 1] >= width:
                    node_x[i + 1] = width - 1
                for col in range(node_x[i], node_x[i + 1] + 1):
                    mask[pixel_y, col] = 1
            i += 2
    return mask


def _tk_raster(d, b):  # rasterize_rectangle (lines 47-70); empty regions: zeros (line 264)
    mask = np.zeros((b[3] - b[1] + 1, b[2] - b[0] + 1), dtype=np.uint8)
    if d is None:
        return mask
    if d.ndim == 2:
        return _tk_raster_polygon(d, b)
    if d[0] > b[2] or d[0] + d[2] - 1 < b[0] or d[1] > b[3] or d[1] + d[3] - 1 < b[1]:
        return mask
    left, top = int(max(0, d[0] - b[0])), int(max(0, d[1] - b[1]))
    right, bottom = int(min(b[2], d[0] + d[2] - 1 - b[0])), int(min(b[3], d[1] + d[3] - 1 - b[1]))
    mask[top : bottom + 1, left : right + 1] = 1
    return mask


def _tk_overlap(r1, r2, bounds):
    """vot/region/raster.py: calculate_overlap -> _calculate_overlap (lines 355-373, 267-328)."""
    a, b = _tk_meta(r1), _tk_meta(r2)
    b1, b2 = _tk_region_bounds(a), _tk_region_bounds(b)
    union = (min(b1[0], b2[0]), min(b1[1], b2[1]), max(b1[2], b2[2]), max(b1[3], b2[3]))
    if union[0] >= union[2] or union[1] >= union[3]:
        return 1.0
    rb = (max(0, union[0]), max(0, union[1]), min(bounds[0] - 1, union[2]), min(bounds[1] - 1, union[3]))
    if rb[0] >= rb[2] or rb[1] >= rb[3]:
        return 0.0
    m1, m2 = _tk_raster(a, rb).ravel(), _tk_raster(b, rb).ravel()
    inter, union_ = int(np.sum((m1 != 0) & (m2 != 0))), int(np.sum((m1 != 0) | (m2 != 0)))
    return inter / union_ if union_ > 0 else 0.0


def _tk_regions(run):
    return [None if c != M.VOT_CODE_TRACKED else b for c, b in zip(run.codes, run.boxes)]


def _tk_analysis(all_runs, gts, sizes, low, high, burnin=10, sensitivity=30):
    """vot/analysis/supervised.py: AccuracyRobustness.subcompute (lines 147-163),
    compute_accuracy (41-56), AverageAccuracyRobustness.aggregate (216-231), EAOCurve.subcompute
    (276-311), compute_eao_curve (74-96, float32 as there) and EAOScore.compute (357)."""
    results, overlaps_all, success_all = [], [], []
    for name, runs in all_runs.items():
        accuracy = failures = 0.0
        for run in runs:
            traj = _tk_regions(run)
            overlaps = np.array([_tk_overlap(r, g, sizes[name]) for r, g in zip(traj, gts[name])])
            mask = np.ones(len(overlaps), dtype=bool)
            for i, code in enumerate(run.codes):
                if code == M.VOT_CODE_SKIP:
                    mask[i] = False
                elif code == M.VOT_CODE_INIT:
                    for j in range(i, min(len(traj), i + burnin)):
                        mask[j] = False
                elif code == M.VOT_CODE_FAILURE:
                    mask[i] = False
            accuracy += np.mean(overlaps[mask]) if any(mask) else 0
            failures += int(np.sum(run.codes == M.VOT_CODE_FAILURE))
            fail_idxs = list(np.flatnonzero(run.codes == M.VOT_CODE_FAILURE))
            init_idxs = list(np.flatnonzero(run.codes == M.VOT_CODE_INIT))
            if len(fail_idxs) > 0:
                for i in range(len(fail_idxs)):
                    overlaps_all.append(overlaps[init_idxs[i] : fail_idxs[i]])
                    success_all.append(False)
                if len(init_idxs) > len(fail_idxs):
                    overlaps_all.append(overlaps[init_idxs[-1] :])
                    success_all.append(True)
            else:
                overlaps_all.append(overlaps)
                success_all.append(True)
        results.append((accuracy / len(runs), failures / len(runs), len(gts[name])))
    fail_w = sum(f * w for _, f, w in results)
    acc_w = sum(a * w for a, _, w in results)
    weight_total = sum(w for _, _, w in results)
    failures, accuracy = fail_w / weight_total, acc_w / weight_total
    length = weight_total / len(results)
    robustness_exp = math.exp(-(failures / length) * sensitivity)
    max_length = max(len(o) for o in overlaps_all)
    ov = np.zeros((len(overlaps_all), max_length), dtype=np.float32)
    mask = np.zeros((len(overlaps_all), max_length), dtype=np.float32)
    weights = np.ones((len(overlaps_all), 1), dtype=np.float32)
    for i, (o, success) in enumerate(zip(overlaps_all, success_all)):
        ov[i, : len(o)] = o
        if not success:
            mask[i, :] = 1
        else:
            mask[i, : len(o)] = 1
    ov_sum = ov.copy()
    for j in range(1, max_length):
        ov_sum[:, j] = np.mean(ov[:, 1 : j + 1], axis=1)
    curve = np.sum(weights * ov_sum * mask, axis=0) / np.sum(mask * weights, axis=0)
    return accuracy, failures, robustness_exp, float(np.mean(curve[low : high + 1])), curve


@pytest.mark.parametrize("seed", [0, 1])
def test_vot_metrics_equal_toolkit_transcription(seed):
    # rectangle ground truth (the transcribed polygon rasteriser is slow in pure Python; polygon
    # overlaps are checked frame by frame above and whole analyses in the real-toolkit test)
    all_runs, gts, sizes = _trajectories(seed)
    low, high = 20, 120
    acc, fails, rexp, eao, curve = _tk_analysis(all_runs, gts, sizes, low, high)
    ar = M.vot_accuracy_robustness(all_runs, gts, sizes)
    res = M.vot_eao(all_runs, gts, sizes, interval=(low, high))
    assert ar.per_sequence[f"seq{len(gts) - 1}"]["accuracy"] == 0.0  # the 8-frame sequence
    assert ar.failures > 0
    assert abs(ar.accuracy - acc) < 1e-9
    assert abs(ar.failures_mean - fails) < 1e-9
    assert abs(ar.robustness_exp - rexp) < 1e-9
    assert abs(res["eao"] - eao) < 1e-6  # the toolkit's curve is float32
    np.testing.assert_allclose(res["curve"], curve, atol=1e-6)


def test_vot_overlap_equals_toolkit_transcription():
    rng = np.random.default_rng(3)
    n = 400
    p = np.concatenate([rng.uniform(-20, 70, (n, 2)), rng.uniform(-3, 30, (n, 2))], 1)
    g = np.concatenate([rng.uniform(-20, 70, (n, 2)), rng.uniform(-3, 30, (n, 2))], 1)
    p[: n // 2] = g[: n // 2] + rng.normal(0, 1, (n // 2, 4))
    p[::3] = np.round(p[::3] * 2) / 2
    p[::7, 2:] = rng.choice([0, 0.5, 1, 1.5], (len(p[::7]), 2))
    ours = M.vot_overlap(p, g, 60, 40)
    ref = [_tk_overlap(a, b, (60, 40)) for a, b in zip(p, g)]
    np.testing.assert_array_equal(ours, ref)


def _rotated_rects(rng, n, centre=(20, 15), spread=25.0):
    c = rng.uniform(-5, spread + 10, (n, 2)) if spread else np.tile(centre, (n, 1))
    wh, angle = rng.uniform(0, 20, (n, 2)), rng.uniform(0, np.pi, n)
    out = []
    for k in range(n):
        dx, dy = wh[k] / 2
        rot = np.array([[np.cos(angle[k]), -np.sin(angle[k])], [np.sin(angle[k]), np.cos(angle[k])]])
        out.append((np.array([[-dx, -dy], [dx, -dy], [dx, dy], [-dx, dy]]) @ rot.T + c[k]).reshape(-1))
    return np.array(out)


def test_vot_overlap_polygons_equal_toolkit_transcription():
    rng = np.random.default_rng(5)
    n = 150
    g = _rotated_rects(rng, n)
    g[:30] = rng.uniform(-5, 45, (30, 8))  # arbitrary (also self-intersecting) quadrilaterals
    g[30:50] = np.round(g[30:50])  # integer corners: horizontal edges and vertex rows
    box = np.stack([g[:, 0::2].min(1), g[:, 1::2].min(1), np.ptp(g[:, 0::2], 1), np.ptp(g[:, 1::2], 1)], 1)
    p = box + rng.normal(0, 3, (n, 4))
    ours = M.vot_overlap(p, g, 40, 30)
    ref = [_tk_overlap(a, b, (40, 30)) for a, b in zip(p, g)]
    np.testing.assert_array_equal(ours, ref)


# --------------------------------------------------------------------------------------------
# the real vot-toolkit 0.9.0
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_vot_metrics_equal_real_toolkit():
    """vtrack's A, R, exp-robustness and EAO against vot-toolkit 0.9.0's own analysis classes
    (numba-compiled overlaps; ~10 s on first use)."""
    from vot.analysis.supervised import AccuracyRobustness, AverageAccuracyRobustness, EAOCurve, EAOScore
    from vot.region import Special, calculate_overlaps
    from vot.region.shapes import Polygon, Rectangle
    from vot.utilities.data import Grid

    class Sequence:
        def __init__(self, name, gt, size):
            self.name, self._gt, self.size = name, gt, size

        def groundtruth(self):
            if self._gt.shape[1] == 8:
                return [Polygon([tuple(p) for p in b.reshape(-1, 2)]) for b in self._gt]
            return [Rectangle(*b) for b in self._gt]

        def __len__(self):
            return len(self._gt)

    class Trajectory:
        def __init__(self, run):
            self._regions = [Rectangle(*b) if c == M.VOT_CODE_TRACKED else Special(int(c))
                             for c, b in zip(run.codes, run.boxes)]

        def regions(self):
            return self._regions

    class Experiment:
        def __init__(self, trajectories):
            self._t = trajectories

        def gather(self, tracker, sequence):
            return self._t[sequence.name]

    for seed, polygons in ((0, False), (1, True)):
        all_runs, gts, sizes = _trajectories(seed, lengths=(150, 450), polygons=polygons)
        seqs = [Sequence(n, gts[n], sizes[n]) for n in all_runs]
        exp = Experiment({n: [Trajectory(r) for r in rs] for n, rs in all_runs.items()})
        per_seq = [AccuracyRobustness().subcompute(exp, None, s, []) for s in seqs]
        acc, fails, (rexp, _), _ = AverageAccuracyRobustness().aggregate(None, seqs, per_seq)
        curve = EAOCurve().subcompute(exp, None, seqs, [])[0]
        grid = Grid(1, 1)
        grid[0, 0] = (curve,)
        eao = EAOScore(low=100, high=356).compute(exp, [None], seqs, [grid])[0, 0][0]
        ar = M.vot_accuracy_robustness(all_runs, gts, sizes)
        res = M.vot_eao(all_runs, gts, sizes, interval="vot2018")
        assert abs(ar.accuracy - acc) < 1e-9 and abs(ar.failures_mean - fails) < 1e-9
        assert abs(ar.robustness_exp - rexp) < 1e-9
        assert abs(res["eao"] - eao) < 1e-6
        name = seqs[0].name
        run = all_runs[name][0]
        tk = calculate_overlaps(exp.gather(None, seqs[0])[0].regions(), seqs[0].groundtruth(), sizes[name])
        tracked = run.codes == M.VOT_CODE_TRACKED
        np.testing.assert_array_equal(run.overlaps(gts[name], *sizes[name])[tracked], np.asarray(tk)[tracked])
