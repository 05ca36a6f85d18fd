"""``vtrack bench``: benchmarks.

Sub-commands, each a module of this package providing ``add_arguments(parser)`` and
``run_from_args(args) -> int``:

* ``kernels`` - :mod:`vtrack.bench.kernels` (attention ops x backends at tracker shapes),
* ``trackers`` - :mod:`vtrack.bench.trackers` (tracker FPS per config x kernel backend x CE on/off),
* ``train`` - :mod:`vtrack.bench.train` (training-step speed), when that module exists,
* ``deploy`` - :mod:`vtrack.bench.deploy` (ONNX export, onnxruntime vs PyTorch boxes and FPS),
* ``vot-toolkit`` - :mod:`vtrack.bench.vot_toolkit` (vtrack's reset-based VOT scores vs the real
  vot-toolkit's analysis of the same result files),
* ``all`` (alias ``suite``) - :mod:`vtrack.bench.suite` (the three above, results under
  ``benchmarks/results/<device>/`` with a README summary).

A sub-command whose module is not present is still listed and reports a clear error.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Any

SUBCOMMANDS: dict[str, str] = {
    "kernels": "attention kernels: time and peak memory of every op x backend at tracker shapes",
    "trackers": "tracker FPS at batch 1 per config, kernel backend and CE on/off",
    "train": "training-step speed per tracker config and kernel backend",
    "deploy": "ONNX export time and size, onnxruntime vs PyTorch IoU and interleaved FPS per tracker",
    "vot-toolkit": "vtrack's reset-based VOT A, R and EAO beside vot-toolkit's analysis of the same results",
    "all": "the whole suite (kernels + trackers + train): JSON, tables, plots and a README per device",
    "suite": "alias of `all`",
}
# sub-commands whose module is not named after them
MODULES: dict[str, str] = {"all": "suite", "suite": "suite", "vot-toolkit": "vot_toolkit"}


def _missing(name: str, err: ImportError) -> Any:
    def run(args: argparse.Namespace) -> int:
        raise ValueError(f"`vtrack bench {name}` is not available in this build: module vtrack.bench.{name} "
                         f"could not be imported ({err})")

    return run


def register(subparsers: Any) -> None:
    """Add ``vtrack bench`` and its sub-commands to the CLI."""
    parser = subparsers.add_parser("bench", help="benchmarks (kernels, trackers, train)", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH")
    for name, help_text in SUBCOMMANDS.items():
        module_name = f"vtrack.bench.{MODULES.get(name, name)}"
        try:
            mod = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            p = sub.add_parser(name, help=f"{help_text} (not available)")
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=_missing(name, err))
            continue
        p = sub.add_parser(name, help=help_text, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run_from_args)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
