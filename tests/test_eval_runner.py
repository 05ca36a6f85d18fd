"""Runner layouts, resume, VOT re-initialization, parallel workers, evaluation and reports."""
import json

import cv2
import numpy as np
import pytest

from vtrack.data.sequence import Sequence
from vtrack.eval import metrics as M
from vtrack.eval.evaluate import evaluate_results, load_summary
from vtrack.eval.reports import (
    attribute_breakdown,
    attribute_table,
    comparison_table,
    draw_boxes,
    plot_curves,
    write_report,
    write_video,
)
from vtrack.eval.runner import (
    get_layout,
    init_worker_threads,
    read_box_file,
    run_tracker,
    track_sequence,
    track_sequence_vot,
    usable_cores,
)
from vtrack.tracking import StaticTracker, Tracker, TrackerFactory, TrackResult


def make_sequence(folder, name="seq_a", n=20, step=3, size=(72, 40), attributes=None):
    """A bright 8x8 square moving ``step`` px per frame along x on a dark background."""
    W, H = size
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    frames, boxes = [], []
    for t in range(n):
        x = 2 + step * t
        img = np.full((H, W, 3), 30, np.uint8)
        img[10:18, x : x + 8] = 220
        p = d / f"{t + 1:08d}.png"
        cv2.imwrite(str(p), img)
        frames.append(str(p))
        boxes.append([x, 10, 8, 8])
    return Sequence(name=name, frames=frames, boxes=np.array(boxes, float), attributes=dict(attributes or {}),
                    dataset="toy")


class OracleTracker(Tracker):
    """Finds the bright square exactly (the ground truth)."""

    name = "oracle"

    def _initialize(self, image, box, info):
        self.info = info

    def _track(self, image):
        ys, xs = np.nonzero(image[..., 0] > 128)
        return TrackResult((float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                            float(ys.max() - ys.min() + 1)), 0.9)


def test_track_sequence_ope(tmp_path):
    seq = make_sequence(tmp_path, n=6)
    out = track_sequence(OracleTracker(), seq)
    np.testing.assert_allclose(out.boxes, seq.boxes)
    assert out.scores[0] == 1.0 and out.scores[1] == pytest.approx(0.9)
    assert len(out.times) == 6 and out.fps > 0
    static = track_sequence(StaticTracker(), seq)
    np.testing.assert_allclose(static.boxes, np.tile(seq.boxes[0], (6, 1)))


def test_vot_run_reinitializes_five_frames_after_failure(tmp_path):
    seq = make_sequence(tmp_path, n=20)
    out = track_sequence_vot(StaticTracker(), seq)
    # static box overlaps the square at dx = 3, 6 px and loses it at 9 px (3 frames after init)
    expected = [1, -1, -1, 2, 0, 0, 0, 0, 1, -1, -1, 2, 0, 0, 0, 0, 1, -1, -1, 2]
    assert out.codes.tolist() == expected
    assert np.isnan(out.boxes[3]).all() and np.allclose(out.boxes[9], seq.boxes[8])


