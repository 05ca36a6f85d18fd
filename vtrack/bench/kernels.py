"""Kernel benchmark: time and peak memory of every op x backend at tracker shapes.

Ops: ``topk`` (SparseTT, K=32), ``fda`` (ESAT, alpha=beta=0.1, delta=1/64) and ``ce`` (OSTrack
candidate elimination with keep ratio 0.7, template centre row), each on every registered
backend of :mod:`vtrack.kernels` (iterating the dispatcher, so backends registered later appear
automatically), plus two baselines: ``sdpa`` (dense ``F.scaled_dot_product_attention``, the
speed target) and ``flex`` (compiled FlexAttention with an FDA ``score_mod``; forward only on
CPU). Modes: ``fwd`` (inference, no autograd) and ``fwd+bwd``. Triton on CPU is its interpreter:
not timed (meaningless), noted in the table.

Shapes (B, H, N=M, D): SparseTT decoder (32, 8, 361, 32), OSTrack-256 (32, 12, 320, 64),
OSTrack-384 (16, 12, 720, 64); ``--batch`` overrides B (CPU default: 2). ``--sweep`` adds a
time-vs-N sweep (B=1, H=8, D=64, N = 64 .. ``--sweep-max``).

Writes ``<out>/kernels.json`` (environment + rows), ``<out>/kernels.md`` and PNG plots; default
out is ``benchmarks/results/<device type>/``.
"""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

import vtrack.kernels as K

from .common import environment, markdown_table, peak_memory_bytes, plot_bars, plot_lines, time_fn, write_json
from vtrack.io import atomic_write_text

log = logging.getLogger(__name__)

TOPK = 32
FDA = {"alpha": 0.1, "beta": 0.1, "delta": 1.0 / 64.0}
KEEP = 0.7
OPS = ("topk", "fda", "ce")
BASELINES = ("sdpa", "flex")
MODES = ("fwd", "fwd+bwd")


@dataclass(frozen=True)
class Shape:
    """A benchmark shape; ``num_template`` (square) enables the CE op."""

    name: str
    B: int
    H: int
    N: int
    D: int
    num_template: Optional[int] = None


SHAPES: dict[str, Shape] = {
    "sparsett": Shape("sparsett", 32, 8, 361, 32),
    "ostrack256": Shape("ostrack256", 32, 12, 320, 64, num_template=64),
    "ostrack384": Shape("ostrack384", 16, 12, 720, 64, num_template=144),
}


@dataclass
class Row:
    """One benchmark measurement (times in ms, memory in MiB; None when not run)."""

    shape: str
    op: str
    backend: str
    mode: str
    B: int
    H: int
    N: int
    D: int
    dtype: str
    ms: Optional[float] = None
    min_ms: Optional[float] = None
    peak_mib: Optional[float] = None
    vs_reference: Optional[float] = None
    vs_sdpa: Optional[float] = None
    note: str = ""


def _inputs(shape: Shape, device: torch.device, dtype: torch.dtype, grad: bool, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn(shape.B, shape.H, shape.N, shape.D, generator=g).to(device, dtype).requires_grad_(grad)
            for _ in range(3)]


def _op_call(op: str, shape: Shape, backend: str) -> Callable[..., torch.Tensor]:
    if op == "topk":
        return lambda q, k, v: K.topk_attention(q, k, v, TOPK, backend=backend)
    if op == "fda":
        return lambda q, k, v: K.fda_attention(q, k, v, **FDA, backend=backend)
    if op == "ce":
        return lambda q, k, v: K.ce_attention(q, k, v, num_template=shape.num_template, keep=KEEP, backend=backend)[0]
    raise ValueError(f"op: expected one of {OPS}, got {op!r}")


def _op_inputs(op: str, shape: Shape, q: torch.Tensor) -> K.AttentionInputs:
    if op == "topk":
        return K.build_inputs(q, q, q, topk=TOPK)
    if op == "fda":
        return K.build_inputs(q, q, q, fda=FDA)
    return K.build_inputs(q, q, q, ce={"num_template": shape.num_template, "keep": KEEP})


