"""benchmarks/gpu_check.sh on a CPU machine: the dry-run plan and the time-budget bookkeeping."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["triton-gpu-tests", "cuda-build", "cuda-tests", "bench-kernels", "ostrack-fps", "triton-all-tests"]


def _run(*args, env=None):
    full_env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=full_env,
                          cwd=ROOT, check=False)


def test_dry_run_prints_the_plan_in_priority_order(tmp_path):
    res = _run("--dry-run", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    positions = [res.stdout.index(name) for name in STEPS]
    assert positions == sorted(positions)
    assert "pytest -q -p no:cacheprovider -m gpu tests/test_kernels_triton.py" in res.stdout
    assert "TORCH_CUDA_ARCH_LIST=" in res.stdout and "MAX_JOBS=" in res.stdout
    assert "bench kernels --device cuda" in res.stdout
    assert "configs/ostrack/ostrack_256.yaml --batch 0" in res.stdout
    doc = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert doc["dry_run"] is True
    assert [s["step"] for s in doc["steps"]] == STEPS
    assert {s["status"] for s in doc["steps"]} == {"planned"}
    assert all(s["timebox_s"] > 0 for s in doc["steps"])
    assert "| cuda-tests | planned |" in (tmp_path / "out" / "gpu_check.md").read_text()


def test_steps_that_do_not_fit_the_budget_are_skipped_for_time(tmp_path):
    res = _run("--budget", "5", str(tmp_path), env={"GPU_CHECK_ASSUME_GPU": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["status"] for s in doc["steps"]] == ["skipped-for-time", "skipped-for-time", "skipped-dependency",
                                                   "skipped-for-time", "skipped-for-time", "skipped-for-time"]
    assert "skipped for time: triton-gpu-tests cuda-build bench-kernels" in res.stdout
    assert "SKIP cuda-tests: needs cuda-build" in (tmp_path / "gpu_check.log").read_text()


def test_bad_arguments_are_rejected(tmp_path):
    assert _run().returncode == 2
    res = _run("--budget", "ten", str(tmp_path))
    assert res.returncode == 2 and "--budget" in res.stderr
