"""Training step time and peak memory of one tracker, fused kernel backends vs the reference.

Thin wrapper around :mod:`vtrack.bench.train` (also ``vtrack bench train``)::

    PYTHONPATH=. python benchmarks/train.py --config configs/ostrack/ostrack_tiny.yaml --batch-size 8
"""
import sys

from vtrack.bench.train import main

if __name__ == "__main__":
    sys.exit(main())
