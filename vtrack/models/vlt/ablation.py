"""VLT experiments on the synthetic benchmark (its captions tell the target from look-alikes):

* ``language``: the same VLT_SCAR trained and tracked with language vs with the "0-tensor"
  (``model.use_language: false``), on the same budget; success AUC and GOT-10k AO over all test
  sequences and over those with look-alike distractors;
* ``arch``: on one trained supernet, the architecture found by ``vtrack search`` vs randomly drawn
  ones, each with SPOS batch-norm recalibration, scored on the test split.

::

    python -m vtrack.models.vlt.ablation language --config configs/vlt/vlt_scar_tiny.yaml \\
        --with-language RUN_A/checkpoint.pth --without-language RUN_B/checkpoint.pth --root data/synthetic
    python -m vtrack.models.vlt.ablation arch --config configs/vlt/vlt_scar_tiny.yaml \\
        --supernet SUPERNET.pth --arch arch.json --random 3 --root data/synthetic
"""
from __future__ import annotations

import argparse
import copy
import json
import random
from pathlib import Path
from typing import Any, Sequence as Seq

import torch

from vtrack.data.sequence import Sequence
from vtrack.eval.metrics import got10k_metrics, ope_sequence, ope_summary
from vtrack.models.vlt.pipeline import recalibrate_bn, track_sequence
from vtrack.models.vlt.supernet import Architecture


def score(tracker_factory, sequences: Seq[Sequence], use_language: bool = True) -> dict[str, Any]:
    """Success AUC and AO over all sequences and over those with / without look-alike distractors."""
    preds = {s.name: track_sequence(tracker_factory(), s, use_language) for s in sequences}
    out: dict[str, Any] = {}
    groups = {
        "all": list(sequences),
        "distractors": [s for s in sequences if s.attributes.get("distractors", 0)],
        "no_distractors": [s for s in sequences if not s.attributes.get("distractors", 0)],
    }
    for key, seqs in groups.items():
        if not seqs:
            continue
        curves = [ope_sequence(preds[s.name], s.boxes, s.valid, name=s.name) for s in seqs]
        ao = got10k_metrics({s.name: preds[s.name] for s in seqs}, {s.name: s.boxes for s in seqs},
                            covers={s.name: s.attributes["cover"] for s in seqs if "cover" in s.attributes} or None)
        out[key] = {"sequences": len(seqs), "auc": ope_summary(curves).auc, "ao": ao.ao, "sr50": ao.sr50}
    return out


def _load(family, cfg: dict[str, Any], checkpoint: str | Path, **model_overrides: Any):
    mcfg = {**cfg["model"], **model_overrides}
    model = family.build_model(mcfg)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model", state))
    return model, {**cfg, "model": mcfg}


def language_ablation(cfg: dict[str, Any], with_language: str, without_language: str,
                      sequences: Seq[Sequence]) -> dict[str, Any]:
    """Both models on ``sequences``; the language model is also tracked without its captions."""
    from vtrack.models import get_family

    fam = get_family("vlt")
    rows = {}
    m, c = _load(fam, cfg, with_language, use_language=True)
    rows["language"] = score(lambda: fam.build_tracker(m, c), sequences, True)
    rows["language model, no caption at test"] = score(lambda: fam.build_tracker(m, c), sequences, False)
    m0, c0 = _load(fam, cfg, without_language, use_language=False)
    rows["0-tensor"] = score(lambda: fam.build_tracker(m0, c0), sequences, False)
    return rows


def arch_ablation(cfg: dict[str, Any], supernet: str, best: list[int], n_random: int, bn: list[dict],
                  sequences: Seq[Sequence], seed: int = 0) -> dict[str, Any]:
    """The searched architecture vs ``n_random`` uniformly drawn ones on the same supernet weights."""
    from vtrack.models import get_family

    fam = get_family("vlt")
    model, c = _load(fam, cfg, supernet, arch=None)
    base = copy.deepcopy(model.state_dict())
    rng = random.Random(seed)
    archs = {"searched": Architecture.from_list(best, model.spec)}
    for i in range(n_random):
        archs[f"random {i + 1}"] = Architecture.random(model.spec, rng)
    rows = {}
    for name, arch in archs.items():
        model.load_state_dict(base)
        recalibrate_bn(model, arch, bn, "cpu")
        model.set_arch(arch)
        rows[name] = {"arch": arch.to_list(), **score(lambda: fam.build_tracker(model, c), sequences)["all"]}
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see the module docstring)."""
    from vtrack.config import load_config
    from vtrack.data import load_dataset
    from vtrack.models import get_family
    from vtrack.models.vlt.commands import bn_batches

    p = argparse.ArgumentParser(prog="python -m vtrack.models.vlt.ablation")
    p.add_argument("what", choices=("language", "arch"))
    p.add_argument("--config", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--with-language")
    p.add_argument("--without-language")
    p.add_argument("--supernet")
    p.add_argument("--arch", help="JSON written by vtrack search")
    p.add_argument("--random", type=int, default=3)
    p.add_argument("--out", help="write the result JSON here")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    seqs = load_dataset("synthetic", args.root, args.split)
    torch.set_num_threads(1)
    if args.what == "language":
        if not (args.with_language and args.without_language):
            p.error("language: needs --with-language and --without-language checkpoints")
        result = language_ablation(cfg, args.with_language, args.without_language, seqs)
    else:
        if not (args.supernet and args.arch):
            p.error("arch: needs --supernet and --arch")
        best = json.loads(Path(args.arch).read_text())["arch"]
        bn = bn_batches(cfg, get_family("vlt"), 4, 16)
        result = arch_ablation(cfg, args.supernet, best, args.random, bn, seqs)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
