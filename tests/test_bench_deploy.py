"""`vtrack bench deploy`: interleaved timing, agreement figures and result files (fake trackers:
the export and the onnxruntime tracker themselves are tested in tests/test_deploy.py)."""
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from vtrack.bench import deploy
from vtrack.tracking.base import TrackResult


class _Engine:
    """Its "network" says how far the box moves; it takes ``delay`` seconds."""

    runtime = "fake"

    def __init__(self, shift: float, delay: float) -> None:
        self.shift, self.delay = shift, delay

    def run(self, branch, **inputs):
        end = time.thread_time() + self.delay  # busy: the benchmark counts CPU time
        while time.thread_time() < end:
            pass
        return {"shift": self.shift}


class _Tracker:
    """Moves its box by its engine's ``shift`` px per frame; logs its calls."""

    def __init__(self, name, shift, delay, log):
        self.name, self.log = name, log
        self.engine = deploy.TimedEngine(_Engine(shift, delay))
        self.box = None

    def initialize(self, image, box, info=None):
        self.box = tuple(box)

    def track(self, image):
        self.log.append(self.name)
        shift = self.engine.run("search")["shift"]
        x, y, w, h = self.box
        self.box = (x + shift, y, w, h)
        return TrackResult(self.box)


class _Seq:
    def __init__(self, n=5, name="s"):
        self.name, self.n = name, n
        self.boxes = np.array([[10.0, 10.0, 20.0, 20.0]] * n)
        self.language = None  # a Sequence field: the initialisation info (init_info)

    def __len__(self):
        return self.n

    def frame(self, i):
        return np.zeros((8, 8, 3), np.uint8)


def test_run_sequence_interleaves_and_times_each_runtime():
    log = []
    trackers = {"reference": _Tracker("reference", 1.0, 0.0, log), "cpp": _Tracker("cpp", 1.0, 0.0, log),
                deploy.ORT: _Tracker(deploy.ORT, 2.0, 0.004, log)}
    out = deploy.run_sequence(trackers, _Seq(5), "cpp")
    # 4 tracked frames, 3 trackers each, the order rotating frame by frame (the per-step twin, a deep
    # copy, logs into its own copy of the list)
    firsts = [log[i * 3] for i in range(4)]
    assert len(log) == 12
    assert firsts == ["cpp", deploy.ORT, "reference", "cpp"]
    assert all(len(out[n]["s"]) == 4 and len(out[n]["boxes"]) == 5 for n in trackers)
    assert min(out[deploy.ORT]["net_s"]) >= 0.004 > max(out["cpp"]["net_s"])
    # per step: the twins start from the cpp tracker's state and move by the other engine's shift
    assert out["step"][deploy.ORT][2][0] == pytest.approx(10.0 + 1.0 + 2.0)
    assert out["step"]["reference"][2][0] == pytest.approx(10.0 + 1.0 + 1.0) and set(out["step"]) == {"reference", deploy.ORT}
    assert out[deploy.ORT]["boxes"][2][0] == pytest.approx(14.0)


def test_summarise_iou_fps_and_ratios_on_timed_sequences():
    log = []
    trackers = {"reference": _Tracker("reference", 0.0, 0.002, log), "cpp": _Tracker("cpp", 0.0, 0.004, log),
                deploy.ORT: _Tracker(deploy.ORT, 0.0, 0.001, log)}
    timed = deploy.run_sequence(trackers, _Seq(6, "a"), "cpp")
    pair = deploy.run_sequence({n: trackers[n] for n in ("cpp", deploy.ORT)}, _Seq(4, "b"), None)
    assert "step" not in pair
    res = deploy.summarise([timed, pair], list(trackers), "cpp")
    assert res["iou"] == {f"{deploy.ORT} vs reference": 1.0, f"{deploy.ORT} vs cpp": 1.0, "cpp vs reference": 1.0}
    assert res["iou_step"] == 1.0 and res["frames"] == 5 + 3 and res["fps_sequences"] == 1
    assert res["iou_step_all"]["reference vs cpp"] == {"mean": 1.0, "frames": 5, "below_0.9": 0, "min": 1.0}
    assert res["fps"]["cpp"]["frames"] == 5  # FPS only where every runtime ran
    assert res["fps"][deploy.ORT]["fps"] > res["fps"]["reference"]["fps"] > res["fps"]["cpp"]["fps"]
    assert res["speedup"][f"{deploy.ORT} vs cpp"] > res["speedup"][f"{deploy.ORT} vs reference"] > 1.0


