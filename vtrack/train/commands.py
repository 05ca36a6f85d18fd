"""``vtrack train CONFIG [--resume PATH] [--out-dir DIR] [--max-steps N] [key=value ...]``.

Multi-GPU / multi-process: ``torchrun --nproc_per_node N -m vtrack.cli train CONFIG ...``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a tracker from a YAML config",
        description="Train a tracker from a YAML config (sections model, data, train, tracker). "
        "Overrides are dotted key=value pairs parsed as YAML, e.g. train.lr=1e-4 train.epochs=10. "
        "Launch with torchrun for DDP.",
    )
    p.add_argument("config", type=Path, help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (YAML values)")
    p.add_argument("--resume", default=None, help="checkpoint to resume from (or a folder: its newest checkpoint)")
    p.add_argument("--out-dir", type=Path, default=None, help="output folder (default runs/<config name>)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a non-empty --out-dir, removing the run there (default: refuse)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``vtrack train``; prints the final checkpoint path."""
    from vtrack.config import load_config
    from vtrack.train.trainer import train

    cfg = load_config(args.config, args.overrides)
    if cfg.get("train", {}).get("numerics") == "portable":
        from vtrack.train.numerics import missing_env, run_portable

        if missing_env():  # the pinned environment must be there before torch loads: a child process
            argv = ["train", str(args.config), *args.overrides]
            if args.resume is not None:
                argv += ["--resume", str(args.resume)]
            if args.out_dir is not None:
                argv += ["--out-dir", str(args.out_dir)]
            if args.max_steps is not None:
                argv += ["--max-steps", str(args.max_steps)]
            if args.overwrite:
                argv.append("--overwrite")
            return run_portable(argv)
    out_dir = args.out_dir if args.out_dir is not None else Path("runs") / args.config.stem
    path = train(cfg, resume=args.resume, out_dir=out_dir, max_steps=args.max_steps, overwrite=args.overwrite)
    print(path)
    return 0