def test_run_tracker_layouts_and_resume(tmp_path):
    seqs = [make_sequence(tmp_path / "data", "a", n=8), make_sequence(tmp_path / "data", "b", n=5)]
    ope = tmp_path / "ope"
    rep = run_tracker(StaticTracker, seqs, ope, progress=False)
    assert {v["status"] for v in rep.values()} == {"done"}
    text = (ope / "a.txt").read_text().splitlines()
    assert len(text) == 8 and text[0].split("\t") == ["2.0000", "10.0000", "8.0000", "8.0000"]
    assert len((ope / "a_time.txt").read_text().split()) == 8
    mtime = (ope / "a.txt").stat().st_mtime_ns
    rep2 = run_tracker(StaticTracker, seqs, ope, progress=False)
    assert {v["status"] for v in rep2.values()} == {"skipped"}
    assert (ope / "a.txt").stat().st_mtime_ns == mtime
    assert not list(ope.glob(".*tmp"))  # no temporary files left behind

    got = tmp_path / "got"
    run_tracker(OracleTracker, seqs, got, protocol="got10k", repetitions=2, progress=False)
    assert (got / "a" / "a_001.txt").is_file() and (got / "a" / "a_002.txt").is_file()
    assert (got / "a" / "a_time.txt").is_file()
    assert (got / "a" / "a_001.txt").read_text().splitlines()[1] == "5.0000,10.0000,8.0000,8.0000"
    runs, _ = get_layout("got10k").read(got, "a")
    assert len(runs) == 2

    tn = tmp_path / "tn"
    run_tracker(StaticTracker, seqs, tn, protocol="trackingnet", progress=False)
    assert read_box_file(tn / "b.txt").shape == (5, 4)

    vot = tmp_path / "vot"
    run_tracker(StaticTracker, seqs[:1], vot, protocol="vot", progress=False)
    lines = (vot / "baseline" / "a" / "a_001.txt").read_text().split()
    assert lines[:5] == ["1", "2.0000,10.0000,8.0000,8.0000", "2.0000,10.0000,8.0000,8.0000", "2", "0"]
    (run,), _ = get_layout("vot").read(vot, "a")
    assert run.failures == 1

    with pytest.raises(ValueError, match="protocol"):
        run_tracker(StaticTracker, seqs, tmp_path / "x", protocol="otb")
    with pytest.raises(ValueError, match="repetitions"):
        run_tracker(StaticTracker, seqs, tmp_path / "x", repetitions=3)


def test_parallel_workers_match_serial(tmp_path):
    seqs = [make_sequence(tmp_path / "data", n, n=4) for n in ("a", "b", "c")]
    run_tracker(TrackerFactory("static"), seqs, tmp_path / "par", workers=2, progress=False)
    run_tracker(TrackerFactory("static"), seqs, tmp_path / "ser", progress=False)
    for n in ("a", "b", "c"):
        assert (tmp_path / "par" / f"{n}.txt").read_text() == (tmp_path / "ser" / f"{n}.txt").read_text()


def test_worker_threads_and_usable_cores():
    """A worker's thread count is checked, then set; the core count is the affinity mask's."""
    import os

    import torch

    cores = usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            init_worker_threads(bad)  # type: ignore[arg-type]
    before, cv_before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        init_worker_threads(1)
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(before)
        cv2.setNumThreads(cv_before)


def test_evaluate_and_report(tmp_path):
    data = tmp_path / "data"
    seqs = [
        make_sequence(data, "a", n=8, attributes={"motion": "fast", "occlusion": True}),
        make_sequence(data, "b", n=6, step=1, attributes={"motion": "slow", "occlusion": False}),
    ]
    run_tracker(StaticTracker, seqs, tmp_path / "static", progress=False)
    run_tracker(OracleTracker, seqs, tmp_path / "oracle", progress=False)
    s = evaluate_results(tmp_path / "static", seqs)
    o = evaluate_results(tmp_path / "oracle", seqs)
    assert o["scores"]["auc"] == pytest.approx(20 / 21)  # perfect: IoU 1 passes every t < 1
    expected = np.mean([M.ope_sequence(np.tile(q.boxes[0], (len(q), 1)), q.boxes).auc for q in seqs])
    assert s["scores"]["auc"] == pytest.approx(expected)
    assert json.loads((tmp_path / "static" / "summary.json").read_text())["tracker"] == "static"
    assert load_summary(tmp_path / "oracle")["sequences"]["a"]["attributes"] == {"motion": "fast", "occlusion": True}

    table = comparison_table([s, o])
    assert table.splitlines()[2].startswith("| oracle | 95.2")
    br = attribute_breakdown(s)
    assert set(br) == {"all", "motion=fast", "motion=slow", "occlusion"}
    assert br["occlusion"]["score"] == pytest.approx(s["sequences"]["a"]["auc"])
    assert "| motion=fast (1) |" in attribute_table([s, o])
    png = plot_curves([s, o], "success", tmp_path / "succ.png")
    assert cv2.imread(str(png)) is not None
    report = write_report([tmp_path / "static", tmp_path / "oracle"], tmp_path / "report")
    text = report.read_text()
    assert "toy_ope_success.png" in text and (tmp_path / "report" / "toy_ope_precision.png").is_file()

    got = evaluate_results(tmp_path / "oracle", seqs, protocol="ope", write=False)
    assert got["scores"]["precision"] == 1.0
    with pytest.raises(FileNotFoundError, match="no ope results"):
        evaluate_results(tmp_path / "static", seqs + [make_sequence(data, "c", n=3)])


