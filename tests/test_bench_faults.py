"""benchmarks/faults.py (issue 16): its checks find what they must find (a stray temp file or
lock, a changed checkpoint bit, a duplicated log row, a changed result), and a short run passes."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_faults", ROOT / "benchmarks" / "faults.py")
F = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = F  # dataclasses look their module up
_spec.loader.exec_module(F)


def test_equal_objects_compares_tensor_bits():
    a = {"w": torch.zeros(3), "s": torch.tensor(5), "n": [torch.tensor([float("nan")]), 1, "x"]}
    b = {"w": torch.zeros(3), "s": torch.tensor(5), "n": [torch.tensor([float("nan")]), 1, "x"]}
    assert F.equal_objects(a, b)  # equal NaN bits are equal
    b["w"][1] = -0.0
    assert not F.equal_objects(a, b)  # -0.0 is not 0.0 bit for bit
    assert not F.equal_objects({"s": torch.tensor(5)}, {"s": torch.tensor(5.0)})  # dtype
    assert not F.equal_objects({"s": 1}, {"s": 1.0})
    assert not F.equal_objects([1, 2], [1, 2, 3])


def _train_folder(folder: Path, w: torch.Tensor) -> None:
    folder.mkdir()
    torch.save({"model": {"w": w}, "step": 12}, folder / "checkpoint_e0002.pth")
    (folder / "config.yaml").write_text("a: 1\n")
    (folder / "log.csv").write_text("epoch,step,loss,sec_per_step\n1,1,0.5,0.1\n1,2,0.4,0.1\n")


def test_train_differences_find_strays_bits_and_log_rows(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    _train_folder(ref, torch.arange(4.0))
    _train_folder(out, torch.arange(4.0))
    (out / "log.csv").write_text("epoch,step,loss,sec_per_step\n1,1,0.5,9.9\n1,2,0.4,7.7\n")  # timing only
    assert F.train_differences(out, ref) == []
    (out / ".checkpoint_s00000004.pth.x1.tmp").write_bytes(b"half")
    (out / "checkpoint_s00000004.pth").write_bytes(b"")
    diffs = F.train_differences(out, ref)
    assert len(diffs) == 1 and ".checkpoint_s00000004.pth.x1.tmp" in diffs[0] and "checkpoint_s00000004.pth" in diffs[0]
    for p in out.glob("*checkpoint_s*"):
        p.unlink()
    w = torch.arange(4.0)
    w.view(torch.int32)[2] ^= 1  # one bit
    torch.save({"model": {"w": w}, "step": 12}, out / "checkpoint_e0002.pth")
    assert F.train_differences(out, ref) == ["checkpoint_e0002.pth: ['model'] differ"]
    shutil.copy(ref / "checkpoint_e0002.pth", out)
    with (out / "log.csv").open("a") as fh:
        fh.write("1,2,0.4,0.1\n")  # a step logged twice
    assert F.train_differences(out, ref) == ["log.csv differs (timing column aside)"]
    (out / "log.csv").write_text("epoch,step,loss,sec_per_step\n1,1,0.5,0.1\n1,2,0.4,0.1\n1,3")  # cut row
    assert F.log_rows(out / "log.csv") is None


def test_eval_differences_ignore_only_the_timing(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    for folder, fps, t in ((ref, 10.0, "0.1\n"), (out, 99.0, "0.9\n")):
        folder.mkdir()
        (folder / "a_001.txt").write_text("1,2,3,4\n")
        (folder / "a_time.txt").write_text(t)
        (folder / "summary.json").write_text(json.dumps({"scores": {"ao": 0.5, "fps": fps}}))
    assert F.eval_differences(out, ref) == []
    (out / ".vtrack-eval.lock").write_text("1 host\n")
    assert ".vtrack-eval.lock" in F.eval_differences(out, ref)[0]
    (out / ".vtrack-eval.lock").unlink()
    (out / "summary.json").write_text(json.dumps({"scores": {"ao": 0.6, "fps": 10.0}}))
    assert F.eval_differences(out, ref) == ["summary.json differs"]


@pytest.mark.slow
def test_a_short_run_kills_resumes_and_survives(tmp_path):
    out = tmp_path / "faults.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "faults.py"), "--train-tries", "2",
                          "--eval-tries", "2", "--jobs", "2", "--work", str(tmp_path / "work"), "--out", str(out)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads(out.read_text())
    for kind in ("train", "eval"):
        assert report[kind]["tries"] == 2 and report[kind]["lost"] == 0
        assert report[kind]["by_moment"]["write"]["killed"] == 1  # a commit kill always lands
    assert out.with_suffix(".md").read_text().startswith("# Fault benchmark")
