"""DuML ablation on one budget: OFC alone, ONR alone, dual-modal, with/without score voting.

Trains one model per localization mode (``model.mode`` = ``ofc`` / ``onr`` / ``dual``) with the
same config and step budget, then runs each variant and the static baseline on a test split
with the VOT reset-based protocol (accuracy, robustness, EAO) and the GOT-10k protocol (AO,
SR0.5), and writes ``ablation.json`` and ``ablation.md`` into the output folder::

    python -m vtrack.models.duml.ablation configs/duml/duml_tiny.yaml --data data/synthetic \\
        --out runs/duml_ablation --steps 300

Finished trainings and result folders are reused (delete them to re-run).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence as Seq

import numpy as np

from vtrack.io import atomic_write_text

log = logging.getLogger(__name__)

#: variant name -> (model mode, tracker overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ofc": ("ofc", {"score_voting": False}),
    "onr": ("onr", {"score_voting": False}),
    "dual": ("dual", {"score_voting": False}),
    "dual+voting": ("dual", {"score_voting": True}),
}


def eao_interval_for(lengths: Seq[int]) -> tuple[int, int]:
    """EAO range for short sequences: the 25th..75th percentile of the sequence lengths.

    VOT derives its range from the length distribution of its own sequences ([100, 356] for
    VOT2018); the synthetic sequences are 40-100 frames, so the same rule is applied to them.
    """
    q = np.percentile(np.asarray(lengths, dtype=np.float64), [25, 75])
    lo = max(int(q[0]), 2)
    return lo, max(int(q[1]), lo + 1)


def train_mode(cfg: dict[str, Any], mode: str, out: Path, steps: int) -> Path:
    """Train ``model.mode = mode`` for ``steps`` optimizer steps (reusing a finished run)."""
    from vtrack.train import train

    run_dir = out / "train" / mode
    done = run_dir / "DONE"
    if done.is_file():
        return Path(done.read_text().strip())
    c = copy.deepcopy(cfg)
    c["model"]["mode"] = mode
    # size the epochs so that the learning-rate schedule ends exactly at ``steps``
    epochs = int(c["train"]["epochs"])
    c.setdefault("data", {}).setdefault("sampler", {})["samples_per_epoch"] = max(
        1, -(-steps * int(c["train"]["batch_size"]) // epochs)
    )
    t0 = time.time()
    ckpt = train(c, out_dir=run_dir, max_steps=steps)
    log.info("trained %s in %.0f s -> %s", mode, time.time() - t0, ckpt)
    atomic_write_text(done, str(ckpt))
    atomic_write_text(run_dir / "train_seconds.txt", f"{time.time() - t0:.1f}\n")
    return Path(ckpt)


def run_variant(name: str, cfg: dict[str, Any] | None, ckpt: Path | None, sequences: list, out: Path,
                eao: tuple[int, int]) -> dict[str, Any]:
    """Run one tracker with both protocols and return its scores."""
    from vtrack.eval.evaluate import evaluate_results
    from vtrack.eval.runner import run_tracker
    from vtrack.tracking.loader import build_tracker

    def factory() -> Any:
        if cfg is None:
            return build_tracker("static")
        return build_tracker(name, config=cfg, checkpoint=str(ckpt), device="cpu")

    scores: dict[str, Any] = {}
    for protocol in ("vot", "got10k"):
        res_dir = out / "results" / protocol / name.replace("+", "_")
        t0 = time.time()
        run_tracker(factory, sequences, res_dir, protocol=protocol, progress=False)
        kwargs = {"eao_interval": eao} if protocol == "vot" else {}
        summary = evaluate_results(res_dir, sequences, protocol=protocol, tracker=name, **kwargs)
        scores[protocol] = summary["scores"]
        scores[f"{protocol}_seconds"] = round(time.time() - t0, 1)
        scores[f"{protocol}_fps"] = summary.get("fps")
    return scores


def _fmt(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"


def to_markdown(rows: dict[str, dict[str, Any]], eao: tuple[int, int], steps: int) -> str:
    """The ablation table (VOT accuracy / failures per 100 frames / EAO, GOT-10k AO / SR0.5)."""
    lines = [
        f"Synthetic test split; every model trained {steps} steps from scratch; EAO range {eao[0]}-{eao[1]}.",
        "",
        "| tracker | A | R (fail/100 fr) | failures | EAO | AO | SR0.5 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        v, g = r.get("vot", {}), r.get("got10k", {})
        lines.append(
            f"| {name} | {_fmt(v.get('accuracy'))} | {_fmt(v.get('robustness'), 2)} | "
            f"{_fmt(v.get('failures'), 0)} | {_fmt(v.get('eao'))} | {_fmt(g.get('ao'))} | {_fmt(g.get('sr50'))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="DuML config (e.g. configs/duml/duml_tiny.yaml)")
    p.add_argument("--data", default="data/synthetic", help="synthetic benchmark root (generated if missing)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", default="runs/duml_ablation")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per model")
    p.add_argument("--variants", nargs="+", default=["static", *VARIANTS], choices=["static", *VARIANTS])
    p.add_argument("--max-sequences", type=int, default=None, help="use only the first N test sequences")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--train-only", action="store_true", help="train the variants' models, evaluate nothing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch

    from vtrack.config import load_config
    from vtrack.data import load_dataset
    from vtrack.data.synthetic import ensure_synthetic

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    ensure_synthetic(args.data)
    for ds in cfg.get("data", {}).get("datasets", []):
        if ds.get("name") == "synthetic":
            ds["root"] = args.data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sequences = list(load_dataset("synthetic", args.data, args.split))
    if args.max_sequences:
        sequences = sequences[: args.max_sequences]
    eao = eao_interval_for([len(s) for s in sequences])
    report_path = out / "ablation.json"
    rows: dict[str, Any] = json.loads(report_path.read_text()) if report_path.is_file() else {}
    ckpts: dict[str, Path] = {}
    if args.train_only:
        for mode in dict.fromkeys(VARIANTS[n][0] for n in args.variants if n in VARIANTS):
            print(mode, train_mode(cfg, mode, out, args.steps), flush=True)
        return 0
    for name in args.variants:
        if name in rows:
            continue
        if name == "static":
            rows[name] = run_variant(name, None, None, sequences, out, eao)
        else:
            mode, overrides = VARIANTS[name]
            if mode not in ckpts:
                ckpts[mode] = train_mode(cfg, mode, out, args.steps)
            c = copy.deepcopy(cfg)
            c["model"]["mode"] = mode
            c["tracker"] = {**(c.get("tracker") or {}), **overrides}
            rows[name] = run_variant(name, c, ckpts[mode], sequences, out, eao)
        atomic_write_text(report_path, json.dumps(rows, indent=2))
        print(name, json.dumps(rows[name]), flush=True)
    table = to_markdown({k: rows[k] for k in args.variants if k in rows}, eao, args.steps)
    atomic_write_text(out / "ablation.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
