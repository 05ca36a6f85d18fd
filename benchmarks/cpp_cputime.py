"""CPU-time benchmark of the "cpp" backend, robust to a busy machine.

``benchmarks/kernels.py`` measures wall-clock time, which on a shared machine mostly measures the
other processes. This script pins torch to one thread and reports the minimum *process CPU time*
(``time.process_time``) over repeated calls, for the cpp backend, the reference and dense SDPA, at
the tracker shapes of :mod:`vtrack.bench.kernels` (same ops and arguments), forward and
forward+backward. Ratios between rows are what it is for; absolute times are single-core.

    python benchmarks/cpp_cputime.py [--batch 2] [--repeat 7] [--out benchmarks/results/cpu_cputime.md]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from vtrack.io import atomic_write_text
from vtrack.bench.kernels import OPS, SHAPES, Shape, _op_call


def cpu_time_ms(step: Callable[[], None], repeat: int) -> float:
    """Minimum process CPU time of ``step`` over ``repeat`` calls (after one warm-up), in ms."""
    step()
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return best * 1e3


def measure(fn: Callable[..., torch.Tensor], shape: Shape, backward: bool, repeat: int) -> float:
    """CPU ms of one call (forward, or forward+backward) of ``fn`` at ``shape``."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape.B, shape.H, shape.N, shape.D, generator=g).requires_grad_(backward) for _ in range(3))
    dout = torch.randn(shape.B, shape.H, shape.N, shape.D, generator=g)

    def step() -> None:
        if backward:
            fn(q, k, v).backward(dout)
            q.grad = k.grad = v.grad = None
        else:
            with torch.no_grad():
                fn(q, k, v)

    return cpu_time_ms(step, repeat)


def run(batch: int, repeat: int) -> str:
    """The markdown table (one row per shape, op and mode)."""
    torch.set_num_threads(1)
    lines = ["| shape | op | mode | cpp ms | reference ms | SDPA ms | cpp speed-up vs reference | cpp / SDPA |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for base in SHAPES.values():
        shape = Shape(base.name, batch, base.H, base.N, base.D, base.num_template)
        for op in OPS:
            if op == "ce" and shape.num_template is None:
                continue
            for backward in (False, True):
                t: dict[str, Optional[float]] = {}
                for name in ("cpp", "reference"):
                    t[name] = measure(_op_call(op, shape, name), shape, backward, repeat)
                t["sdpa"] = measure(F.scaled_dot_product_attention, shape, backward, repeat)
                lines.append(f"| {shape.name} | {op} | {'fwd+bwd' if backward else 'fwd'} | {t['cpp']:.1f} | "
                             f"{t['reference']:.1f} | {t['sdpa']:.1f} | {t['reference'] / t['cpp']:.1f} | "
                             f"{t['cpp'] / t['sdpa']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    table = run(args.batch, args.repeat)
    if args.out is not None:
        atomic_write_text(args.out, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
