"""``vtrack zoo list|add``: the model zoo's command line (see :mod:`vtrack.zoo`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _pct(row: dict[str, Any] | None, key: str) -> str:
    value = (row or {}).get(key)
    return "-" if value is None else f"{100.0 * float(value):.1f}"


def format_entries(entries: list[Any]) -> str:
    """Markdown table of zoo entries (test metrics in percent, FPS single-threaded)."""
    lines = ["| name | family | config | weights | val AO | test AO | test SR0.5 | test AUC | test FPS | train min |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in entries:
        val, test = e.metrics.get("val"), e.metrics.get("test")
        fps = (test or {}).get("fps")
        minutes = e.training.get("wall_minutes")
        lines.append(f"| {e.name} | {e.family} | {e.config} | {e.weights} ({e.bytes / 2**20:.1f} MB) | "
                     f"{_pct(val, 'ao')} | {_pct(test, 'ao')} | {_pct(test, 'sr50')} | {_pct(test, 'auc')} | "
                     f"{'-' if fps is None else f'{fps:.1f}'} | {'-' if minutes is None else f'{minutes:.0f}'} |")
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    """Add ``vtrack zoo`` and its sub-commands to the CLI."""
    p = subparsers.add_parser("zoo", help="the model zoo: list entries, add a trained tracker",
                              description=__doc__)
    sub = p.add_subparsers(dest="zoo_command", metavar="ZOO")
    lst = sub.add_parser("list", help="print the zoo's entries")
    lst.add_argument("--json", action="store_true", help="a JSON list of entries (name, family, config, weights, metrics...)")
    lst.set_defaults(func=_list)

    add = sub.add_parser("add", help="turn a `vtrack train` checkpoint into a zoo entry",
                         description="Write NAME.safetensors (fp16), NAME.yaml (the full config) and the manifest "
                                     "entry (sha256, training command, seed, commit, wall time, CPU, metrics) "
                                     "into the zoo folder ($VTRACK_ZOO_DIR or vtrack/zoo).")
    add.add_argument("name", help="entry name (lower case, e.g. ostrack_tiny_zoo)")
    add.add_argument("--checkpoint", required=True, type=Path, help="trainer checkpoint (or a plain state dict with --config)")
    add.add_argument("--config", type=Path, default=None, help="config to ship (default: the checkpoint's own)")
    add.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override in the shipped config, repeatable (e.g. tracker settings tuned on val)")
    add.add_argument("--train-command", required=True, help="the exact training command (with its seed)")
    add.add_argument("--seed", required=True, type=int, help="the training seed")
    add.add_argument("--wall-minutes", required=True, type=float, help="training wall time in minutes")
    src = add.add_mutually_exclusive_group(required=True)
    src.add_argument("--metrics-json", type=Path, help='JSON file {"val": {"ao": ...}, "test": {"ao": ...}}')
    src.add_argument("--data-root", type=Path,
                     help="synthetic benchmark folder: measure val and test metrics here with the shipped weights")
    add.add_argument("--ema", action="store_true", help="ship the checkpoint's EMA weights")
    add.add_argument("--replace", action="store_true", help="overwrite an existing entry of that name")
    add.set_defaults(func=_add)
    meas = sub.add_parser("measure", help="measure an entry's val and test metrics again with its shipped weights",
                          description="Track the synthetic benchmark's val and test splits with the entry's shipped "
                                      "weights on one thread and store the metrics (with this commit and CPU) in its "
                                      "manifest entry; weights, config and training provenance are unchanged.")
    meas.add_argument("names", nargs="+", help="zoo entry names")
    meas.add_argument("--data-root", required=True, type=Path, help="synthetic benchmark folder (vtrack synth)")
    meas.set_defaults(func=_measure)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _list(args: argparse.Namespace) -> int:
    from vtrack.zoo import list_entries, zoo_dir

    entries = list_entries()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
    elif not entries:
        print(f"the zoo ({zoo_dir()}) holds no trackers yet")
    else:
        print(format_entries(entries))
    return 0


def _add(args: argparse.Namespace) -> int:
    from vtrack.io import read_json
    from vtrack.zoo import add_entry, zoo_dir

    metrics = None
    if args.metrics_json is not None:
        metrics = read_json(args.metrics_json, what="--metrics-json")
    entry = add_entry(args.name, args.checkpoint, train_command=args.train_command, seed=args.seed,
                      wall_minutes=args.wall_minutes, metrics=metrics, data_root=args.data_root, config=args.config,
                      overrides=args.overrides, ema=args.ema, replace=args.replace)
    print(f"vtrack zoo: added {entry.name} ({entry.family}) to {zoo_dir()}: {entry.weights} "
          f"({entry.bytes / 2**20:.2f} MB, sha256 {entry.sha256})")
    print(format_entries([entry]))
    return 0


def _measure(args: argparse.Namespace) -> int:
    from vtrack.provenance import git_commit
    from vtrack.zoo import measure_entry

    # one commit for the batch, read before the first entry rewrites the (tracked) manifest
    commit = git_commit()
    entries = [measure_entry(name, args.data_root, commit=commit) for name in args.names]
    print(format_entries(entries))
    return 0
