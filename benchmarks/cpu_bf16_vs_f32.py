"""bfloat16 / float32 speed of the fused C++ CPU kernels at the shapes of issue #14 (one process, minimum over repeats).

For every op (dense, top-K K=32, FDA, CE keep 180), mode (forward under ``torch.no_grad``; forward +
backward), thread count and batch, three calls on the same values are timed alternately (so a busy
machine slows all alike) and the minimum over the repeats of each is kept: the float32 kernel, the
bfloat16 kernel on the widest ISA path (``avx512bf16``: bf16 dot products, where the CPU has them) and
the bfloat16 kernel on the ``avx512`` path (inputs widened to float32, the path before the bf16
engine). ``speedup`` = float32 time / bf16 time (issue #14: >= 1.5 where AVX512-BF16 or AMX exist).

    PYTHONPATH=. python benchmarks/cpu_bf16_vs_f32.py [--repeat 15] [--threads 1 2] [--batches 1 0]
        [--clock wall|cpu] [--tag run] [--out benchmarks/results/cpu]

Writes ``<out>/cpu_bf16_vs_f32_<tag>.json`` and ``.md`` (CPU model, the ISA path and how each dtype is
computed there).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

import vtrack.kernels as K
from vtrack.bench.common import CLOCKS, environment, markdown_table, min_ms_alternating, write_json
from vtrack.io import atomic_write_text
from vtrack.kernels import cpp_ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_vs_sdpa import DEFAULT_BATCH, OPS  # noqa: E402  (the issue's shapes, one definition)


def measure(op: str, batch: int, mode: str, repeat: int, clock: str, widened_isa: str | None) -> dict:
    """Time float32, bfloat16 (current ISA path) and bfloat16 on ``widened_isa`` for one op/batch/mode."""
    h, n, d, kw = OPS[op]
    g = torch.Generator().manual_seed(0)
    base = [torch.randn(batch, h, n, d, generator=g).to(torch.bfloat16).float() for _ in range(4)]
    grad = mode != "fwd"
    t32 = [t.clone().requires_grad_(grad) for t in base[:3]]
    t16 = [t.to(torch.bfloat16).requires_grad_(grad) for t in base[:3]]
    dout32, dout16 = base[3], base[3].to(torch.bfloat16)
    isa = cpp_ops.isa()

    def call(tensors: list[torch.Tensor], dout: torch.Tensor, path: str) -> Callable[[], None]:
        def fn() -> None:
            cpp_ops.isa(path)
            try:
                if grad:
                    res = K.attention(*tensors, backend="cpp", **kw)
                    (res[0] if isinstance(res, tuple) else res).backward(dout)
                    for t in tensors:
                        t.grad = None
                else:
                    with torch.no_grad():
                        K.attention(*tensors, backend="cpp", **kw)
            finally:
                cpp_ops.isa(isa)
        return fn

    fns = [call(t32, dout32, isa), call(t16, dout16, isa)]
    if widened_isa is not None:
        fns.append(call(t16, dout16, widened_isa))
    times = min_ms_alternating(fns, repeat, clock=CLOCKS[clock])
    row = {"op": op, "shape": f"({batch},{h},{n},{d})", "batch": batch, "mode": mode, "threads": torch.get_num_threads(),
           "isa": isa, "f32_ms": times[0], "bf16_ms": times[1], "speedup": times[0] / times[1],
           "bf16_widened_ms": times[2] if widened_isa else None,
           "speedup_widened": times[0] / times[2] if widened_isa else None, "clock": clock}
    return row


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 0], help="0: the issue's batch of the op (8 or 4)")
    p.add_argument("--ops", nargs="+", default=["topk", "fda", "ce", "dense"], choices=list(OPS))
    p.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    p.add_argument("--clock", default="wall", choices=list(CLOCKS),
                   help="wall (perf_counter) or cpu (process CPU time: steadier on a busy machine with 1 thread)")
    p.add_argument("--tag", default="run")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu"))
    args = p.parse_args(argv)
    if args.repeat < 1 or any(t < 1 for t in args.threads) or any(b < 0 for b in args.batches):
        p.error("--repeat/--threads must be >= 1 and --batches >= 0")
    env = environment("cpu")  # CPU model and cpp_isa
    env["compute_path"] = {str(dt).replace("torch.", ""): cpp_ops.compute_path(dt)
                           for dt in (torch.bfloat16, torch.float16, torch.float32)}
    supported = cpp_ops.supported_isas()
    widened = "avx512" if "avx512bf16" in supported and "avx512" in supported else None
    rows = []
    for t in args.threads:
        torch.set_num_threads(t)
        for op in args.ops:
            for b in args.batches:
                batch = DEFAULT_BATCH[op] if b == 0 else b
                for mode in args.modes:
                    r = measure(op, batch, mode, args.repeat, args.clock, widened)
                    rows.append(r)
                    print(f"{op:6s} {r['shape']:16s} {mode:8s} threads={t} f32 {r['f32_ms']:8.2f} ms  bf16 "
                          f"{r['bf16_ms']:8.2f} ms  speedup {r['speedup']:.2f}"
                          + (f"  (widened bf16 {r['speedup_widened']:.2f})" if widened else ""), flush=True)
    stem = args.out / f"cpu_bf16_vs_f32_{args.tag}"
    write_json(stem.with_suffix(".json"), {"environment": env, "repeat": args.repeat, "rows": rows})
    cols = ["op", "shape", "mode", "threads", "f32_ms", "bf16_ms", "speedup", "bf16_widened_ms", "speedup_widened"]
    md = [f"# cpp bfloat16 vs float32 on {env['device_name']} ({args.tag})", "",
          f"ISA path: {env['cpp_isa']}; compute path per dtype: {env['compute_path']}; torch {env['torch']}; "
          f"commit {env['git_commit'][:10]}; load average {env['load_avg_1m']:.1f}; minimum over {args.repeat} "
          f"alternating calls in one process ({args.clock} clock). speedup = float32 ms / bf16 ms; "
          f"`bf16_widened` = bfloat16 on the {widened} path (inputs widened to float32).", "",
          markdown_table(rows, cols)]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    print(f"written: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
