"""``vtrack bench``: benchmarks. ``vtrack bench trackers`` runs :mod:`vtrack.bench.trackers`
(tracker FPS per config x kernel backend x CE on/off); further benchmarks (kernels) add their
own sub-command here."""
from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    """Add ``vtrack bench`` and its sub-commands to the CLI."""
    from vtrack.bench import trackers

    parser = subparsers.add_parser("bench", help="benchmarks (trackers, kernels)")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH")
    p = sub.add_parser("trackers", help="tracker FPS at batch 1 per config, kernel backend and CE on/off",
                       description=trackers.__doc__)
    trackers.add_arguments(p)
    p.set_defaults(func=trackers.run_from_args)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
