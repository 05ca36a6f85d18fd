"""Tracking-step cost of tracker variants, interleaved frame by frame in one process (issue 13).

On a machine shared with other jobs, wall-clock FPS mostly measures the wait for a core. This
script times every variant on the same frame in turn, with the CPU time of the tracking thread
(``time.thread_time``), and times a fixed reference workload (10 matmuls 256x256) after every
frame: ``step / reference`` ratios compare runs made under different loads. It also compares
the boxes of variants that must track identically (``--same``).

    python benchmarks/tracker_step_ratios.py --frames 30 --out benchmarks/results/cpu/zoo_bench/step_ratios.json \
        ostrack_cpu:cpp:on ostrack_cpu:cpp:off ostrack_cpu:reference:on ostrack_cpu:reference:off \
        esat_cpu:cpp:on esat_cpu:cpp:off configs/duml/duml_cpu.yaml:-:nchw configs/duml/duml_cpu.yaml:-:-

A spec is ``TRACKER:BACKEND:OPTION``: TRACKER a zoo name or a config (random weights, seed 0);
BACKEND a kernel backend or ``-``; OPTION ``on``/``off`` (candidate elimination), ``nchw`` (the
model's convolutions kept in the contiguous NCHW layout instead of the tracker's channels-last), or ``-``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch


def build(spec: str) -> Any:
    """The tracker of one spec (see the module docstring)."""
    from vtrack.config import load_config
    from vtrack.models import get_family
    from vtrack.tracking import build_tracker

    name, backend, option = spec.split(":")
    if name.endswith((".yaml", ".yml")):
        cfg = load_config(name, [])
        fam = get_family(cfg["model"]["name"])
        torch.manual_seed(0)
        tracker = fam.build_tracker(fam.build_model(cfg["model"]), cfg, "cpu")
    else:
        tracker = build_tracker(name)
    if backend != "-":
        tracker.model.set_backend(backend)
    if option in ("on", "off"):
        tracker.model.set_ce(option == "on")
    elif option == "nchw":
        tracker.model.to(memory_format=torch.contiguous_format)
    return tracker


def main(argv: list[str] | None = None) -> int:
    """Run the interleaved measurement; prints a table, optionally writes JSON."""
    from vtrack.bench.common import environment
    from vtrack.bench.trackers import _synthetic_frames
    from vtrack.io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--same", nargs="*", default=[], metavar="A=B", help="spec pairs whose boxes are compared")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    env = environment("cpu")
    trackers = {s: build(s) for s in args.specs}
    imgs, boxes = _synthetic_frames(args.frames + args.warmup + 1, 360, 480)
    for t in trackers.values():
        t.initialize(imgs[0], boxes[0])
    a = torch.randn(256, 256)
    cpu: dict[str, list[float]] = {s: [] for s in trackers}
    out_boxes: dict[str, list[Any]] = {s: [] for s in trackers}
    ref: list[float] = []
    for i, img in enumerate(imgs[1:]):
        for s, t in trackers.items():
            c0 = time.thread_time()
            box = t.track(img).box
            if i >= args.warmup:
                cpu[s].append(time.thread_time() - c0)
            out_boxes[s].append(box)
        c0 = time.thread_time()
        for _ in range(10):
            a @ a
        ref.append(time.thread_time() - c0)
    r0 = statistics.median(ref)
    rows = []
    for s in trackers:
        mean = sum(cpu[s]) / len(cpu[s])
        rows.append({"spec": s, "cpu_ms_mean": 1e3 * mean, "cpu_ms_median": 1e3 * statistics.median(cpu[s]),
                     "fps_cpu": 1.0 / mean, "step_over_reference": mean / r0})
    same = {}
    for pair in args.same:
        x, y = pair.split("=")
        same[pair] = float(np.abs(np.asarray(out_boxes[x]) - np.asarray(out_boxes[y])).max())
    print(f"{env['device_name']}, load average {env['load_avg_1m']}, reference workload {1e3 * r0:.2f} ms CPU")
    print("| spec | CPU ms/frame (mean) | median | FPS (CPU time) | step / reference |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['spec']} | {r['cpu_ms_mean']:.2f} | {r['cpu_ms_median']:.2f} | {r['fps_cpu']:.1f} | "
              f"{r['step_over_reference']:.2f} |")
    for pair, d in same.items():
        print(f"max |box difference| {pair}: {d:.3g} px over {len(imgs) - 1} frames")
    if args.out:
        atomic_write_text(args.out, json.dumps({"environment": env, "arguments": vars(args), "reference_ms": 1e3 * r0,
                                                "rows": rows, "max_box_difference_px": same}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
