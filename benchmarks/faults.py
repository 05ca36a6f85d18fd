"""Fault and load benchmark (issue 16): nothing lost, nothing mixed.

* **faults/train**: ``vtrack train`` (a tiny OSTrack run) is SIGKILLed at a random moment, then
  resumed (``--resume DIR``, or ``--overwrite`` when it died before its first checkpoint). The
  final checkpoint must equal an uninterrupted run's bit for bit (weights, optimizer, step) and
  no stray file (``*.tmp``) may remain.
* **faults/eval**: ``vtrack eval`` of the trained tracker is SIGKILLed at a random moment and run
  again (resume). Its result files must equal an uninterrupted run's bit for bit (time files and
  the timing in summary.json aside), with no ``*.tmp`` or lock file left.
* **load**: ``vtrack eval --workers 2`` while a training runs on the same machine; results must
  equal a quiet run's bit for bit.

Every run is tiny (``vtrack synth --train 3 --val 1 --test 3 --frames 12 --size 160x120``, a
2-epoch training of 16 samples per epoch). Results are counts: tries, survived, lost.

    python benchmarks/faults.py --tries 20 --out benchmarks/results/faults.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vtrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "vtrack.cli", *args]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return res


def kill_after(cmd: list[str], delay: float) -> bool:
    """Start ``cmd`` in its own process group and SIGKILL the group after ``delay`` seconds;
    True when it was killed (False: it finished first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT,
                            start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group of the child this script started (and its workers)
        proc.wait()
        return True


def stray(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(".tmp") or p.name.endswith(".lock"))


def train_cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return vtrack("train", str(cfg), "--out-dir", str(out), *extra)


def final_state(folder: Path) -> dict:
    import torch

    ckpt = torch.load(folder / "checkpoint_e0002.pth", map_location="cpu", weights_only=True)
    return {"model": ckpt["model"], "optimizer": ckpt["optimizer"], "step": ckpt["step"]}


def same_state(a: dict, b: dict) -> bool:
    import torch

    def eq(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(eq(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(eq(u, w) for u, w in zip(x, y))
        return x == y

    return eq(a, b)


def result_files(folder: Path) -> dict[str, bytes]:
    """Every result file except the timing (``*_time.txt``, summary.json's fps)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.endswith("_time.txt") and p.name != "summary.json":
            out[str(p.relative_to(folder))] = p.read_bytes()
    summary = folder / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        s.pop("fps", None)
        s.get("scores", {}).pop("fps", None)
        for v in s.get("sequences", {}).values():
            v.pop("fps", None)
        out["summary.json (without fps)"] = json.dumps(s, sort_keys=True).encode()
    return out


def eval_cmd(ckpt: Path, cfg: Path, data: Path, out: Path, workers: int = 1) -> list[str]:
    return vtrack("eval", "--tracker", "ostrack_tiny", "--config", str(cfg), "--checkpoint", str(ckpt),
                  "--dataset", "synthetic", "--root", str(data), "--split", "test", "--out", str(out),
                  "--workers", str(workers), "--no-progress")


def save(path: Path, report: dict) -> None:
    """Write the report so far (each phase adds its counts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=20, help="kills per benchmark (train, eval) and loaded evals")
    p.add_argument("--load-tries", type=int, default=None, help="loaded eval runs (default: --tries)")
    p.add_argument("--work", type=Path, default=Path("/tmp/vtrack_faults"), help="scratch folder (emptied)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faults.json")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    import shutil

    import yaml

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    data = args.work / "data"
    t0 = time.time()
    run(vtrack("synth", "--out", str(data), "--train", "3", "--val", "1", "--test", "3", "--frames", "12",
               "--size", "160x120"))
    cfg = yaml.safe_load((ROOT / "configs" / "ostrack" / "ostrack_tiny.yaml").read_text())
    cfg["data"]["datasets"] = [{"name": "synthetic", "root": str(data), "split": "train"}]
    cfg["data"]["sampler"]["samples_per_epoch"] = 16
    cfg["model"]["backbone"]["backend"] = "reference"  # file handling is measured here, not kernels
    cfg["train"].update(epochs=2, batch_size=4, log_interval=1, checkpoint_steps=2, keep_checkpoints=2)
    cfg_path = args.work / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    # reference training and evaluation (quiet)
    ref_dir = args.work / "train_ref"
    t = time.time()
    run(train_cmd(cfg_path, ref_dir))
    t_train = time.time() - t
    ref_state = final_state(ref_dir)
    ref_names = sorted(p.name for p in ref_dir.glob("checkpoint_*.pth"))
    ckpt = ref_dir / "checkpoint_e0002.pth"
    ref_eval = args.work / "eval_ref"
    t = time.time()
    run(eval_cmd(ckpt, cfg_path, data, ref_eval))
    t_eval = time.time() - t
    ref_results = result_files(ref_eval)
    report: dict = {"cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                    "reference_seconds": {"train": round(t_train, 1), "eval": round(t_eval, 1)}}

    # faults: train
    outcomes = []
    for i in range(args.tries):
        out = args.work / f"train_{i}"
        delay = rng.uniform(0.0, t_train)
        killed = kill_after(train_cmd(cfg_path, out), delay)
        has_ckpt = any(out.glob("checkpoint_*.pth"))
        if killed:
            run(train_cmd(cfg_path, out, "--resume", str(out)) if has_ckpt else train_cmd(cfg_path, out, "--overwrite"))
        ok = (same_state(final_state(out), ref_state) and not stray(out)
              and sorted(p.name for p in out.glob("checkpoint_*.pth")) == ref_names)
        outcomes.append({"delay_s": round(delay, 2), "killed": killed, "resumed_from_checkpoint": has_ckpt,
                         "survived": ok, "stray": stray(out)})
        print(f"train {i}: kill at {delay:.1f}s killed={killed} checkpoint={has_ckpt} survived={ok}", flush=True)
    report["faults_train"] = {"tries": len(outcomes), "killed": sum(o["killed"] for o in outcomes),
                              "survived": sum(o["survived"] for o in outcomes),
                              "lost": sum(not o["survived"] for o in outcomes), "runs": outcomes}

    save(args.out, report)

    # faults: eval
    outcomes = []
    for i in range(args.tries):
        out = args.work / f"eval_{i}"
        delay = rng.uniform(0.0, t_eval)
        killed = kill_after(eval_cmd(ckpt, cfg_path, data, out), delay)
        if killed:
            run(eval_cmd(ckpt, cfg_path, data, out))
        ok = result_files(out) == ref_results and not stray(out)
        outcomes.append({"delay_s": round(delay, 2), "killed": killed, "survived": ok, "stray": stray(out)})
        print(f"eval {i}: kill at {delay:.1f}s killed={killed} survived={ok}", flush=True)
    report["faults_eval"] = {"tries": len(outcomes), "killed": sum(o["killed"] for o in outcomes),
                             "survived": sum(o["survived"] for o in outcomes),
                             "lost": sum(not o["survived"] for o in outcomes), "runs": outcomes}

    save(args.out, report)

    # load: eval --workers 2 next to a training run, against a quiet --workers 2 run
    quiet = args.work / "load_quiet"
    run(eval_cmd(ckpt, cfg_path, data, quiet, workers=2))
    quiet_results = result_files(quiet)
    outcomes = []
    for i in range(args.load_tries if args.load_tries is not None else args.tries):
        busy = subprocess.Popen(train_cmd(cfg_path, args.work / f"load_train_{i}"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT)
        out = args.work / f"load_{i}"
        try:
            run(eval_cmd(ckpt, cfg_path, data, out, workers=2))
        finally:
            busy.wait()
        ok = result_files(out) == quiet_results and not stray(out)
        outcomes.append({"survived": ok})
        print(f"load {i}: survived={ok}", flush=True)
    report["load"] = {"tries": len(outcomes), "survived": sum(o["survived"] for o in outcomes),
                      "lost": sum(not o["survived"] for o in outcomes),
                      "quiet_equals_single_worker": quiet_results == ref_results}
    report["wall_seconds"] = round(time.time() - t0, 1)
    save(args.out, report)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "runs"} if isinstance(v, dict) else v
                      for k, v in report.items()}, indent=1))
    return 0


ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

if __name__ == "__main__":
    sys.exit(main())
