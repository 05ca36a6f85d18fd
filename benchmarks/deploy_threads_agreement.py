"""One PyTorch tracker against itself with 1 and 2 torch threads, both free-running (issue 15).

Only the float summation order changes between the two (the kernels split their work by thread),
so the mean IoU of the two trajectories over the split measures how far the tracking loop
amplifies rounding alone: the yardstick for the onnxruntime-vs-PyTorch figure of docs/deploy.md.

    python benchmarks/deploy_threads_agreement.py sparsett_cpu vlt_scar_cpu
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    """Track every sequence of the split with both thread counts; print the mean IoU per tracker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trackers", nargs="+", help="zoo names")
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    from vtrack.data import load_dataset
    from vtrack.eval.metrics import iou
    from vtrack.eval.runner import track_sequence
    from vtrack.models.layers.backend import SupportsBackend
    from vtrack.tracking.loader import build_tracker

    seqs = list(load_dataset("synthetic", args.root, args.split))
    for name in args.trackers:
        trackers = {}
        for threads in (1, 2):
            trackers[threads] = build_tracker(name)
            if isinstance(trackers[threads].model, SupportsBackend):
                trackers[threads].model.set_backend("cpp")
        ious = []
        for seq in seqs:
            boxes = {}
            for threads, tracker in trackers.items():
                torch.set_num_threads(threads)  # the shared loop: initialised with the sequence's info (language)
                boxes[threads] = track_sequence(tracker, seq).boxes[1:]
            ious.append(iou(boxes[1], boxes[2]))
        v = np.concatenate(ious)
        print(f"{name}: cpp, 1 vs 2 threads, free-running over {len(seqs)} sequences ({v.size} frames): "
              f"mean IoU {np.nanmean(v):.4f}; frames below 0.99: {int((v < 0.99).sum())}")


if __name__ == "__main__":
    main()
