"""Measure deployment of trackers: export time and ONNX size, agreement of the onnxruntime
tracker with the PyTorch tracker on a dataset, FPS (``python -m vtrack.deploy.measure``).

For each tracker (a zoo name, or a config with optional weights; without weights a seeded
random model): export with :func:`vtrack.deploy.export_engine` (time, bytes), then on the
sequences of a dataset split run the PyTorch tracker and the onnxruntime tracker free-running
(mean IoU of their boxes per frame, the issue's measure) and, per frame from the PyTorch
tracker's state, the onnxruntime tracker's next box (mean IoU "per step": the runtimes compared
without the tracking loop amplifying differences). FPS comes from ``vtrack bench trackers
--runtime pytorch onnxruntime`` (:func:`vtrack.bench.trackers.bench_case`).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _iou(a: Any, b: Any) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def measure(cfg: dict[str, Any], state: dict[str, Any] | None, name: str, sequences: list[Any],
            max_frames: int | None = None) -> dict[str, Any]:
    """Export time/size and IoU between runtimes of one tracker on ``sequences``."""
    from vtrack.deploy import export_engine, use_onnxruntime
    from vtrack.models import get_family
    from vtrack.tracking.loader import load_state_into

    fam = get_family(cfg["model"]["name"])
    torch.manual_seed(0)
    model = fam.build_model(cfg["model"])
    if state is not None:
        load_state_into(model, state, source=name)
    model.eval()
    pt = fam.build_tracker(model, cfg, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = export_engine(pt.engine, Path(tmp) / "onnx")
        export_s = time.perf_counter() - t0
        ort = use_onnxruntime(fam.build_tracker(model, cfg, "cpu"), cfg, onnx_dir=Path(tmp) / "onnx", threads=1)
        free, step = [], []
        for seq in sequences:
            n = min(len(seq), max_frames) if max_frames else len(seq)
            imgs = [seq.frame(i) for i in range(n)]
            box0 = tuple(float(v) for v in seq.boxes[0])
            a, b = fam.build_tracker(model, cfg, "cpu"), ort
            a.initialize(imgs[0], box0)
            b.initialize(imgs[0], box0)
            for img in imgs[1:]:
                twin = copy.deepcopy(a, memo={id(a.engine): ort.engine, id(a.model): a.model})
                ra = a.track(img).box
                step.append(_iou(ra, twin.track(img).box))
                free.append(_iou(ra, b.track(img).box))
    return {
        "tracker": name, "family": cfg["model"]["name"], "export_s": round(export_s, 2),
        "onnx_mb": round(sum(b["bytes"] for b in manifest["branches"].values()) / 1e6, 2),
        "branches": {k: {"opset": v["opset"], "nodes": v["nodes"], "mb": round(v["bytes"] / 1e6, 2)}
                     for k, v in manifest["branches"].items()},
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "frames": len(free), "iou_free": float(np.mean(free)), "iou_step": float(np.mean(step)),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m vtrack.deploy.measure``: one JSON line per tracker."""
    from vtrack.config import load_config
    from vtrack.data import load_dataset

    p = argparse.ArgumentParser(prog="python -m vtrack.deploy.measure", description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+", help="zoo names or config paths (random seeded weights without --checkpoint)")
    p.add_argument("--checkpoint", help="weights (only with a single config)")
    p.add_argument("--root", default="data/synthetic", help="synthetic dataset root")
    p.add_argument("--split", default="test")
    p.add_argument("--sequences", type=int, default=5, help="first N sequences")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--override", nargs="*", default=[], metavar="key=value", help="config overrides")
    p.add_argument("--out", help="JSON file for the rows")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seqs = list(load_dataset("synthetic", args.root, args.split))[: args.sequences]
    rows = []
    for spec in args.configs:
        from vtrack import zoo

        if zoo.is_zoo_name(spec):
            entry = zoo.get_entry(spec)
            cfg, state = zoo.zoo_config(entry), zoo.load_zoo_state_dict(entry)
        else:
            from vtrack.tracking.loader import read_state_dict

            cfg = load_config(spec, args.override)
            state = read_state_dict(args.checkpoint) if args.checkpoint else None
        row = measure(cfg, state, Path(spec).stem, seqs, args.max_frames)
        row["weights"] = "trained" if state is not None else "random (seeded)"
        rows.append(row)
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
    if args.out:
        from vtrack.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
