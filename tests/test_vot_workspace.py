"""VOT-format writing and the vot-toolkit report reader (fast; the real toolkit runs in
test_vot_toolkit.py, --runslow)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vtrack.bench.vot_toolkit import STACK, compare
from vtrack.data.benchmarks import load_vot, read_vot_sequence, write_vot_sequence
from vtrack.deploy.vot import read_toolkit_analysis, write_workspace


def _frames(n: int, w: int = 48, h: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_write_vot_sequence_round_trip(tmp_path):
    boxes = np.array([[1.5, 2.25, 10.0, 8.0], [2.0, 3.0, 11.5, 7.75], [3.0, 4.0, 12.0, 9.0]])
    write_vot_sequence(tmp_path / "a", _frames(3), boxes)
    seq = read_vot_sequence(tmp_path / "a")
    assert seq.name == "a" and len(seq) == 3
    np.testing.assert_allclose(seq.boxes, boxes, atol=1e-4)
    assert seq.frame(0).shape == (32, 48, 3)
    polys = np.tile(np.array([[0, 0, 10, 0, 10, 5, 0, 5]], float), (3, 1))
    write_vot_sequence(tmp_path / "b", _frames(3), polys)
    np.testing.assert_allclose(read_vot_sequence(tmp_path / "b").attributes["polygons"], polys)


def test_write_vot_sequence_checks_inputs(tmp_path):
    with pytest.raises(ValueError, match="regions"):
        write_vot_sequence(tmp_path / "a", _frames(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="regions"):
        write_vot_sequence(tmp_path / "a", _frames(2), np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        write_vot_sequence(tmp_path / "a", [_frames(1)[0], np.zeros((32, 48), np.uint8)], np.ones((2, 4)))
    write_vot_sequence(tmp_path / "a", _frames(2), np.ones((2, 4)))
    with pytest.raises(FileExistsError, match="not empty"):
        write_vot_sequence(tmp_path / "a", _frames(2), np.ones((2, 4)))


def test_write_workspace(tmp_path):
    for name in ("s1", "s2"):
        write_vot_sequence(tmp_path / "sequences" / name, _frames(2), np.ones((2, 4)))
    with pytest.raises(FileNotFoundError, match="missing"):
        write_workspace(tmp_path, STACK, ["s1", "nope"])
    with pytest.raises(ValueError, match="experiments"):
        write_workspace(tmp_path, "title: x\n", ["s1"])
    write_workspace(tmp_path, STACK, ["s1", "s2"])
    assert [s.name for s in load_vot(tmp_path)] == ["s1", "s2"]
    assert "baseline" in (tmp_path / "stack.yaml").read_text()
    with pytest.raises(FileExistsError, match="stack.yaml"):
        write_workspace(tmp_path, STACK, ["s1"])


def test_read_toolkit_analysis(tmp_path):
    # the layout of a `vot analysis --format json` report of vot-toolkit 0.9.0 (values from a real run)
    analyses = [{"type": "vot.analysis.supervised.AverageAccuracyRobustness", "sensitivity": 30.0},
                {"type": "vot.analysis.supervised.EAOScore", "low": 100, "high": 356}]
    report = {"toolkit": "0.9.0", "trackers": {"vtrack_static": {}, "other": {}},
              "results": {"baseline": {"parameters": {"analyses": analyses}, "results": [
                  [[0.16995033398005488, 24.0, [0.16529888822158656, 0.16995033398005488], 400.0], [0.5, 1, [0.9, 0.5], 1]],
                  [[0.023332001041557828], [0.4]]]}}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    got = read_toolkit_analysis(path, "baseline", "vtrack_static")
    assert got == {"accuracy": 0.16995033398005488, "failures": 24.0, "robustness_exp": 0.16529888822158656,
                   "eao": 0.023332001041557828}
    assert read_toolkit_analysis(path, "baseline", "other")["eao"] == 0.4
    with pytest.raises(KeyError, match="tracker"):
        read_toolkit_analysis(path, "baseline", "missing")
    with pytest.raises(KeyError, match="experiment"):
        read_toolkit_analysis(path, "realtime", "vtrack_static")
    rows = compare({"accuracy": 0.17, "failures_mean": 24.0, "robustness_exp": 0.1653}, got)
    assert [r["score"] for r in rows] == ["accuracy", "failures", "robustness_exp", "eao"]
    assert rows[1]["abs_diff"] == 0.0 and rows[3]["vtrack"] is None and rows[3]["abs_diff"] is None
