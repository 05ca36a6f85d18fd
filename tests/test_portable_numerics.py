"""``train.numerics: portable``: the environment it needs, the refusals, and run-to-run identical weights
through ``vtrack train`` (which starts the pinned child process itself). The cross-CPU check (QEMU, minutes)
is ``benchmarks/portable_numerics_check.py``; its emulated-AMD run is the slow test at the end."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vtrack.io import tensors_sha256
from vtrack.train.numerics import PORTABLE_ENV, check_portable, missing_env, portable_environ, run_portable
from vtrack.train.schema import TrainConfig
from vtrack.train.trainer import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_train_config_accepts_only_the_two_numerics():
    assert TrainConfig(epochs=1, batch_size=1).numerics == "native"
    assert TrainConfig(epochs=1, batch_size=1, numerics="portable").numerics == "portable"
    with pytest.raises(ValueError, match="numerics: expected 'native' or 'portable', got 'fast'"):
        TrainConfig(epochs=1, batch_size=1, numerics="fast")


def test_environment_helpers():
    env = portable_environ({"PATH": "/bin", "MKL_CBWR": "AVX2"})
    assert env["PATH"] == "/bin" and env["MKL_CBWR"] == "COMPATIBLE"
    assert all(env[k] == v for k, v in PORTABLE_ENV.items())
    assert missing_env(env) == {}
    assert missing_env({"MKL_CBWR": "AVX2"})["MKL_CBWR"] == "COMPATIBLE"
    assert set(missing_env({})) == set(PORTABLE_ENV)


def test_check_portable_refuses_a_process_without_the_environment():
    if not missing_env():
        pytest.fail("the test process unexpectedly has the portable environment; run the suite without it")
    with pytest.raises(RuntimeError, match=r"train.numerics: 'portable' needs these variables set before torch "
                                           r"loads.*MKL_CBWR=COMPATIBLE"):
        check_portable()


def test_run_portable_checks_argv():
    with pytest.raises(TypeError, match="argv: expected a sequence of str"):
        run_portable("train x.yaml")
    with pytest.raises(TypeError, match="argv: expected a sequence of str"):
        run_portable(["train", Path("x.yaml")])  # type: ignore[list-item]


def _tiny_config(tmp_path: Path, data_root: Path) -> Path:
    import yaml

    from vtrack.config import load_yaml
    from vtrack.configs import resolve_config

    cfg = load_yaml(resolve_config("configs/ostrack/ostrack_tiny.yaml"))
    cfg["data"]["datasets"] = [{"name": "synthetic", "root": str(data_root), "split": "train"}]
    cfg["data"]["sampler"]["samples_per_epoch"] = 4
    cfg["train"].update(epochs=1, batch_size=2, log_interval=1, seed=3, numerics="portable")
    path = tmp_path / "tiny_portable.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights_sha(run: Path) -> str:
    return tensors_sha256(load_checkpoint(run)["model"])


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory):
    from vtrack.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("portable") / "data"
    return ensure_synthetic(root, workers=1, progress=False, train=2, val=0, test=0, frames=8, width=128, height=128)


def test_trainer_refuses_portable_numerics_without_the_environment(tmp_path, quick_data):
    from vtrack.config import load_config
    from vtrack.train import train

    cfg = load_config(_tiny_config(tmp_path, quick_data), [])
    with pytest.raises(RuntimeError, match="needs these variables set before torch loads"):
        train(cfg, out_dir=tmp_path / "run")
    assert not list((tmp_path / "run").glob("checkpoint_*.pth"))


def test_vtrack_train_runs_portable_numerics_in_a_pinned_child_identically_twice(tmp_path, quick_data):
    cfg = _tiny_config(tmp_path, quick_data)
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}  # as a user's shell: unpinned
    shas = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "vtrack.cli", "train", str(cfg), "--out-dir", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "portable numerics: 2 threads, MKL_CBWR=COMPATIBLE" in proc.stderr
        shas.append(_weights_sha(out))
    assert shas[0] == shas[1]


@pytest.mark.slow
def test_portable_weights_equal_under_an_emulated_amd_cpu(tmp_path, quick_data):
    """QEMU user mode with an AMD EPYC CPUID: MKL takes its non-Intel code, yet the weights are the same."""
    if shutil.which("qemu-x86_64") is None:
        pytest.fail("qemu-x86_64 not found (Debian: apt-get install qemu-user): this slow test needs it")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from portable_numerics_check import train_once
    finally:
        sys.path.pop(0)
    data = [f"data.datasets.0.root={quick_data}"]
    native = train_once("configs/ostrack/ostrack_tiny.yaml", tmp_path / "n", 2, 2, "portable", None, data)
    amd = train_once("configs/ostrack/ostrack_tiny.yaml", tmp_path / "q", 2, 2, "portable", "EPYC-Rome", data)
    assert native["sha256"] == amd["sha256"]
