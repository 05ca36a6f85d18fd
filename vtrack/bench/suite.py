"""The benchmark suite: kernels + trackers + training in one run (``vtrack bench all``).

Runs, on one device:

1. kernels (:mod:`vtrack.bench.kernels`): every op x backend at the tracker shapes, forward and
   forward+backward, against the reference, SDPA and (FDA) compiled FlexAttention, plus a
   time-vs-N sweep;
2. trackers (:mod:`vtrack.bench.trackers`): every registered tracker family, cases from
   ``benchmarks/trackers.yaml`` (fused vs reference backend, CE on/off through config overrides):
   tracking FPS at batch 1, model forward at batch 1 (CUDA graph on CUDA), throughput at batch 32,
   GMACs;
3. training (:mod:`vtrack.bench.train`): step time and peak memory per tracker, fused vs reference.

Writes under ``--out`` (default ``benchmarks/results/<device type>/``): ``suite.json`` (environment
with versions, git commit, load average, all rows), each part's JSON + markdown + plots
(``kernels.*``, ``trackers.*``, ``train.*``) and ``README.md`` summarising the run. ``--quick``
shrinks everything (small shapes, few repeats) for tests and smoke checks.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch

from vtrack.bench import kernels as kbench
from vtrack.bench import trackers as tbench
from vtrack.bench import train as trbench
from vtrack.bench.common import environment, markdown_table, plot_bars, write_json
from vtrack.io import atomic_write_text

log = logging.getLogger(__name__)

PARTS = ("kernels", "trackers", "train")
HIGH_LOAD = 3.0

# Speed targets of the issues, per device type and (op, mode); "*" matches every mode.
# min_speedup: reference time / fused time; max_vs_sdpa: fused time / SDPA time;
# max_mem_ratio: fused peak memory / reference peak memory.
TARGETS: dict[str, dict[tuple[str, str], dict[str, float]]] = {
    "cpu": {  # C++/CUDA issue, "cpp" backend on CPU
        ("topk", "fwd"): {"min_speedup": 3.0, "max_vs_sdpa": 1.5, "max_mem_ratio": 0.25},
        ("topk", "fwd+bwd"): {"min_speedup": 2.0, "max_mem_ratio": 0.25},
        ("fda", "*"): {"max_vs_sdpa": 1.5, "max_mem_ratio": 0.25},
        ("ce", "*"): {"max_vs_sdpa": 1.3, "max_mem_ratio": 0.25},
    },
    "cuda": {  # kernel-library issue, fused backends on an H100
        ("topk", "fwd+bwd"): {"min_speedup": 4.0, "max_vs_sdpa": 2.0},
        ("fda", "*"): {"max_vs_sdpa": 1.5},
        ("ce", "*"): {"max_vs_sdpa": 1.3},
    },
}


def target_check(device_type: str, op: str, mode: str, speedup: Optional[float], vs_sdpa: Optional[float],
                 mem_ratio: Optional[float]) -> str:
    """"yes", "no (...)" or "-" (no target) for one fused measurement against :data:`TARGETS`."""
    table = TARGETS.get(device_type, {})
    target = table.get((op, mode)) or table.get((op, "*"))
    if not target:
        return "-"
    misses = []
    checks = (("min_speedup", speedup, lambda v, t: v >= t, "speed-up {v:.2g} < {t:g}"),
              ("max_vs_sdpa", vs_sdpa, lambda v, t: v <= t, "{v:.2g}x SDPA > {t:g}"),
              ("max_mem_ratio", mem_ratio, lambda v, t: v <= t, "memory {v:.2g}x reference > {t:g}"))
    for key, value, ok, text in checks:
        if key in target:
            if value is None:
                misses.append(f"{key} not measured")
            elif not ok(value, target[key]):
                misses.append(text.format(v=value, t=target[key]))
    return "yes" if not misses else "no (" + "; ".join(misses) + ")"


def load_average() -> Optional[list[float]]:
    """1, 5 and 15 minute load averages (None where the OS does not provide them)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def suite_environment(device: torch.device) -> dict[str, Any]:
    """:func:`vtrack.bench.common.environment` plus CPU count, load average and package versions."""
    env = environment(device)
    env["cpu_count"] = os.cpu_count()
    env["load_average_start"] = load_average()
    for dist in ("numpy", "timm", "torchvision"):
        try:
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            env[dist] = None
    try:
        import vtrack.kernels as K

        env["kernel_backends"] = K.registered_backends(device)
    except (ImportError, AttributeError, TypeError):
        env["kernel_backends"] = None
    return env


