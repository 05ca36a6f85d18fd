"""Shared benchmark utilities: timing, peak memory, environment record, JSON/markdown writers, plots.

Timing: ``warmup`` untimed calls, then ``repeat`` timed calls; the median is reported. On CUDA
each call is timed with CUDA events after a ``torch.cuda.synchronize()``; on CPU with
``time.perf_counter``.

Peak memory:
* CUDA: ``torch.cuda.max_memory_allocated()`` during the call minus the memory allocated before.
* CPU: PyTorch's CPU allocator keeps no statistics and ``tracemalloc``/RSS do not see (or do
  not release) tensor memory, so :class:`LiveTensorBytes` counts it: a ``TorchDispatchMode``
  records the storage of every tensor produced by an op during the call and follows its lifetime
  with ``StorageWeakRef``, so autograd-saved tensors and freed temporaries are accounted for. The
  peak of live bytes is reported. It does not see scratch memory allocated *inside* an opaque
  custom op (only that op's outputs), so fused backends' figures are a lower bound that includes
  everything they keep alive.
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vtrack.io import AtomicPath, atomic_write_text
from vtrack.provenance import cpu_model, git_commit

PathLike = Union[str, os.PathLike]


@dataclass
class Timing:
    """Result of :func:`time_fn` (milliseconds)."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeat: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], *, device: Union[str, torch.device] = "cpu", warmup: int = 3,
            repeat: int = 10) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeat`` timed calls."""
    if warmup < 0 or repeat < 1:
        raise ValueError(f"warmup/repeat: expected warmup >= 0 and repeat >= 1, got {warmup}, {repeat}")
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return Timing(statistics.median(times), min(times), max(times), repeat)


class LiveTensorBytes(TorchDispatchMode):
    """Dispatch mode tracking the peak bytes of live tensor storages created while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def _collect(self) -> None:
        dead = [k for k, (ref, _) in self._live.items() if ref.expired()]
        for k in dead:
            self.current -= self._live.pop(k)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._collect()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = st.data_ptr()
                if key and key not in self._live:
                    self._live[key] = (StorageWeakRef(st), st.nbytes())
                    self.current += st.nbytes()
        self.peak = max(self.peak, self.current)
        return out


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""Benchmark clocks by name: ``wall`` (``time.perf_counter``) and ``cpu`` (``time.process_time``, the CPU
time of every thread of this process: on a machine whose cores other processes take, it measures the
work rather than the wait for a core; at one thread it is that thread's time, with more it sums them)."""


def get_clock(name: str) -> Callable[[], float]:
    """The clock of :data:`CLOCKS` called ``name`` (ValueError naming the choices otherwise)."""
    if name not in CLOCKS:
        raise ValueError(f"clock: expected one of {', '.join(CLOCKS)}, got {name!r}")
    return CLOCKS[name]


def min_ms_alternating(fns: Sequence[Callable[[], Any]], repeat: int, warmup: int = 2,
                       clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Minimum time (ms, by ``clock``) of each function, called in turn ``repeat`` times after
    ``warmup`` rounds: alternating calls let every function see the same machine load, so their
    ratios are fair on a shared machine."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat/warmup: expected repeat >= 1 and warmup >= 0, got {repeat}/{warmup}")
    for _ in range(warmup):
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = clock()
            fn()
            best[i] = min(best[i], clock() - t0)
    return [b * 1e3 for b in best]


def peak_memory_bytes(fn: Callable[[], Any], *, device: Union[str, torch.device] = "cpu") -> int:
    """Peak extra memory (bytes) of one ``fn()`` call (see the module docstring for the method)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with LiveTensorBytes() as mode:
        fn()
    return int(mode.peak)


def environment(device: Union[str, torch.device]) -> dict[str, Any]:
    """Device, versions, git commit and time of a benchmark run."""
    device = torch.device(device)
    info: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "triton_interpret": os.environ.get("TRITON_INTERPRET", "0"),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
    else:
        info.update(cpu_kernel_paths())
    return info


def cpu_kernel_paths() -> dict[str, Any]:
    """The vector paths CPU kernels take here: vtrack's C++ engine (``cpp_isa``, and how it computes bf16/fp16:
    ``cpp_bf16_path``, ``cpp_fp16_path``; ``cpp_amx_status``: "" when its bf16 products run on AMX tiles, else why
    not) and ATen's (``aten_cpu_capability``)."""
    info: dict[str, Any] = {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        from vtrack.kernels import cpp_ops

        info["cpp_isa"] = cpp_ops.isa()
        # how bf16/fp16 are computed on that path ("bf16-amx": AMX-BF16 tiles; "bf16-dot": AVX512-BF16 dot
        # products; "widened-f32") and why AMX is off ("" when on)
        info["cpp_bf16_path"] = cpp_ops.compute_path(torch.bfloat16)
        info["cpp_amx_status"] = cpp_ops.amx_status()
        info["cpp_fp16_path"] = cpp_ops.compute_path(torch.float16)
    except ImportError:
        info["cpp_isa"] = None
    except (AttributeError, RuntimeError):  # a vtrack._C built before the ISA dispatch: rebuild it
        info["cpp_isa"] = "unknown (vtrack._C predates the ISA dispatch; rebuild it)"
    return info


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (atomically)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    return str(x)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Optional[Sequence[str]] = None) -> str:
    """A GitHub markdown table of ``rows`` (dicts) restricted to ``columns``."""
    headers = list(headers or columns)
    if len(headers) != len(columns):
        raise ValueError(f"headers: expected {len(columns)} names, got {len(headers)}")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _savefig(fig: Any, path: PathLike) -> Path:
    target = AtomicPath(path, keep_suffix=True)
    with target as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    return target.path


def plot_lines(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: PathLike, *, xlabel: str,
               ylabel: str, title: str, logx: bool = True, logy: bool = True) -> Path:
    """Line plot of ``{label: (xs, ys)}`` (e.g. time vs N), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    try:
        return _savefig(fig, path)
    finally:
        plt.close(fig)


def plot_bars(groups: Sequence[str], series: dict[str, Sequence[float]], path: PathLike, *, ylabel: str, title: str,
              baseline: Optional[float] = 1.0) -> Path:
    """Grouped bar chart (e.g. speed-up over a baseline per shape), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(min(16, max(6, 0.35 * len(groups) * max(1, len(series)))), 5))
    width = 0.8 / max(1, len(series))
    for i, (label, vals) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [0 if v is None or math.isnan(v) else v for v in vals], width, label=label)
    if baseline is not None:
        ax.axhline(baseline, color="k", lw=0.8, ls="--")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    try:
        return _savefig(fig, path)
    finally:
        plt.close(fig)