def test_result_files_are_per_weights_and_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr("vtrack.zoo.list_entries", lambda root=None: [SimpleNamespace(name="z", sha256="ab" * 32)])
    monkeypatch.setattr("vtrack.zoo.zoo_config", lambda entry, root=None: {"tracker": {"crop": {"align": "pixel"}}})
    log = []
    trackers = {"pytorch": _Tracker("pytorch", 0.0, 0.0, log), deploy.ORT: _Tracker(deploy.ORT, 0.5, 0.0, log)}
    summary = deploy.summarise([deploy.run_sequence(trackers, _Seq(4), "pytorch")], list(trackers), "pytorch")
    base = {"family": "f", "params_m": 1.0, "runtimes": list(trackers), "pytorch_compared": "pytorch",
            "sequences": ["s"], "export_s": 4.0, "export_cpu_s": 1.5, "onnx_mb": 2.0, "opset": 18, "load_avg_end": 3.0, "notes": "",
            "branches": {"search": {"mb": 2.0, "seconds": 1.5, "opset": 18, "nodes": 10}}, **summary,
            "environment": {"time_utc": "t", "git_commit": "c", "load_avg_1m": 2.0, "device_name": "cpu"}}
    old = {**base, "tracker": "z", "key": "k1", "weights": "zoo z.safetensors sha256 " + "cd" * 6}
    new = {**base, "tracker": "z", "key": "k2", "weights": "zoo z.safetensors sha256 " + "ab" * 6}
    deploy.write_results(tmp_path, old)
    md = deploy.write_results(tmp_path, new).read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        deploy.write_results(tmp_path, new)
    assert sorted(p.name for p in tmp_path.glob("z-*.json")) == ["z-k1.json", "z-k2.json"]
    current, superseded = deploy.read_results(tmp_path)
    assert [r["key"] for r in current] == ["k2"] and [r["key"] for r in superseded] == ["k1"]
    table = json.loads((tmp_path / "deploy.json").read_text())
    assert [r["key"] for r in table["results"]] == ["k2"]
    # same weights, tracker options changed in the zoo: the result of the current config supersedes
    # the others (old results without a config digest too)
    current_cfg = deploy.config_digest({"tracker": {"crop": {"align": "pixel"}}})
    deploy.write_results(tmp_path, {**new, "key": "k3", "config_sha256": deploy.config_digest({"tracker": {}})})
    assert [r["key"] for r in deploy.read_results(tmp_path)[0]] == ["k2", "k3"]  # no result of the current config yet
    deploy.write_results(tmp_path, {**new, "key": "k4", "config_sha256": current_cfg})
    current, superseded = deploy.read_results(tmp_path)
    assert [r["key"] for r in current] == ["k4"] and sorted(r["key"] for r in superseded) == ["k1", "k2", "k3"]
    iou = summary["iou"][f"{deploy.ORT} vs pytorch"]
    assert 0.0 < iou < 1.0 and f"{iou:.4f}" in md and "Superseded" in md
    assert "| z | 1.5 (4) | 2.00 (search 2.00) |" in md
    # ORT drifts 0.5 px per frame on a 20 px box: IoU 0.951, 0.905, 0.860 over the 3 tracked frames
    assert summary["iou_frames_below"] == {"0.99": 3, "0.9": 1, "0.5": 0}
    assert "frames with IoU below 0.99 / 0.9 / 0.5: 3 / 1 / 0 of 3" in md


def test_cli_checks_its_arguments(tmp_path, capsys):
    from vtrack.cli import main

    for argv, message in ((["--out", str(tmp_path)], "or pass --zoo"),
                          (["x.yaml", "--fps-sequences", "0"], "--fps-sequences: expected a positive int"),
                          (["no_such_tracker", "--root", str(tmp_path)], "zoo names")):
        assert main(["bench", "deploy", *argv]) != 0
        assert message in capsys.readouterr().err
