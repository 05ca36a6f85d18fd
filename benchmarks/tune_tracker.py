"""Grid over tracker options of a trained tracker, scored on a VALIDATION split (the test split is refused).

    python benchmarks/tune_tracker.py CONFIG CHECKPOINT --grid '{"tracker.ce_enabled": [true, false],
        "tracker.update.max_scale_step": [1e9, 1.15]}' [--root data/synthetic] [--split val]

Prints one JSON line per grid point: the overrides, GOT-10k AO / SR0.5 (x100) and the tracking FPS.
Tracking goes through the shared loop (``vtrack.eval.runner.track_sequence``) and the scores through
``vtrack.eval.evaluate.got10k_scores``; one thread, as the zoo's FPS. This is how the zoo's tracker
options and the CE-by-epoch table of docs/ostrack.md were obtained.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys

import numpy as np
import torch

from vtrack.config import set_by_path
from vtrack.data import load_dataset
from vtrack.eval.evaluate import got10k_scores
from vtrack.eval.runner import track_sequence
from vtrack.tracking.loader import build_tracker, load_tracker_config


def _with(cfg: dict, overrides: dict) -> dict:
    out = copy.deepcopy(cfg)
    for key, value in overrides.items():
        set_by_path(out, key, value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print one JSON line per point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--grid", default="{}", help="JSON object: dotted config key -> list of values")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--root", default="data/synthetic")
    p.add_argument("--split", default="val")
    args = p.parse_args(argv)
    if args.split.lower() == "test":
        p.error("--split: tuning on the test split is refused; use val")
    torch.set_num_threads(1)
    grid = json.loads(args.grid)
    base = load_tracker_config(args.config)
    seqs = load_dataset(args.dataset, args.root, args.split)
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(zip(keys, combo))
        tracker = build_tracker("candidate", config=_with(base, overrides), checkpoint=args.checkpoint)
        outs = [track_sequence(tracker, s) for s in seqs]
        res = got10k_scores({o.name: o.boxes for o in outs}, seqs).as_dict()
        seconds = sum(float(np.sum(o.times[1:])) for o in outs)
        frames = sum(len(o.times) - 1 for o in outs)
        sys.stdout.write(json.dumps({"overrides": overrides, "ao": round(100 * res["ao"], 2),
                                     "sr50": round(100 * res["sr50"], 2), "fps": round(frames / seconds, 1)}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
