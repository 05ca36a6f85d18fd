"""benchmarks/zoo_tuning.py (issue 13): a tracker-option sweep's table, the point chosen by the
tuning-set AO alone, from one or several `vtrack ablate` sweeps."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_zoo_tuning", ROOT / "benchmarks" / "zoo_tuning.py")
Z = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = Z
_spec.loader.exec_module(Z)


def _sweep(folder: Path, aos: dict[str, float]) -> Path:
    folder.mkdir(parents=True)
    rows = {name: {"got10k": {"ao": ao, "sr50": ao + 0.05}} for name, ao in aos.items()}
    (folder / "ablation.json").write_text(json.dumps(rows))
    return folder


def _benchmark(root: Path, sequences: int) -> Path:
    root.mkdir(parents=True)
    stats = {"val": {"sequences": sequences, "frames": 10 * sequences}}
    (root / "manifest.json").write_text(json.dumps({"hash": f"h{sequences}", "params": {}, "stats": stats}))
    return root


def test_two_sweeps_merge_in_order_and_the_best_tuning_point_is_required(tmp_path, capsys):
    tune_root, val_root = _benchmark(tmp_path / "tune", 60), _benchmark(tmp_path / "synthetic", 10)
    t1 = _sweep(tmp_path / "t1", {"w=0.2": 0.66, "w=0.35": 0.63})
    t2 = _sweep(tmp_path / "t2", {"w=0.1": 0.67})
    v1 = _sweep(tmp_path / "v1", {"w=0.2": 0.58, "w=0.35": 0.59, "w=0.1": 0.60})
    out = tmp_path / "out"
    common = ["vlt_x", "--tune", str(t1), "--tune", str(t2), "--val", str(v1), "--tune-root", str(tune_root),
              "--val-root", str(val_root), "--out", str(out)]
    with pytest.raises(SystemExit):  # 0.2 is not the best tuning-set point: refused
        Z.main([*common, "--chosen", "w=0.2"])
    assert "the best tuning-set AO is 'w=0.1'" in capsys.readouterr().err
    assert Z.main([*common, "--chosen", "w=0.1"]) == 0
    report = json.loads((out / "vlt_x.json").read_text())
    assert [p["point"] for p in report["points"]] == ["w=0.2", "w=0.35", "w=0.1"]
    assert report["points"][2]["val"]["ao"] == 0.60 and report["tuning_set"]["sequences"] == 60
    assert "| **w=0.1** | 67.0 | 72.0 | 60.0 | 65.0 |" in (out / "vlt_x.md").read_text()


def test_a_point_in_two_sweeps_is_an_error(tmp_path, capsys):
    tune_root, val_root = _benchmark(tmp_path / "tune", 60), _benchmark(tmp_path / "synthetic", 10)
    t1 = _sweep(tmp_path / "t1", {"w=0.2": 0.66})
    t2 = _sweep(tmp_path / "t2", {"w=0.2": 0.67})
    with pytest.raises(SystemExit):
        Z.main(["vlt_x", "--tune", str(t1), "--tune", str(t2), "--val", str(t1), "--tune-root", str(tune_root),
                "--val-root", str(val_root), "--chosen", "w=0.2", "--out", str(tmp_path / "out")])
    assert "point 'w=0.2' is in two sweeps" in capsys.readouterr().err
