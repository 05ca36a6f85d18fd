"""The built wheel works outside the checkout: configs, zoo and console script are packaged.

Builds the wheel (``pip wheel --no-deps --no-build-isolation``, without the C++ extension to keep
it fast: the kernels then fall back to their other backends), installs it into a fresh venv in a
temporary folder, and runs ``vtrack zoo list``, ``vtrack demo --quick``, ``vtrack zoo add`` and
``vtrack eval --tracker NAME`` there, from a working directory without ``configs/``. The fresh
venv reuses this interpreter's installed dependencies through a ``.pth`` line instead of
downloading them again (the dependency list itself is checked in test_packaging.py).
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(venv python, a clean environment, a working directory outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy of the tracked files, so the checkout gets no build/ or egg-info
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        path = ROOT / rel
        if path.is_symlink() or not path.is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, src / rel)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VTRACK_ZOO_DIR")}
    env.update(VTRACK_NO_EXT="1", VTRACK_NO_JIT="1", OMP_NUM_THREADS="1")
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
         cwd=tmp, env=env)
    (wheel,) = dist.glob("vtrack-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp,
                        env=env).strip())
    # the dependencies: this interpreter's site-packages, after the venv's own
    (purelib / "_vtrack_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], cwd=tmp, env=env)
    work = tmp / "work"
    work.mkdir()
    return py, env, work


def test_wheel_packages_configs_and_zoo(wheel_venv):
    py, env, work = wheel_venv
    out = _run([str(py), "-c", "import vtrack, vtrack.configs as c; print(vtrack.__file__); "
                "print(sorted(p.relative_to(c.CONFIG_DIR).as_posix() for p in c.CONFIG_DIR.glob('*/*.yaml')))"],
               cwd=work, env=env)
    location, configs = out.splitlines()
    assert str(ROOT) not in location and "site-packages" in location
    shipped = sorted(p.relative_to(ROOT / "vtrack" / "configs").as_posix()
                     for p in (ROOT / "vtrack" / "configs").glob("*/*.yaml"))
    assert eval(configs) == shipped  # noqa: S307 - our own repr of a list of str
    # the installed zoo lists the same entries as the checkout's, and every entry builds there
    listed = json.loads(_run([str(py.parent / "vtrack"), "zoo", "list", "--json"], cwd=work, env=env))
    from vtrack.zoo import list_entries

    assert [e["name"] for e in listed] == [e.name for e in list_entries()]
    for entry in listed:
        assert str(ROOT) not in entry["weights"]["path"]
        _run([str(py), "-c", f"from vtrack.tracking import build_tracker; build_tracker({entry['name']!r})"],
             cwd=work, env=env)


def test_wheel_runs_demo_quick_and_a_zoo_entry_outside_the_checkout(wheel_venv, tmp_path):
    py, env, work = wheel_venv
    vtrack = str(py.parent / "vtrack")
    out = _run([vtrack, "demo", "--quick", "--no-bench", "--out", str(tmp_path / "demo")], cwd=work, env=env)
    assert "report written" in out and (tmp_path / "demo" / "README.md").is_file()
    # a trained checkpoint -> a zoo entry (in a zoo folder of its own) -> eval by name alone
    ckpt = next((tmp_path / "demo" / "train").rglob("checkpoint_*.pth"))
    zoo_env = {**env, "VTRACK_ZOO_DIR": str(tmp_path / "zoo")}
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"val": {"ao": 0.1}, "test": {"ao": 0.1}}))
    _run([vtrack, "zoo", "add", "wheel_zoo", "--checkpoint", str(ckpt), "--train-command", "vtrack demo --quick",
          "--seed", "0", "--wall-minutes", "0.1", "--metrics-json", str(metrics)], cwd=work, env=zoo_env)
    _run([vtrack, "eval", "--tracker", "wheel_zoo", "--dataset", "synthetic", "--root",
          str(work / "data" / "synthetic_quick"), "--split", "test", "--out", str(tmp_path / "res"), "--no-progress"],
         cwd=work, env=zoo_env)
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["tracker"] == "wheel_zoo" and 0.0 <= summary["scores"]["ao"] <= 1.0
