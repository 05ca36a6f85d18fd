"""Training-step CPU time of one tracker, kernel backends interleaved in one process (busy-machine variant).

``benchmarks/train.py`` (``vtrack bench train``) times steps by the wall clock; on a machine whose
cores are taken by other processes that mostly measures the scheduler. This script runs the same
step (:class:`vtrack.bench.train._StepRunner`: forward, loss, backward, clipping, AdamW on one batch
of the real pipeline) for every backend, alternating the backends step by step, with torch pinned to
one thread, and reports the minimum and median *process CPU time* per step and the speed-up of each
backend over the first.

    PYTHONPATH=. python benchmarks/train_cputime.py --config configs/esat/esat_tiny.yaml \\
        --backends reference cpp [--batch-size 8] [--steps 10] [--warmup 2] [--out benchmarks/results/cpu/x.json]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

from vtrack.bench.common import environment, markdown_table, write_json
from vtrack.bench.train import _StepRunner, make_batch
from vtrack.config import load_config
from vtrack.io import atomic_write_text


def run(config: str, backends: list[str], batch_size: int, steps: int, warmup: int) -> list[dict]:
    """One row per backend: min/median CPU ms per step over ``steps`` interleaved steps."""
    torch.set_num_threads(1)
    cfg = load_config(config)
    batch = make_batch(cfg, batch_size)
    runners = {b: _StepRunner(copy.deepcopy(cfg), b, torch.device("cpu"), batch_size, None, batch) for b in backends}
    for _ in range(warmup):
        for r in runners.values():
            r.step()
    times: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(steps):
        for b, r in runners.items():
            t0 = time.process_time()
            r.step()
            times[b].append((time.process_time() - t0) * 1e3)
    base = backends[0]
    rows = []
    for b in backends:
        rows.append({"config": Path(config).stem, "backend": b, "batch": batch_size, "threads": 1, "steps": steps,
                     "min_cpu_ms": min(times[b]), "median_cpu_ms": statistics.median(times[b]),
                     "speedup_min": min(times[base]) / min(times[b]),
                     "speedup_median": statistics.median(times[base]) / statistics.median(times[b]),
                     "cpu_ms_all": times[b]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--backends", nargs="+", default=["reference", "cpp"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="JSON path (a .md is written next to it)")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--batch-size/--steps must be >= 1 and --warmup >= 0")
    rows = run(args.config, args.backends, args.batch_size, args.steps, args.warmup)
    cols = ["config", "backend", "batch", "threads", "steps", "min_cpu_ms", "median_cpu_ms", "speedup_min",
            "speedup_median"]
    table = markdown_table(rows, cols)
    print(table)
    if args.out is not None:
        env = environment("cpu")
        write_json(args.out, {"environment": env, "command": " ".join(sys.argv), "rows": rows})
        md = [f"# Training step CPU time on {env['device_name']} ({Path(args.config).stem})", "",
              f"ISA path: {env['cpp_isa']}; torch {env['torch']}; commit {env['git_commit'][:10]}; load average "
              f"{env['load_avg_1m']:.1f}; 1 thread; process CPU time per step, backends interleaved step by step "
              f"(`benchmarks/train_cputime.py`); speed-up = first backend's time / this backend's.", "", table]
        atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
