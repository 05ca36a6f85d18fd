"""VLT's language at inference: the same weights tracked with and without the sequences' descriptions.

    OMP_NUM_THREADS=1 python benchmarks/vlt_language.py [--tracker vlt_scar_cpu] [--root data/synthetic] --split val
    OMP_NUM_THREADS=1 python benchmarks/vlt_language.py --tracker mine --config runs/x/config.yaml \
        --checkpoint runs/x/checkpoint_e0010.pth --split test      # a trained VLT (e.g. one trained without language)

Prints one JSON line per condition: GOT-10k AO / SR0.5 (x100, ``vtrack.eval.evaluate.got10k_scores``) over
the split and AO over its sequences with distractors. Without a description the model uses its
``model.missing_language`` policy. A model trained with language is then out of its training
distribution, so this is an ablation of the trained tracker, not the paper's comparison (a model
trained without language).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch

from vtrack.data import load_dataset
from vtrack.eval.evaluate import got10k_scores
from vtrack.eval.runner import track_sequence
from vtrack.tracking import build_tracker


def main(argv: list[str] | None = None) -> int:
    """Track the split with and without language and print the two rows."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracker", default="vlt_scar_cpu", help="a zoo VLT tracker (or a name with --config/--checkpoint)")
    p.add_argument("--config", default=None, help="config of a trained VLT (with --checkpoint)")
    p.add_argument("--checkpoint", default=None, help="checkpoint of a trained VLT")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--root", default="data/synthetic")
    p.add_argument("--split", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seqs = load_dataset(args.dataset, args.root, args.split)
    distractors = [s for s in seqs if s.attributes.get("distractors", 0) > 0]
    for language in (True, False):
        run = seqs if language else [dataclasses.replace(s, language=None) for s in seqs]
        tracker = build_tracker(args.tracker, config=args.config, checkpoint=args.checkpoint)
        boxes = {o.name: o.boxes for o in (track_sequence(tracker, s) for s in run)}
        res, sub = got10k_scores(boxes, seqs), got10k_scores(boxes, distractors)
        sys.stdout.write(json.dumps({"split": args.split, "language": language, "ao": round(100 * res.ao, 2),
                                     "sr50": round(100 * res.sr50, 2), "distractor_sequences": len(distractors),
                                     "ao_distractors": round(100 * sub.ao, 2)}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
