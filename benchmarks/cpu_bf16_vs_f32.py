"""bfloat16 / float32 speed of the fused C++ CPU kernels at the shapes of issue #14 (one process, minimum over repeats).

For every op (dense, top-K K=32, FDA, CE keep 180), mode (forward under ``torch.no_grad``; forward +
backward), thread count and batch, three calls on the same values are timed alternately (so a busy
machine slows all alike) and the minimum over the repeats of each is kept: the float32 kernel, the
bfloat16 kernel on the widest ISA path (``avx512bf16``: bf16 dot products, where the CPU has them, or AMX-BF16 tile
products where it has AMX too and ``VTRACK_CPU_AMX`` is not 0; the row's ``bf16_path`` says which) and
the bfloat16 kernel on the ``avx512`` path (inputs widened to float32, the path before the bf16
engine). ``speedup`` = float32 time / bf16 time (issue #14: >= 1.5 where AVX512-BF16 or AMX exist).

    PYTHONPATH=. python benchmarks/cpu_bf16_vs_f32.py [--repeat 15] [--threads 1 2] [--batches 1 0]
        [--clock wall|cpu] [--tag run] [--out benchmarks/results/cpu]

Writes ``<out>/cpu_bf16_vs_f32_<tag>.json`` and ``.md`` (CPU model, the ISA path and how each dtype is
computed there).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch

import vtrack.kernels as K
from vtrack.bench.common import CLOCKS, environment, min_ms_alternating
from vtrack.kernels import cpp_ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_vs_sdpa import DEFAULT_BATCH, OPS, grid_parser, parse_grid, write_grid  # noqa: E402  (the issue's shapes, one definition)


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
           "isa": isa, "bf16_path": cpp_ops.compute_path(torch.bfloat16), "f32_ms": times[0], "bf16_ms": times[1], "speedup": times[0] / times[1],
           "bf16_widened_ms": times[2] if widened_isa else None,
           "speedup_widened": times[0] / times[2] if widened_isa else None, "clock": clock}
    return row


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    p = grid_parser(__doc__.splitlines()[0], ["topk", "fda", "ce", "dense"])
    p.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    args = parse_grid(p, argv)
    env = environment("cpu")  # CPU model and cpp_isa
    env["compute_path"] = {str(dt).replace("torch.", ""): cpp_ops.compute_path(dt)
                           for dt in (torch.bfloat16, torch.float16, torch.float32)}
    env["amx_status"] = cpp_ops.amx_status()  # "": the bf16 products run on AMX tiles; else why not
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
    cols = ["op", "shape", "mode", "threads", "bf16_path", "f32_ms", "bf16_ms", "speedup", "bf16_widened_ms", "speedup_widened"]
    write_grid(args, "cpu_bf16_vs_f32", "cpp bfloat16 vs float32", env, rows, cols,
               f"ISA path: {env['cpp_isa']}; compute path per dtype: {env['compute_path']}; AMX: "
               f"{'on' if env['amx_status'] == '' else env['amx_status']}",
               f" speedup = float32 ms / bf16 ms; `bf16_widened` = bfloat16 on the {widened} path (inputs widened to "
               "float32).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