_FLEX_CACHE: dict[str, Any] = {}


def _flex_fda(device: torch.device) -> Optional[Callable[..., torch.Tensor]]:
    """Compiled FlexAttention with an FDA score_mod, or None when unavailable."""
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        return None
    key = device.type
    if key not in _FLEX_CACHE:
        _FLEX_CACHE[key] = torch.compile(flex_attention, dynamic=False)
    compiled = _FLEX_CACHE[key]

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scale = q.shape[-1] ** -0.5
        qn = q.float().square().sum(-1)
        kn = k.float().square().sum(-1)
        a, b_, d = FDA["alpha"], FDA["beta"], FDA["delta"]

        def score_mod(score, b, h, qi, ki):
            d2 = torch.clamp(qn[b, h, qi] + kn[b, h, ki] - 2.0 * score / scale, min=0.0)
            return score + a * torch.exp(-d * d2) - b_ * d * d2

        return compiled(q, k, v, score_mod=score_mod, scale=scale)

    return run


def _candidates(op: str, shape: Shape, device: torch.device, dtype: torch.dtype,
                flex: bool) -> list[tuple[str, Optional[Callable[..., torch.Tensor]], str]]:
    """(backend label, callable or None, note) for one op at one shape."""
    probe = torch.empty(1, shape.H, 2 if op != "ce" else shape.num_template + 1, shape.D, device=device, dtype=dtype)
    out: list[tuple[str, Optional[Callable[..., torch.Tensor]], str]] = []
    for name in K.registered_backends(device):
        if name == "sdpa":  # the registered dense backend is the "sdpa" baseline row below
            continue
        try:
            probe_inputs = _op_inputs(op, shape, probe)
            reasons = K.not_supported_reasons(name, probe_inputs)
        except (ValueError, TypeError) as err:
            reasons = [str(err)]
        if name == "triton" and device.type == "cpu":
            out.append((name, None, "not timed: Triton on CPU runs only as its interpreter (meaningless timing)"))
        elif reasons:
            out.append((name, None, "unsupported: " + "; ".join(reasons)))
        else:
            out.append((name, _op_call(op, shape, name), ""))
    out.append(("sdpa", F.scaled_dot_product_attention, "dense attention (speed target)"))
    if op == "fda" and flex:
        fn = _flex_fda(device)
        out.append(("flex", fn, "torch.compile(flex_attention) + FDA score_mod" if fn else "flex_attention unavailable"))
    return out


def _measure(fn: Callable[..., torch.Tensor], shape: Shape, mode: str, device: torch.device, dtype: torch.dtype,
             warmup: int, repeat: int, memory: bool = True) -> tuple[float, float, Optional[float]]:
    grad = mode == "fwd+bwd"
    q, k, v = _inputs(shape, device, dtype, grad)
    if grad:
        dout = torch.randn(shape.B, shape.H, shape.N, shape.D, device=device, dtype=dtype)

        def step() -> None:
            fn(q, k, v).backward(dout)
            q.grad = k.grad = v.grad = None
    else:
        def step() -> None:
            with torch.no_grad():
                fn(q, k, v)
    timing = time_fn(step, device=device, warmup=warmup, repeat=repeat)
    peak = peak_memory_bytes(step, device=device) / 2**20 if memory else None
    return timing.median_ms, timing.min_ms, peak


