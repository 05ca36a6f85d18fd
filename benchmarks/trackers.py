"""Tracker speed benchmark: ``python benchmarks/trackers.py [--device cpu|cuda] [--quick] [--out DIR]``.

Thin wrapper over :mod:`vtrack.bench.trackers` (same as ``vtrack bench trackers``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vtrack.bench.trackers import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
