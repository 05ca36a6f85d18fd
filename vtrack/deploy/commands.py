"""``vtrack export`` (a trained tracker's network branches as ONNX models), ``vtrack vot`` (a
tracker as a TraX process for the VOT toolkit) and ``vtrack vot-setup`` (the workspace's trackers.ini)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "register_vot", "run_export", "run_vot", "run_vot_setup"]


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    from vtrack.cli import add_tracker_arguments

    p = subparsers.add_parser(
        "export",
        help="export a trained tracker's network to ONNX (template and per-frame search branches)",
        description=(
            "Export the network branches of TRACKER (a template branch run once and a per-frame search "
            "branch) to ONNX models in --out, with vtrack's attention kernels written as standard ONNX "
            "operators; `vtrack eval|track|bench trackers --runtime onnxruntime --onnx-dir DIR` runs them."
        ),
    )
    add_tracker_arguments(p, form="positional", device=False, runtime=False,
                          tracker_help="a zoo tracker (`vtrack zoo list`), or a name for a trained tracker given by --config/--checkpoint")
    p.add_argument("--out", required=True, help="new folder for the ONNX files and manifest.json")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="a symbolic batch axis 0 on every input and output (default: batch 1, as the tracker runs); "
                        "trackers with depth-wise cross-correlation (VLT, DuML) export batch 1 only")
    p.set_defaults(func=run_export)
    register_vot(subparsers)


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
    manifest = export_engine(engine, out, info=info, dynamic_batch=args.dynamic_batch)
    seconds = time.perf_counter() - t0
    for name, b in manifest["branches"].items():
        sys.stdout.write(f"{name}: {out / b['file']} ({b['bytes'] / 1e6:.2f} MB, opset {b['opset']}, "
                         f"{b['nodes']} nodes, {b['seconds']:.1f} s)\n")
    batch = "a dynamic batch" if manifest["dynamic_batch"] else "batch 1"
    sys.stdout.write(f"exported {tracker.name} ({batch}) in {seconds:.1f} s -> {out}\n")
    return 0


def register_vot(subparsers: Any) -> None:
    """Add the ``vot`` (TraX tracker process) and ``vot-setup`` (trackers.ini) subcommands."""
    from vtrack.cli import add_tracker_arguments

    p = subparsers.add_parser(
        "vot",
        help="run a tracker as a TraX process for the VOT toolkit (`vot evaluate`)",
        description=(
            "Serve TRACKER over the TraX protocol (standard streams, or TRAX_SOCKET): the VOT toolkit "
            "starts this command for each sequence; `vtrack vot-setup` writes it into trackers.ini."
        ),
    )
    add_tracker_arguments(p, form="positional", tracker_help="static, csrt, kcf, a zoo tracker, or a name with --config")
    p.set_defaults(func=run_vot)

    s = subparsers.add_parser(
        "vot-setup",
        help="write a VOT toolkit workspace's trackers.ini for vtrack trackers",
        description=(
            "Write WORKSPACE/trackers.ini with one TraX tracker per TRACKER (identifier vtrack_<name>, "
            "with _onnx for --runtime onnxruntime), each started as `python -m vtrack.cli vot TRACKER`; "
            "then `vot evaluate --workspace DIR vtrack_<name>` and `vot analysis --workspace DIR vtrack_<name>`."
        ),
    )
    s.add_argument("--workspace", required=True, help="the VOT workspace folder (made by `vot initialize`)")
    add_tracker_arguments(s, form="positionals",
                          tracker_help="static, csrt, kcf, zoo trackers, or one name with --config/--checkpoint")
    s.add_argument("--timeout", type=int, default=300,
                   help="seconds the toolkit waits for the tracker process to answer (default 300: first use may export ONNX)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing trackers.ini")
    s.set_defaults(func=run_vot_setup)


def run_vot(args: argparse.Namespace) -> int:
    """Serve a tracker over TraX (``vtrack vot``); stdout is the protocol channel, logs go to stderr."""
    from vtrack.deploy.vot import serve
    from vtrack.extras import require
    from vtrack.tracking.loader import build_tracker

    require("trax", "vot", "vtrack vot")
    tracker = build_tracker(args.tracker, device=args.device, config=args.config, checkpoint=args.checkpoint,
                            runtime=args.runtime, onnx_dir=args.onnx_dir)
    serve(tracker, name=getattr(tracker, "name", args.tracker), description=f"vtrack {args.tracker} ({args.runtime})")
    return 0


def run_vot_setup(args: argparse.Namespace) -> int:
    """Write a workspace's ``trackers.ini`` (``vtrack vot-setup``)."""
    import vtrack
    from vtrack.deploy.vot import ini_identifier, trackers_ini, write_trackers_ini
    from vtrack.tracking.loader import BASELINES

    if (args.config or args.checkpoint) and len(args.trackers) != 1:
        raise ValueError(f"--config/--checkpoint: give a single TRACKER with them, got {args.trackers}")
    if args.onnx_dir and args.runtime != "onnxruntime":
        raise ValueError("--onnx-dir: only used with --runtime onnxruntime")
    entries = []
    for name in args.trackers:
        if name in BASELINES and args.runtime != "pytorch":
            raise ValueError(f"--runtime: the baseline tracker {name!r} has no network to run on {args.runtime}")
        argv = [name, "--device", args.device, "--runtime", args.runtime]
        for flag, value in (("--config", args.config), ("--checkpoint", args.checkpoint), ("--onnx-dir", args.onnx_dir)):
            if value is not None:
                if not Path(value).exists():
                    raise FileNotFoundError(f"{flag}: not found: {value}")
                argv += [flag, str(Path(value).resolve())]
        ident = ini_identifier(name) + ("_onnx" if args.runtime == "onnxruntime" else "")
        entries.append((ident, argv))
    root = str(Path(vtrack.__file__).resolve().parents[1])
    path = write_trackers_ini(args.workspace, trackers_ini(entries, pythonpath=root, timeout=args.timeout),
                              overwrite=args.overwrite)
    for ident, _ in entries:
        sys.stdout.write(f"{ident}\n")
    sys.stdout.write(f"written: {path}\n")
    return 0
