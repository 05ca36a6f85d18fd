"""Dense attention at the zoo trackers' shapes: the "sdpa" backend against the "cpp" one.

Both are called through the dispatcher (``K.attention(..., backend=name)``), alternately, and the
minimum over the repeats of each is kept (a busy machine slows both alike). This is the
measurement behind the "sdpa" backend's CPU priority (docs/kernels.md "The sdpa backend").

    PYTHONPATH=. python benchmarks/sdpa_dense.py [--repeat 20] [--threads 1 2] [--out benchmarks/results/cpu]

Writes ``<out>/sdpa_dense.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import torch

import vtrack.kernels as K
from vtrack.bench.common import environment, markdown_table, min_ms_alternating, write_json
from vtrack.io import atomic_write_text

# case -> (B, H, N=M, D, mode): the dense ViT blocks of the zoo's OSTrack-CPU (width 128, 4 heads,
# 64 template + 256 search tokens) when tracking (B=1) and training (B=32), and the dense shape of
# issue #14 (a SparseTT-like 19x19 search grid, 8 heads).
CASES = {
    "ostrack_cpu track": (1, 4, 320, 32, "fwd"),
    "ostrack_cpu train": (32, 4, 320, 32, "fwd+bwd"),
    "issue14 dense B=1": (1, 8, 361, 32, "fwd"),
    "issue14 dense B=8": (8, 8, 361, 32, "fwd"),
}
BACKENDS = ("cpp", "sdpa")


def measure(case: str, repeat: int) -> dict:
    """Time every backend of :data:`BACKENDS` on one case at the current thread count."""
    b, h, n, d, mode = CASES[case]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=g).requires_grad_(mode != "fwd") for _ in range(3))
    dout = torch.randn(b, h, n, d, generator=g)

    def call(name: str) -> Callable[[], None]:
        def run() -> None:
            if mode == "fwd":
                with torch.no_grad():
                    K.attention(q, k, v, backend=name)
            else:
                K.attention(q, k, v, backend=name).backward(dout)
        return run

    times = min_ms_alternating([call(name) for name in BACKENDS], repeat)
    row = {"case": case, "shape": f"({b},{h},{n},{d})", "mode": mode, "threads": torch.get_num_threads()}
    row.update({f"{name}_ms": round(t, 3) for name, t in zip(BACKENDS, times)})
    row["sdpa/cpp"] = round(times[1] / times[0], 3)
    return row


def main() -> None:
    """Run every case at every thread count; write JSON and Markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu"))
    args = ap.parse_args()
    if not K.load_extension():
        raise SystemExit("the cpp backend is unavailable: build vtrack._C first")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for case in CASES:
            rows.append(measure(case, args.repeat))
    env = environment("cpu")
    write_json(args.out / "sdpa_dense.json", {"environment": env, "rows": rows})
    head = (f"# Dense attention: sdpa vs cpp on {env['device_name']}\n\n"
            f"torch {env['torch']}; commit {env['git_commit']}; load average {env['load_avg_1m']}; minimum over "
            f"{args.repeat} alternating calls through the dispatcher (wall clock).\n\n")
    atomic_write_text(args.out / "sdpa_dense.md", head + markdown_table(rows, list(rows[0])) + "\n")


if __name__ == "__main__":
    main()
