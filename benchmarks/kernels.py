"""Kernel benchmark script: ``python benchmarks/kernels.py [--device cpu|cuda] [--quick] ...``.

Thin wrapper over :mod:`vtrack.bench.kernels` (same as ``vtrack bench kernels``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vtrack.bench.kernels import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