def _ms(r: Optional[kbench.Row]) -> Optional[str]:
    return None if r is None or r.ms is None else f"{r.ms:.3g} ({r.min_ms:.3g})"


def kernel_summary(rows: list[kbench.Row], device_type: str = "cpu") -> str:
    """Pivot of the kernel rows: per shape/op/mode, each backend's "median (min)" ms, its speed-up over
    the reference and its time relative to SDPA (both from medians), and peak memory."""
    fused = list(dict.fromkeys(r.backend for r in rows if r.ms is not None
                               and r.backend not in ("reference", "sdpa", "flex")))
    has_flex = any(r.backend == "flex" and r.ms is not None for r in rows)
    keyed = {(r.shape, r.op, r.mode, r.backend): r for r in rows}
    groups = list(dict.fromkeys((r.shape, r.op, r.mode, r.B) for r in rows))
    table = []
    for shape, op, mode, b in groups:
        ref, sdpa = keyed.get((shape, op, mode, "reference")), keyed.get((shape, op, mode, "sdpa"))
        d: dict[str, Any] = {"shape": f"{shape} (B={b})", "op": op, "mode": mode,
                             "ref": _ms(ref), "sdpa": _ms(sdpa),
                             "ref_mib": ref.peak_mib if ref else None}
        if has_flex:
            flex = keyed.get((shape, op, mode, "flex"))
            d["flex"] = _ms(flex)
        for b_name in fused:
            r = keyed.get((shape, op, mode, b_name))
            d[f"{b_name}"] = _ms(r)
            d[f"{b_name}_x"] = r.vs_reference if r else None
            d[f"{b_name}_sdpa"] = r.vs_sdpa if r else None
            d[f"{b_name}_mib"] = r.peak_mib if r else None
            if r is not None and r.ms is not None:
                mem = r.peak_mib / ref.peak_mib if ref and ref.peak_mib and r.peak_mib is not None else None
                d[f"{b_name}_target"] = target_check(device_type, op, mode, r.vs_reference, r.vs_sdpa, mem)
        table.append(d)
    cols = ["shape", "op", "mode", "ref"] + [f"{b}" for b in fused] + ["sdpa"] + (["flex"] if has_flex else [])
    heads = ["shape", "op", "mode", "reference ms"] + [f"{b} ms" for b in fused] + ["SDPA ms"] + (
        ["FlexAttention ms"] if has_flex else [])
    for b_name in fused:
        cols += [f"{b_name}_x", f"{b_name}_sdpa"]
        heads += [f"{b_name} speed-up vs reference", f"{b_name} time / SDPA"]
    cols.append("ref_mib")
    heads.append("reference peak MiB")
    for b_name in fused:
        cols.append(f"{b_name}_mib")
        heads.append(f"{b_name} peak MiB")
    if TARGETS.get(device_type):
        for b_name in fused:
            cols.append(f"{b_name}_target")
            heads.append(f"{b_name} meets target")
    return markdown_table(table, cols, heads)


