"""cpp / SDPA time ratios of the C++ CPU kernels at the shapes of issue #14 (one process, minimum over repeats).

For every op (dense, top-K K=32, FDA, CE keep 180), mode (forward under ``torch.no_grad``;
forward + backward), thread count and batch, the cpp call and ``F.scaled_dot_product_attention`` on
the same tensors are timed alternately (so a busy machine slows both alike) and the minimum over the
repeats of each is kept; the ratio cpp / SDPA is what the issue's targets are written in.

    PYTHONPATH=. python benchmarks/cpu_vs_sdpa.py [--repeat 15] [--threads 1 2] [--batches 1 8]
        [--dtype float32] [--tag before] [--out benchmarks/results/cpu]

Writes ``<out>/cpu_vs_sdpa_<tag>.json`` and ``.md`` (CPU model and the kernels' ISA path included).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import vtrack.kernels as K
from vtrack.bench.common import CLOCKS, environment, markdown_table, min_ms_alternating, write_json
from vtrack.io import atomic_write_text

# op -> (H, N, D, kwargs of K.attention); N == M. Shapes and targets from issue #14.
OPS: dict[str, tuple[int, int, int, dict]] = {
    "dense": (8, 361, 32, {}),
    "topk": (8, 361, 32, {"topk": 32}),
    "fda": (12, 320, 64, {"fda": {"alpha": 0.1, "beta": 0.1, "delta": 1 / 64}}),
    "ce": (12, 320, 64, {"ce": {"num_template": 64, "keep": 180}}),
}
TARGETS = {("dense", "fwd"): 1.0, ("topk", "fwd"): 1.0, ("topk", "fwd+bwd"): 0.7, ("fda", "fwd"): 1.15,
           ("fda", "fwd+bwd"): 1.15, ("ce", "fwd"): 1.05, ("ce", "fwd+bwd"): 1.05}
DEFAULT_BATCH = {"dense": 8, "topk": 8, "fda": 4, "ce": 4}


def measure(op: str, batch: int, mode: str, dtype: torch.dtype, repeat: int, backend: str = "cpp",
            clock: str = "wall") -> dict:
    """Time ``backend`` and SDPA for one op/batch/mode at the current thread count."""
    h, n, d, kw = OPS[op]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, h, n, d, generator=g).to(dtype).requires_grad_(mode != "fwd") for _ in range(3))
    dout = torch.randn(batch, h, n, d, generator=g).to(dtype)

    def fused() -> torch.Tensor:
        res = K.attention(q, k, v, backend=backend, **kw)
        return res[0] if isinstance(res, tuple) else res

    def sdpa() -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)

    def wrap(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        if mode == "fwd":
            def run() -> None:
                with torch.no_grad():
                    fn()
        else:
            def run() -> None:
                fn().backward(dout)
                q.grad = k.grad = v.grad = None
        return run

    t_fused, t_sdpa = min_ms_alternating([wrap(fused), wrap(sdpa)], repeat, clock=CLOCKS[clock])
    return {"op": op, "shape": f"({batch},{h},{n},{d})", "batch": batch, "mode": mode, "threads": torch.get_num_threads(),
            "dtype": str(dtype).replace("torch.", ""), "backend": backend, "fused_ms": t_fused, "sdpa_ms": t_sdpa,
            "ratio": t_fused / t_sdpa, "target": TARGETS.get((op, mode)), "clock": clock}


def run(threads: list[int], batches: list[int], repeat: int, dtype: torch.dtype, ops: list[str],
        backend: str = "cpp", clock: str = "wall") -> list[dict]:
    """Every (op, mode, threads, batch) row; batch 0 in ``batches`` stands for the issue's batch of the op."""
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        for op in ops:
            for b in batches:
                batch = DEFAULT_BATCH[op] if b == 0 else b
                for mode in ("fwd", "fwd+bwd"):
                    if op == "dense" and mode == "fwd+bwd":
                        continue
                    rows.append(measure(op, batch, mode, dtype, repeat, backend, clock))
                    r = rows[-1]
                    print(f"{r['op']:6s} {r['shape']:16s} {r['mode']:8s} threads={t} {backend} {r['fused_ms']:8.2f} ms"
                          f"  sdpa {r['sdpa_ms']:8.2f} ms  ratio {r['ratio']:.2f}"
                          + (f"  (target <= {r['target']})" if r["target"] else ""), flush=True)
    return rows


def grid_parser(description: str, default_ops: list[str]) -> argparse.ArgumentParser:
    """The options shared by the CPU kernel ratio scripts (this one and cpu_bf16_vs_f32.py): repeats,
    threads, batches, ops, clock, tag and output folder."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 0], help="0: the issue's batch of the op (8 or 4)")
    p.add_argument("--ops", nargs="+", default=default_ops, choices=list(OPS))
    p.add_argument("--clock", default="wall", choices=list(CLOCKS),
                   help="wall (perf_counter, the issue's measure) or cpu (process CPU time: steadier on a busy machine "
                        "with 1 thread; with 2 threads it sums both)")
    p.add_argument("--tag", default="run")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu"))
    return p


def parse_grid(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the shared options."""
    args = p.parse_args(argv)
    if args.repeat < 1 or any(t < 1 for t in args.threads) or any(b < 0 for b in args.batches):
        p.error("--repeat/--threads must be >= 1 and --batches >= 0")
    return args


def write_grid(args: argparse.Namespace, name: str, title: str, env: dict, rows: list[dict], cols: list[str],
               paths: str, notes: str = "") -> None:
    """Write ``OUT/<name>_<tag>.{json,md}``: the rows, the environment and how they were measured."""
    stem = args.out / f"{name}_{args.tag}"
    write_json(stem.with_suffix(".json"), {"environment": env, "repeat": args.repeat, "rows": rows})
    md = [f"# {title} on {env['device_name']} ({args.tag})", "",
          f"{paths}; torch {env['torch']}; commit {env['git_commit'][:10]}; load average {env['load_avg_1m']:.1f}; "
          f"minimum over {args.repeat} alternating calls in one process ({args.clock} clock).{notes}", "",
          markdown_table(rows, cols)]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    print(f"written: {stem}.json, {stem}.md")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    p = grid_parser(__doc__.splitlines()[0], list(OPS))
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--backend", default="cpp")
    args = parse_grid(p, argv)
    dtype = getattr(torch, args.dtype)
    env = environment("cpu")  # CPU model, cpp_isa (the C++ kernels' vector path), aten_cpu_capability
    rows = run(args.threads, args.batches, args.repeat, dtype, args.ops, args.backend, args.clock)
    cols = ["op", "shape", "mode", "threads", "dtype", "fused_ms", "sdpa_ms", "ratio", "target"]
    write_grid(args, "cpu_vs_sdpa", "cpp / SDPA", env, rows, cols,
               f"ISA path: {env['cpp_isa']}; ATen CPU capability: {env['aten_cpu_capability']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
