"""``vtrack eval`` (run + score a tracker on a dataset) and ``vtrack report`` (plots and tables)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from vtrack.cli import add_tracker_arguments, positive_int

__all__ = ["register", "DEFAULT_PROTOCOL"]

logger = logging.getLogger(__name__)

#: Protocol used when --protocol is not given, by dataset name (one-pass evaluation otherwise).
DEFAULT_PROTOCOL = {"got10k": "got10k", "synthetic": "got10k", "vot": "vot", "trackingnet": "trackingnet"}
_PROTOCOLS = ("ope", "got10k", "vot", "trackingnet")


def _eao_interval(text: str) -> Any:
    from vtrack.eval.metrics import EAO_RANGES

    if text in EAO_RANGES:
        return text
    parts = text.split(",")
    try:
        low, high = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH or one of {', '.join(sorted(EAO_RANGES))}, got {text!r}"
        ) from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 1 <= LOW <= HIGH, got {text!r}")
    return (low, high)


def register(subparsers: Any) -> None:
    """Add the ``eval`` and ``report`` subcommands."""
    p = subparsers.add_parser(
        "eval",
        help="run a tracker on a dataset and score it with the official conventions",
        description=(
            "Run a tracker over a dataset split, write its results in the benchmark's official "
            "layout under --out (resumable: finished sequences are skipped) and score them; "
            "the scores and curves go to OUT/summary.json. OUT/manifest.json records the results' "
            "origin (tracker, config and checkpoint hashes, dataset, split, protocol, vtrack version): "
            "a run of another origin into the same folder is refused unless --overwrite."
        ),
    )
    add_tracker_arguments(p, tracker_help="static, csrt, kcf, a model-zoo tracker (vtrack zoo list; with --config: its "
                                          "weights with that config's tracker options), or a name for a trained "
                                          "tracker (with --config)")
    p.add_argument("--dataset", required=True, help="dataset name (got10k, lasot, otb, uav123, nfs, tnl2k, trackingnet, vot, synthetic)")
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", help="dataset split (e.g. val, test)")
    p.add_argument("--out", required=True, help="this tracker's result folder")
    p.add_argument("--protocol", choices=_PROTOCOLS, help="evaluation protocol (default: from the dataset)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--repetitions", type=positive_int, default=1, help="runs per sequence (got10k/vot layouts)")
    p.add_argument("--mode", choices=("pytracking", "matlab", "got10k"), default="pytracking",
                   help="OPE conventions (docs/evaluation.md)")
    p.add_argument("--exclude-invalid", action="store_true", help="OPE: divide by valid frames only (pytracking option)")
    p.add_argument("--eao-interval", type=_eao_interval, default="vot2018", help="VOT EAO range: LOW,HIGH or vot2015..vot2019")
    p.add_argument("--sequences", help="comma-separated sequence names to run (default: all)")
    p.add_argument("--max-sequences", type=positive_int, help="run only the first N sequences")
    p.add_argument("--overwrite", action="store_true",
                   help="re-run every sequence; replace the results of another tracker, config, checkpoint, "
                   "dataset or protocol in --out (default: resume, and refuse a folder of another origin)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_eval)

    r = subparsers.add_parser(
        "report",
        help="plots, tables and attribute breakdown from eval result folders",
        description="Read OUT/summary.json of each result folder and write report.md with success/precision plots.",
    )
    r.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="result folders written by `vtrack eval`")
    r.add_argument("--out", required=True, help="report folder")
    r.set_defaults(func=run_report)


def _select(seqs: list, names: str | None, limit: int | None) -> list:
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        by_name = {s.name: s for s in seqs}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise ValueError(f"--sequences: unknown sequence(s) {', '.join(unknown[:5])}")
        seqs = [by_name[n] for n in wanted]
    if limit is not None:
        seqs = seqs[:limit]
    return seqs


def run_eval(args: argparse.Namespace) -> int:
    """Run and score a tracker (``vtrack eval``)."""
    from vtrack import zoo
    from vtrack.data import load_dataset
    from vtrack.io import FolderLock
    from vtrack.tracking import TrackerFactory, TrackerUnavailableError

    protocol = args.protocol or DEFAULT_PROTOCOL.get(args.dataset.lower(), "ope")
    for flag in ("config", "checkpoint"):
        value = getattr(args, flag)
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"--{flag}: file not found: {value}")
    factory = TrackerFactory(
        args.tracker,
        device=args.device,
        config=str(Path(args.config).resolve()) if args.config else None,
        checkpoint=str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
        runtime=args.runtime,
        onnx_dir=str(Path(args.onnx_dir).resolve()) if args.onnx_dir else None,
    )
    if args.tracker.endswith((".yaml", ".yml")) or args.config is not None:
        # a trained tracker is built (model + weights) once per worker by the runner; a zoo
        # tracker with --config runs the entry's weights with that config's tracker options
        if args.checkpoint is None and not zoo.is_zoo_name(args.tracker):
            raise ValueError(f"--checkpoint: the trained tracker {args.tracker!r} needs a checkpoint")
        if args.runtime == "onnxruntime":
            factory()  # export (first use) once here, not in every worker
    else:
        try:
            factory()  # baselines are cheap to build: check the spec before loading the dataset
        except TrackerUnavailableError as err:
            raise ValueError(str(err)) from None
    seqs = _select(load_dataset(args.dataset, args.root, args.split), args.sequences, args.max_sequences)
    if not seqs:
        raise ValueError(f"--dataset: no sequences in {args.dataset} at {args.root} (split {args.split})")
    out = Path(args.out)
    manifest = _origin(args, factory, protocol)
    with FolderLock(out, "eval"):  # held until summary.json is written
        return _run_and_score(args, factory, seqs, out, protocol, manifest)


def _origin(args: argparse.Namespace, factory: Any, protocol: str) -> dict[str, Any]:
    """The manifest of this run's results (see :func:`vtrack.eval.runner.build_manifest`)."""
    from vtrack import zoo
    from vtrack.eval.runner import build_manifest
    from vtrack.tracking import BASELINES

    config = factory.config or (args.tracker if args.tracker.endswith((".yaml", ".yml")) else None)
    manifest = build_manifest(factory.name, protocol=protocol, dataset=args.dataset, split=args.split,
                              config=config, checkpoint=factory.checkpoint)
    if factory.checkpoint is None and args.tracker not in BASELINES and zoo.is_zoo_name(args.tracker):
        entry = zoo.get_entry(args.tracker)
        manifest.update(zoo=entry.name, checkpoint_sha256=entry.sha256)
    return manifest


