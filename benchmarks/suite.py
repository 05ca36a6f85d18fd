"""The whole benchmark suite: ``python benchmarks/suite.py [--device cpu|cuda] [--quick] [--out DIR]``.

Thin wrapper over :mod:`vtrack.bench.suite` (same as ``vtrack bench all``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vtrack.bench.suite import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