def run_benchmark(device: str | torch.device = "cpu", *, shapes: Optional[list[str]] = None,
                  ops: Optional[list[str]] = None, batch: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                  quick: bool = False, flex: bool = True, modes: tuple[str, ...] = MODES,
                  warmup: Optional[int] = None, repeat: Optional[int] = None) -> list[Row]:
    """Measure every op x backend x mode at the tracker shapes; returns the rows."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    shapes = shapes or list(SHAPES)
    ops = ops or list(OPS)
    for s in shapes:
        if s not in SHAPES:
            raise ValueError(f"shapes: unknown shape {s!r}; expected some of {list(SHAPES)}")
    for o in ops:
        if o not in OPS:
            raise ValueError(f"ops: unknown op {o!r}; expected some of {list(OPS)}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch: expected an int >= 1, got {batch}")
    if batch is None and device.type == "cpu":
        batch = 2
    warmup = warmup if warmup is not None else (1 if quick else 3)
    repeat = repeat if repeat is not None else (3 if quick else 10)
    if device.type == "cpu" and flex and not any(m == "fwd" for m in modes):
        flex = False
    rows: list[Row] = []
    jobs = []
    for sname in shapes:
        shape = SHAPES[sname]
        if batch is not None:
            shape = Shape(shape.name, batch, shape.H, shape.N, shape.D, shape.num_template)
        for op in ops:
            if op == "ce" and shape.num_template is None:
                continue
            for label, fn, note in _candidates(op, shape, device, dtype, flex):
                for mode in modes:
                    jobs.append((shape, op, label, fn, note, mode))
    dense_cache: dict[tuple[Shape, str], tuple[float, float, Optional[float]]] = {}  # SDPA: same for every op
    for shape, op, label, fn, note, mode in tqdm(jobs, desc="kernels", disable=None):
        row = Row(shape.name, op, label, mode, shape.B, shape.H, shape.N, shape.D, str(dtype).replace("torch.", ""),
                  note=note)
        if fn is not None and label == "flex" and mode == "fwd+bwd" and device.type == "cpu":
            row.note = "FlexAttention backward is not implemented on CPU"
        elif fn is not None:
            try:
                if label == "sdpa" and (shape, mode) in dense_cache:
                    row.ms, row.min_ms, row.peak_mib = dense_cache[(shape, mode)]
                else:
                    # the CPU memory tracker (a dispatch mode) cannot run compiled FlexAttention
                    memory = not (label == "flex" and device.type == "cpu")
                    row.ms, row.min_ms, row.peak_mib = _measure(fn, shape, mode, device, dtype, warmup, repeat, memory)
                    if not memory:
                        row.note += "; peak memory not measured on CPU (compiled higher-order op)"
                if label == "sdpa":
                    dense_cache[(shape, mode)] = (row.ms, row.min_ms, row.peak_mib)
            except (RuntimeError, NotImplementedError) as err:  # e.g. out of memory, missing kernel
                row.note = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
                log.warning("%s %s %s %s failed: %s", shape.name, op, label, mode, err)
        rows.append(row)
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list[Row]) -> None:
    by_key = {(r.shape, r.op, r.backend, r.mode, r.B, r.N): r for r in rows}
    for r in rows:
        if r.ms is None:
            continue
        ref = by_key.get((r.shape, r.op, "reference", r.mode, r.B, r.N))
        sdpa = by_key.get((r.shape, r.op, "sdpa", r.mode, r.B, r.N))
        if ref is not None and ref.ms:
            r.vs_reference = ref.ms / r.ms
        if sdpa is not None and sdpa.ms:
            r.vs_sdpa = r.ms / sdpa.ms


def run_sweep(device: str | torch.device = "cpu", *, ops: Optional[list[str]] = None, n_max: int = 4096,
              dtype: Optional[torch.dtype] = None, quick: bool = False, modes: tuple[str, ...] = ("fwd",)) -> list[Row]:
    """Time vs N at B=1, H=8, D=64 for N = 64, 128, ... n_max (CE: 64 template tokens; 16 at N=64)."""
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    if n_max < 64:
        raise ValueError(f"n_max: expected >= 64, got {n_max}")
    rows: list[Row] = []
    n = 64
    while n <= n_max:
        shape = Shape(f"sweep-N{n}", 1, 8, n, 64, num_template=16 if n <= 64 else 64)
        dense: dict[str, tuple[float, float, Optional[float]]] = {}
        for op in ops or list(OPS):
            for label, fn, note in _candidates(op, shape, device, dtype, flex=False):
                for mode in modes:
                    row = Row(shape.name, op, label, mode, 1, 8, n, 64, str(dtype).replace("torch.", ""), note=note)
                    if fn is not None:
                        if label == "sdpa" and mode in dense:
                            row.ms, row.min_ms, row.peak_mib = dense[mode]
                        else:
                            row.ms, row.min_ms, row.peak_mib = _measure(fn, shape, mode, device, dtype,
                                                                        1 if quick else 3, 3 if quick else 10)
                        if label == "sdpa":
                            dense[mode] = (row.ms, row.min_ms, row.peak_mib)
                    rows.append(row)
        n *= 2
    _add_ratios(rows)
    return rows


COLUMNS = ["shape", "op", "backend", "mode", "B", "ms", "min_ms", "vs_reference", "vs_sdpa", "peak_mib", "note"]
HEADERS = ["shape", "op", "backend", "mode", "B", "median ms", "min ms", "speed-up vs reference", "time / SDPA",
           "peak MiB", "note"]


def format_table(rows: list[Row]) -> str:
    """Markdown table of the measured rows, then one line per backend that was not run (and why)."""
    timed = [r for r in rows if r.ms is not None or r.note.startswith("failed")]
    text = markdown_table([asdict(r) for r in timed], COLUMNS, HEADERS)
    skipped: dict[tuple[str, str], None] = {}
    for r in rows:
        if r.ms is None and not r.note.startswith("failed"):
            skipped[(r.backend, r.note if r.backend != "flex" else f"{r.mode}: {r.note}")] = None
    if skipped:
        text += "\nNot run: " + "; ".join(f"`{b}` ({n})" for b, n in skipped) + ".\n"
    return text


def format_sweep(rows: list[Row]) -> str:
    """Pivot of a sweep: one line per N, one column per op/backend/mode: "median (min)" ms.

    The dense SDPA baseline is the same for every op and appears once.
    """
    cols: list[str] = []
    table: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r.ms is None:
            continue
        key = ("sdpa" if r.backend == "sdpa" else f"{r.op} {r.backend}") + ("" if r.mode == "fwd" else f" {r.mode}")
        if key not in cols:
            cols.append(key)
        table.setdefault(r.N, {"N": r.N})[key] = f"{r.ms:.3g} ({r.min_ms:.3g})"
    return markdown_table([table[n] for n in sorted(table)], ["N"] + cols, ["N"] + cols)


def write_results(rows: list[Row], out_dir: str | Path, device: torch.device, sweep: Optional[list[Row]] = None,
                  args: Optional[dict[str, Any]] = None) -> Path:
    """Write kernels.json, kernels.md and PNG plots under ``out_dir``; returns the markdown path."""
    out = Path(out_dir)
    env = environment(device)
    write_json(out / "kernels.json", {"environment": env, "arguments": args or {}, "rows": [asdict(r) for r in rows],
                                      "sweep": [asdict(r) for r in sweep or []]})
    md = [f"# Kernel benchmark ({env['device_name']}, {env['device']})\n",
          f"torch {env['torch']}, triton {env['triton']}, commit `{env['git_commit'][:12]}`, {env['time_utc']}, "
          f"{env['cpu_threads']} CPU threads"
          + (f", C++ kernel ISA path `{env.get('cpp_isa')}` (ATen: `{env.get('aten_cpu_capability')}`)"
             if device.type == "cpu" else "") + ". Median of repeated calls; peak memory: "
          + ("CUDA max_memory_allocated." if device.type == "cuda" else
             "live tensor storages tracked by a dispatch mode (see vtrack/bench/common.py).") + "\n",
          "`speed-up vs reference` = reference time / time; `time / SDPA` = time / dense SDPA time.\n",
          (f"Load average (1 min) when written: {env['load_avg_1m']:.1f} on {env['cpu_count']} CPUs"
           " - a shared machine: medians are noisy, `min ms` is the least disturbed call.\n"
           if device.type == "cpu" and env.get("load_avg_1m") is not None else ""),
          format_table(rows)]
    if sweep:
        md += ["\n## Time vs N (B=1, H=8, D=64, forward): median (min) ms\n", format_sweep(sweep)]
    groups, series = [], {}
    keyed = [r for r in rows if r.ms is not None and r.backend not in ("reference",)]
    for r in rows:
        g = f"{r.shape}/{r.op}/{r.mode}"
        if g not in groups and r.ms is not None:
            groups.append(g)
    for r in keyed:
        series.setdefault(r.backend, {})[f"{r.shape}/{r.op}/{r.mode}"] = r.vs_reference
    if groups and series:
        plot_bars(groups, {b: [v.get(g, math.nan) or math.nan for g in groups] for b, v in series.items()},
                  out / "kernels_speedup.png", ylabel="speed-up over reference (x)",
                  title=f"vtrack kernels vs reference ({env['device_name']})")
        md.append("\n![speed-up](kernels_speedup.png)\n")
    if sweep:
        lines: dict[str, tuple[list[float], list[float]]] = {}
        for r in sweep:
            if r.ms is not None:
                label = "sdpa (dense)" if r.backend == "sdpa" else f"{r.op}/{r.backend}"
                xs, ys = lines.setdefault(f"{label}/{r.mode}", ([], []))
                if r.N not in xs:
                    xs.append(r.N)
                    ys.append(r.min_ms)
        plot_lines(lines, out / "kernels_time_vs_n.png", xlabel="N = M tokens", ylabel="time (ms), min of repeats",
                   title=f"time vs N, B=1 H=8 D=64 ({env['device_name']})")
        md.append("\n![time vs N](kernels_time_vs_n.png)\n")
    return atomic_write_text(out / "kernels.md", "\n".join(md))


def quick_table(device: str | torch.device = "cpu") -> str:
    """A small, fast kernel table (batch 1, SparseTT and OSTrack-256 shapes, few repeats) for ``vtrack demo``."""
    rows = run_benchmark(device, shapes=["sparsett", "ostrack256"], batch=1, quick=True, flex=False,
                         warmup=1, repeat=2)
    return format_table(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vtrack bench kernels`` / ``benchmarks/kernels.py``."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results/<device>)")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size (CPU default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (1 warm-up, 3 timed)")
    parser.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES))
    parser.add_argument("--ops", nargs="+", default=None, choices=list(OPS))
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="default float16 on CUDA, float32 on CPU")
    parser.add_argument("--no-flex", action="store_true", help="skip the compiled FlexAttention baseline")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls (default 3; --quick 1)")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls, median reported (default 10; --quick 3)")
    parser.add_argument("--sweep", action="store_true", help="also time vs N (B=1, H=8, D=64)")
    parser.add_argument("--sweep-max", type=int, default=4096, help="largest N of the sweep (power of two)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments, write the results and print the table."""
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    rows = run_benchmark(device, shapes=args.shapes, ops=args.ops, batch=args.batch, dtype=dtype, quick=args.quick,
                         flex=not args.no_flex, warmup=args.warmup, repeat=args.repeat)
    sweep = run_sweep(device, ops=args.ops, n_max=args.sweep_max, dtype=dtype, quick=args.quick) if args.sweep else None
    out = args.out or Path("benchmarks") / "results" / device.type
    md = write_results(rows, out, device, sweep,
                       args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"})
    print(format_table(rows))
    print(f"wrote {md} and {out / 'kernels.json'}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``benchmarks/kernels.py``."""
    parser = argparse.ArgumentParser(prog="benchmarks/kernels.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