def write_train_results(rows: list[trbench.TrainStepResult], out: Path, env: dict[str, Any],
                        args: Optional[dict[str, Any]] = None) -> Path:
    """``train.json``, ``train.md`` and ``train_speedup.png`` under ``out``; returns the .md path."""
    write_json(out / "train.json", {"environment": env, "arguments": args or {}, "rows": [asdict(r) for r in rows]})
    ref = {r.config: r.ms_per_step for r in rows if r.backend == "reference"}
    groups = [c for c in dict.fromkeys(r.config for r in rows) if c in ref]
    series: dict[str, list[float]] = {}
    for r in rows:
        if r.backend not in ("reference", "-") and r.config in ref:
            series.setdefault(r.backend, [math.nan] * len(groups))[groups.index(r.config)] = ref[r.config] / r.ms_per_step
    md = [f"# Training step ({env.get('device_name')}, {env.get('device')})\n",
          "Forward, loss, backward, gradient clipping and AdamW on one batch from the real processing pipeline; "
          "median ms per step; peak memory of one step (CUDA: max_memory_allocated; CPU: live tensor bytes). "
          "Backend `-`: the model has no switchable attention kernels.\n", trbench.format_table(rows) + "\n"]
    if groups and series:
        plot_bars(groups, series, out / "train_speedup.png", ylabel="training-step speed-up over reference (x)",
                  title=f"training step, fused vs reference ({env.get('device_name')})")
        md.append("\n![training speed-up](train_speedup.png)\n")
    return atomic_write_text(out / "train.md", "\n".join(md))


def _load_line(env: dict[str, Any]) -> str:
    start, end = env.get("load_average_start"), env.get("load_average_end")
    if not start:
        return "Load average: not available on this OS."
    worst = max(start[0], (end or start)[0])
    text = (f"Load average (1/5/15 min) at start {start}, at end {end}; {env.get('cpu_count')} CPUs. ")
    if worst > HIGH_LOAD and env.get("device", "").startswith("cpu"):
        text += (f"**The machine was busy (1-min load {worst:.1f} > {HIGH_LOAD:g})**: other processes shared the "
                 "cores, so absolute CPU times are inflated and noisy; ratios between rows measured close "
                 "together are more reliable than absolute numbers.")
    return text


def write_readme(out: Path, env: dict[str, Any], parts: dict[str, Any], args: dict[str, Any]) -> Path:
    """``README.md`` of a results folder: environment, the three tables, links to the details."""
    lines = [f"# vtrack benchmark results: {env.get('device_name')} ({env.get('device')})\n",
             f"Run {env.get('time_utc')} at commit `{str(env.get('git_commit'))[:12]}`; torch {env.get('torch')}, "
             f"triton {env.get('triton')}, python {env.get('python')}"
             + (f", CUDA {env.get('cuda')}" if env.get("cuda") else "") + ".\n",
             _load_line(env) + "\n",
             f"Command: `{args.get('command', 'vtrack bench all')}` (durations: "
             + ", ".join(f"{k} {v:.0f} s" for k, v in env.get("durations_s", {}).items()) + ").\n"]
    if "kernels" in parts:
        rows = parts["kernels"]
        batches = sorted({r.B for r in rows})
        lines += ["## Kernels at the tracker shapes\n",
                  f"Batch {', '.join(map(str, batches))} (the issue's shapes use B=32/32/16"
                  + ("; smaller here to fit the CPU run" if env.get("device", "").startswith("cpu") else "")
                  + f"), {env.get('kernel_dtype')}, {env.get('kernel_threads')} threads. Times: median (min) ms; "
                  "speed-up = reference / backend; time / SDPA = backend / dense SDPA (lower is better). "
                  "Peak MiB: extra memory of one call (see kernels.md for the method). Details: "
                  "[kernels.md](kernels.md), [kernels.json](kernels.json). Targets: "
                  + ("the C++ issue's CPU targets (top-K fwd >= 3x reference and <= 1.5x SDPA, fwd+bwd >= 2x; "
                     "FDA <= 1.5x SDPA; CE <= 1.3x SDPA; peak memory <= 1/4 of the reference)"
                     if env.get("device", "").startswith("cpu") else
                     "the kernel-library issue's H100 targets (top-K fwd+bwd >= 4x reference and <= 2x SDPA; "
                     "FDA <= 1.5x SDPA; CE <= 1.3x SDPA)") + ".\n",
                  kernel_summary(rows, "cpu" if env.get("device", "").startswith("cpu") else "cuda")]
        if (out / "kernels_speedup.png").exists():
            lines.append("\n![kernel speed-up](kernels_speedup.png)\n")
        if (out / "kernels_time_vs_n.png").exists():
            lines.append("\n![time vs N](kernels_time_vs_n.png)\n")
    if "trackers" in parts:
        lines += ["## Trackers\n",
                  f"{env.get('tracker_threads')} thread(s), autocast {env.get('tracker_amp')}. FPS through the "
                  "whole tracking step at batch 1 (1 / median ms per frame); model forward at batch 1 and throughput of the model forward "
                  "(template+search); GMACs by FlopCounterMode on the reference path (fused custom ops report "
                  "no FLOPs). Random weights. Details: [trackers.md](trackers.md).\n",
                  tbench.format_suite_table(parts["trackers"])]
        if (out / "trackers_fps.png").exists():
            lines.append("\n![tracker FPS](trackers_fps.png)\n")
    if "train" in parts:
        lines += ["## Training step\n", f"{env.get('train_threads')} threads. Details: [train.md](train.md).\n",
                  trbench.format_table(parts["train"]) + "\n"]
        if (out / "train_speedup.png").exists():
            lines.append("\n![training speed-up](train_speedup.png)\n")
    return atomic_write_text(out / "README.md", "\n".join(lines))


