"""Learning curves: validation scores of every checkpoint of training runs against wall-clock minutes.

``vtrack curve RUN_DIR [RUN_DIR ...] --dataset synthetic --root data/synthetic --split val --out DIR``
evaluates each ``checkpoint_e*.pth`` of each run (a folder written by ``vtrack train``) with the
shared runner and scorer (:func:`vtrack.eval.runner.run_tracker`,
:func:`vtrack.eval.evaluate.evaluate_results`), in the dataset's protocol, and writes
``DIR/curve.json`` and ``DIR/curve.png``. The x axis is the checkpoint's wall-clock minutes since
the run started (the mtime of the run's ``config.yaml``, written when training starts, to the mtime
of the checkpoint), so a resumed run counts its pause too.

Curves are for model selection, so the test split is refused: score it once, at the end, with
``vtrack eval``.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

from vtrack.config import load_yaml
from vtrack.io import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["run_checkpoints", "learning_curve", "register"]

_CKPT = re.compile(r"^checkpoint_e(\d+)\.pth$")


def run_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every epoch checkpoint in a training run folder, by epoch."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run_dir: not a folder: {run}")
    found = sorted((int(m.group(1)), p) for p in run.iterdir() if (m := _CKPT.match(p.name)))
    if not found:
        raise ValueError(f"run_dir: no checkpoint_e*.pth in {run}")
    return found


def learning_curve(runs: list[str | Path], *, dataset: str, root: str | Path, split: str,
                   out: str | Path, workers: int = 1, device: str = "cpu") -> dict[str, Any]:
    """Score every checkpoint of ``runs`` on ``dataset``/``split``; write curve.json and curve.png.

    Returns:
        ``{run name: [{"epoch", "minutes", "checkpoint", "scores"}, ...]}``.
    """
    from vtrack.data import load_dataset
    from vtrack.eval.evaluate import evaluate_results
    from vtrack.eval.runner import run_tracker
    from vtrack.tracking import TrackerFactory

    if not isinstance(split, str) or not split:
        raise ValueError(f"split: expected a split name such as 'val', got {split!r}")
    if split.lower() == "test":
        raise ValueError("split: learning curves select models, so the test split is refused; "
                         "score the test split once with `vtrack eval`")
    out = Path(out)
    seqs = load_dataset(dataset, root, split)
    if not seqs:
        raise ValueError(f"dataset: no sequences in {dataset} at {root} (split {split})")
    curves: dict[str, Any] = {}
    for run in runs:
        run = Path(run)
        config = run / "config.yaml"
        if not config.is_file():
            raise FileNotFoundError(f"runs: {run} has no config.yaml (not a `vtrack train` folder)")
        cfg = load_yaml(config)
        start = config.stat().st_mtime
        points = []
        for epoch, ckpt in run_checkpoints(run):
            res_dir = out / run.name / ckpt.stem
            factory = TrackerFactory(f"{run.name}_e{epoch}", device=device, config=str(config.resolve()),
                                     checkpoint=str(ckpt.resolve()))
            run_tracker(factory, seqs, res_dir, workers=workers, progress=False,
                        protocol=_protocol(dataset))
            summary = evaluate_results(res_dir, seqs, protocol=_protocol(dataset), tracker=factory.name,
                                       dataset=f"{dataset}-{split}")
            minutes = (ckpt.stat().st_mtime - start) / 60.0
            points.append({"epoch": epoch, "minutes": round(minutes, 2), "checkpoint": str(ckpt),
                           "scores": summary["scores"]})
            logger.info("%s epoch %d (%.1f min): %s", run.name, epoch, minutes,
                        {k: v for k, v in summary["scores"].items() if isinstance(v, float)})
        curves[run.name] = {"model": cfg.get("model", {}).get("name"), "points": points}
    result = {"dataset": dataset, "split": split, "runs": curves}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curve.json", json.dumps(result, indent=1) + "\n")
    _plot(result, out / "curve.png")
    return result


def _protocol(dataset: str) -> str:
    from vtrack.eval.commands import DEFAULT_PROTOCOL

    return DEFAULT_PROTOCOL.get(dataset.lower(), "ope")


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    key = None
    for name, run in result["runs"].items():
        pts = run["points"]
        key = key or next((k for k in ("ao", "success_auc", "auc") if k in pts[0]["scores"]), None)
        if key is None:
            continue
        ax.plot([p["minutes"] for p in pts], [100 * p["scores"][key] for p in pts], marker="o", label=name)
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel(f"{key or 'score'} x100 ({result['dataset']} {result['split']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def register(subparsers: Any) -> None:
    """Add the ``curve`` subcommand."""
    from vtrack.cli import positive_int

    p = subparsers.add_parser(
        "curve", help="validation score of every checkpoint of training runs against training minutes",
        description="Evaluate each checkpoint_e*.pth of each `vtrack train` folder on a validation split "
                    "and write OUT/curve.json and OUT/curve.png (the test split is refused).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by `vtrack train`")
    p.add_argument("--dataset", required=True, help="dataset name (e.g. synthetic)")
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", default="val", help="validation split (default val; test is refused)")
    p.add_argument("--out", required=True, help="output folder (one result folder per checkpoint inside)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    result = learning_curve(args.runs, dataset=args.dataset, root=args.root, split=args.split, out=args.out,
                            workers=args.workers, device=args.device)
    for name, run in result["runs"].items():
        for p in run["points"]:
            scores = " ".join(f"{k}={100 * v:.1f}" for k, v in p["scores"].items() if isinstance(v, float) and k in
                              ("ao", "sr50", "success_auc"))
            sys.stdout.write(f"{name} epoch {p['epoch']:3d} {p['minutes']:7.1f} min {scores}\n")
    sys.stdout.write(f"curve: {Path(args.out) / 'curve.png'}\n")
    return 0
