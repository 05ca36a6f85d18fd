"""``vtrack export``: write a trained tracker's network branches as ONNX models."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "run_export"]


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="export a trained tracker's network to ONNX (template and per-frame search branches)",
        description=(
            "Export the network branches of TRACKER (a template branch run once and a per-frame search "
            "branch) to ONNX models in --out, with vtrack's attention kernels written as standard ONNX "
            "operators; `vtrack eval|track|bench trackers --runtime onnxruntime --onnx-dir DIR` runs them."
        ),
    )
    p.add_argument("tracker", metavar="TRACKER",
                   help="a zoo tracker (`vtrack zoo list`), or a name for a trained tracker given by --config/--checkpoint")
    p.add_argument("--config", help="tracker YAML config")
    p.add_argument("--checkpoint", help="checkpoint of the trained tracker")
    p.add_argument("--out", required=True, help="new folder for the ONNX files and manifest.json")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export a tracker (``vtrack export``)."""
    from vtrack.deploy.engine import TorchEngine
    from vtrack.deploy.export import export_engine
    from vtrack.tracking.loader import build_tracker

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out: {out} exists already; choose a new folder")
    tracker = build_tracker(args.tracker, device="cpu", config=args.config, checkpoint=args.checkpoint)
    engine = getattr(tracker, "engine", None)
    if not isinstance(engine, TorchEngine):
        raise ValueError(f"tracker: {args.tracker!r} has no network to export")
    t0 = time.perf_counter()
    info = {"tracker": tracker.name, "config": args.config, "checkpoint": args.checkpoint}
    manifest = export_engine(engine, out, info=info)
    seconds = time.perf_counter() - t0
    for name, b in manifest["branches"].items():
        sys.stdout.write(f"{name}: {out / b['file']} ({b['bytes'] / 1e6:.2f} MB, opset {b['opset']}, "
                         f"{b['nodes']} nodes, {b['seconds']:.1f} s)\n")
    sys.stdout.write(f"exported {tracker.name} in {seconds:.1f} s -> {out}\n")
    return 0