def run_suite(device: str | torch.device = "cpu", out: str | os.PathLike[str] | None = None, *, quick: bool = False,
              parts: tuple[str, ...] = PARTS, kernel_batch: Optional[int] = None, kernel_repeat: Optional[int] = None,
              flex: bool = True,
              sweep_max: Optional[int] = None, cases_file: Optional[str] = None, tracker_threads: int = 1,
              frames: Optional[int] = None, throughput_batch: Optional[int] = None, amp: Optional[str] = None,
              train_batch: Optional[int] = None, train_steps: Optional[int] = None,
              backends: Optional[list[str]] = None, command: str = "vtrack bench all") -> dict[str, Any]:
    """Run the suite and write its results; returns ``{"environment": ..., "out": Path, part: rows}``.

    ``backends`` (trackers and training; default reference + every fused backend on the device).
    Results are (re)written after every part, so an interrupted run keeps the finished parts.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise ValueError(f"parts: expected a non-empty subset of {PARTS}, got {parts}")
    if tracker_threads < 1:
        raise ValueError(f"tracker_threads: expected a positive int, got {tracker_threads}")
    out_dir = Path(out) if out is not None else Path("benchmarks") / "results" / dev.type
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    env = suite_environment(dev)
    durations: dict[str, float] = {}
    results: dict[str, Any] = {}
    args = {"device": str(dev), "quick": quick, "parts": list(parts), "kernel_batch": kernel_batch,
            "kernel_repeat": kernel_repeat, "flex": flex,
            "sweep_max": sweep_max, "cases_file": cases_file, "tracker_threads": tracker_threads, "frames": frames,
            "throughput_batch": throughput_batch, "amp": amp, "train_batch": train_batch,
            "train_steps": train_steps, "backends": backends, "command": command}
    def finish() -> None:  # written after every part, so an interrupted run keeps what it measured
        env["load_average_end"] = load_average()
        env["durations_s"] = {k: round(v, 1) for k, v in durations.items()}
        write_json(out_dir / "suite.json", {
            "environment": env, "arguments": args,
            **{k: [asdict(r) for r in v] for k, v in results.items()},
        })
        write_readme(out_dir, env, results, args)

    if "kernels" in parts:
        t0 = time.perf_counter()
        kdtype = torch.float16 if dev.type == "cuda" else torch.float32
        env["kernel_dtype"], env["kernel_threads"] = str(kdtype).replace("torch.", ""), threads
        env["load_average_kernels"] = load_average()
        kw: dict[str, Any] = dict(warmup=0, repeat=1, shapes=["ostrack256"]) if quick else {}
        if kernel_repeat is not None:
            kw["repeat"] = kernel_repeat
        batch = kernel_batch if kernel_batch is not None else (1 if quick else None)
        rows = kbench.run_benchmark(dev, batch=batch, dtype=kdtype, quick=quick, flex=flex and not quick, **kw)
        smax = sweep_max if sweep_max is not None else (128 if quick else (2048 if dev.type == "cpu" else 4096))
        sweep = kbench.run_sweep(dev, n_max=smax, dtype=kdtype, quick=quick) if smax else []
        kbench.write_results(rows, out_dir, dev, sweep, args=args)
        results["kernels"], results["sweep"] = rows, sweep
        durations["kernels"] = time.perf_counter() - t0
        finish()
    if "trackers" in parts:
        t0 = time.perf_counter()
        cases = tbench.suite_cases(dev, cases_file=cases_file)
        tamp = amp or ("fp16" if dev.type == "cuda" else "off")
        env["tracker_threads"], env["tracker_amp"] = tracker_threads, tamp
        env["load_average_trackers"] = load_average()
        torch.set_num_threads(tracker_threads)
        try:
            trows = tbench.run_cases(
                cases, backends=backends, device=dev, frames=frames or (2 if quick else 30),
                warmup=1 if quick else 3, repeat=1 if quick else 5,
                throughput_batch=throughput_batch if throughput_batch is not None else (2 if quick else 32),
                image_size=(120, 160) if quick else (360, 480), amp=tamp, cuda_graph=True, macs=True,
                progress=not quick)
        finally:
            torch.set_num_threads(threads)
        tbench.write_suite_results(trows, out_dir, env=env, args=args)
        results["trackers"] = trows
        durations["trackers"] = time.perf_counter() - t0
        finish()
    if "train" in parts:
        t0 = time.perf_counter()
        env["train_threads"] = threads
        env["load_average_train"] = load_average()
        cases = tbench.suite_cases(dev, cases_file=cases_file)
        rrows = trbench.run_cases(cases, backends=backends, device=dev, batch_size=train_batch or (2 if quick else 8),
                                  steps=train_steps or (1 if quick else 5), warmup=0 if quick else 2,
                                  amp=None if dev.type == "cuda" else "off", progress=not quick)
        write_train_results(rrows, out_dir, env, args)
        results["train"] = rrows
        durations["train"] = time.perf_counter() - t0
        finish()
    return {"environment": env, "out": out_dir, **results}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vtrack bench all``."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<device>)")
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats (tests, smoke checks)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--kernel-batch", type=int, default=None,
                        help="batch of the kernel shapes (default: the issue's B on CUDA, 2 on CPU)")
    parser.add_argument("--kernel-repeat", type=int, default=None, help="timed kernel calls (default 10)")
    parser.add_argument("--no-flex", action="store_true", help="skip the compiled FlexAttention baseline")
    parser.add_argument("--sweep-max", type=int, default=None,
                        help="largest N of the time-vs-N sweep (default 4096 CUDA, 2048 CPU; 0 skips)")
    parser.add_argument("--cases", default=None, help="tracker case list (default benchmarks/trackers.yaml)")
    parser.add_argument("--tracker-threads", type=int, default=1, help="CPU threads while timing trackers")
    parser.add_argument("--frames", type=int, default=None, help="timed tracking frames (default 30)")
    parser.add_argument("--batch", type=int, default=None, help="throughput batch of the model forward (default 32)")
    parser.add_argument("--amp", choices=sorted(tbench.AMP_DTYPES), default=None,
                        help="tracker autocast (default fp16 on CUDA, off on CPU)")
    parser.add_argument("--train-batch", type=int, default=None, help="training batch (default 8)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 5)")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="tracker/training kernel backends (default: reference + every fused one available)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the suite from parsed arguments and print the summary."""
    import sys

    res = run_suite(args.device, args.out, quick=args.quick, parts=tuple(args.parts), kernel_batch=args.kernel_batch,
                    kernel_repeat=args.kernel_repeat, flex=not args.no_flex, sweep_max=args.sweep_max,
                    cases_file=args.cases,
                    tracker_threads=args.tracker_threads, frames=args.frames, throughput_batch=args.batch,
                    amp=args.amp, train_batch=args.train_batch, train_steps=args.train_steps, backends=args.backends,
                    command=" ".join(["vtrack" if Path(sys.argv[0]).stem in ("cli", "__main__", "vtrack") else
                                      sys.argv[0], *sys.argv[1:]]))
    print((res["out"] / "README.md").read_text())
    print(f"wrote {res['out']}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``benchmarks/suite.py``."""
    parser = argparse.ArgumentParser(prog="benchmarks/suite.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    return run_from_args(parser.parse_args(argv))