def _run_and_score(args: argparse.Namespace, factory: Any, seqs: list, out: Path, protocol: str,
                   manifest: dict[str, Any]) -> int:
    from vtrack.eval.evaluate import evaluate_results
    from vtrack.eval.reports import comparison_table
    from vtrack.eval.runner import run_tracker
    from vtrack.tracking import TrackerUnavailableError

    try:
        run = run_tracker(
            factory,
            seqs,
            out,
            protocol=protocol,
            workers=args.workers,
            repetitions=args.repetitions,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            manifest=manifest,
        )
    except TrackerUnavailableError as err:
        raise ValueError(str(err)) from None
    done = sum(1 for v in run.values() if v["status"] == "done")
    logger.info("%d sequences tracked, %d resumed from %s", done, len(run) - done, out)
    hidden = [s.name for s in seqs if s.attributes.get("first_frame_only", False)]
    if hidden:
        sys.stdout.write(
            f"results written to {out} ({protocol} layout); {len(hidden)} of {len(seqs)} sequences have only "
            "their first box public (a test split): to submit it to the benchmark's server, zip it with "
            f"`vtrack pack --format {'trackingnet' if protocol == 'trackingnet' else 'got10k-test'} {out} "
            f"--root {args.root} --out {out}.zip`\n"
        )
        if len(hidden) == len(seqs):
            return 0
        seqs = [s for s in seqs if not s.attributes.get("first_frame_only", False)]
        logger.warning("scoring only the %d sequences with public ground truth", len(seqs))
    summary = evaluate_results(
        out,
        seqs,
        protocol=protocol,
        mode=args.mode,
        exclude_invalid=args.exclude_invalid,
        eao_interval=args.eao_interval,
        tracker=factory.name,
        dataset=args.dataset if args.split is None else f"{args.dataset}-{args.split}",
    )
    sys.stdout.write(comparison_table([summary]))
    sys.stdout.write(f"summary: {out / 'summary.json'}\n")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write report.md and plots (``vtrack report``)."""
    from vtrack.eval.reports import write_report

    report = write_report(args.results, args.out)  # refuses an --out that is one of the inputs
    sys.stdout.write(report.read_text(encoding="utf-8"))
    sys.stdout.write(f"\nreport: {report}\n")
    return 0