def test_evaluate_got10k_and_vot(tmp_path):
    seqs = [make_sequence(tmp_path / "data", "a", n=20, attributes={"cover": np.array([8] * 19 + [0])})]
    run_tracker(OracleTracker, seqs, tmp_path / "got", protocol="got10k", progress=False)
    g = evaluate_results(tmp_path / "got", seqs, protocol="got10k")
    assert g["scores"]["ao"] == pytest.approx(1.0) and g["scores"]["frames"] == 18  # first and cover-0 frames out
    run_tracker(StaticTracker, seqs, tmp_path / "vot", protocol="vot", progress=False)
    v = evaluate_results(tmp_path / "vot", seqs, protocol="vot", eao_interval=(2, 10), burnin=1)
    assert v["scores"]["failures"] == 3
    # tracked frames: overlaps 40/88 (dx 3 -> 5 shared columns... rasterised) averaged
    ov = M.vot_overlap([[2, 10, 8, 8]] * 2, [[5, 10, 8, 8], [8, 10, 8, 8]], 72, 40)
    assert v["scores"]["accuracy"] == pytest.approx(ov.mean())
    assert "eao" in v["curves"] and 0 < v["scores"]["eao"] < 1


def test_draw_boxes_and_video(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    out = draw_boxes(img, pred=(10, 10, 20, 10), gt=(np.nan, 0, 1, 1), thickness=1)
    assert out[10, 15].tolist() == [255, 64, 64] and img.sum() == 0
    path = write_video(tmp_path / "v.mp4", [img] * 5, pred=np.tile([10, 10, 20, 10], (5, 1)), fps=10)
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 5
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "w.mp4", [])
    assert not (tmp_path / "w.mp4").exists()


def test_evaluate_result_length_mismatch(tmp_path):
    seq = make_sequence(tmp_path / "data", "a", n=6)
    run_tracker(OracleTracker, [seq], tmp_path / "r", progress=False)
    short = Sequence("a", seq.frames, seq.boxes[:5], dataset="toy")  # fewer gt rows than frames
    assert evaluate_results(tmp_path / "r", [short], write=False)["sequences"]["a"]["auc"] == pytest.approx(20 / 21)
    (tmp_path / "r" / "a.txt").write_text("2\t10\t8\t8\n")
    with pytest.raises(ValueError, match="incomplete"):
        evaluate_results(tmp_path / "r", [seq], write=False)


def test_vot_eao_range_longer_than_sequences(tmp_path):
    seqs = [make_sequence(tmp_path / "data", "a", n=12)]
    run_tracker(StaticTracker, seqs, tmp_path / "vot", protocol="vot", progress=False)
    v = evaluate_results(tmp_path / "vot", seqs, protocol="vot")  # default VOT2018 range [100, 356]
    assert "eao" not in v["scores"] and "longest sequence" in v["warnings"][0]
    assert v["scores"]["failures"] == 2
    # every tracked frame is inside the 10-frame burn-in: accuracy 0, as vot-toolkit 0.9.0 scores it
    assert v["sequences"]["a"]["accuracy"] == 0.0 and v["scores"]["accuracy"] == 0.0
    assert json.loads((tmp_path / "vot" / "summary.json").read_text(), parse_constant=pytest.fail)
    assert "| vot | - |" in comparison_table([v])  # tracker named after its folder
