"""Training step-time benchmark: one tracker config, every kernel backend, same batch.

A step is what :func:`vtrack.train.trainer.train` runs per batch: forward, criterion, backward,
gradient clipping and the AdamW update (under the config's AMP setting on CUDA). The batch is
built once by the real processing pipeline (:class:`vtrack.train.processing.Processor`, with the
family's crops and label generators) from generated frames, so the numbers measure the model
and the kernels, not image decoding. Weights are random: speed does not depend on them.

Every backend gets its own model (same seed, same weights), run one backend after the other
(``--interleave`` alternates their steps instead). Steps are timed by the wall clock, or with
``--clock cpu`` by the process's CPU time (:data:`vtrack.bench.common.CLOCKS`: on a machine whose cores
other processes take, the wall clock mostly measures the wait for a core; ``OMP_NUM_THREADS=1 ...
--interleave --clock cpu`` is the steady measure there). Per backend it reports the median
milliseconds per step (after warm-up steps), samples per second
and the peak memory of one step (CUDA: ``max_memory_allocated`` above the memory held before the
step; CPU: live tensor bytes as counted by :mod:`vtrack.bench.common` when available).

``vtrack bench train --config configs/ostrack/ostrack_tiny.yaml --batch-size 8`` or
``python benchmarks/train.py ...``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from vtrack.io import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "configs/ostrack/ostrack_tiny.yaml"

__all__ = ["TrainStepResult", "make_batch", "bench_train_step", "run_benchmark", "add_arguments", "run_from_args",
           "main"]


@dataclass
class TrainStepResult:
    """One benchmark row."""

    config: str
    family: str
    backend: str
    device: str
    amp: str
    batch_size: int
    steps: int
    ms_per_step: float
    min_ms: float
    samples_per_s: float
    peak_mem_mb: float | None
    clock: str = "wall"
    kernel_share: float | None = None


def _synthetic_sequences(folder: Path, n_seq: int = 2, n_frames: int = 4, size: tuple[int, int] = (240, 320)):
    """Short sequences of a textured target drifting over noise, written as PNG."""
    import cv2

    from vtrack.data.sequence import Sequence

    rng = np.random.default_rng(0)
    h, w = size
    seqs = []
    for s in range(n_seq):
        frames, boxes = [], []
        for f in range(n_frames):
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            x, y, bw, bh = 100 + 4 * f + 10 * s, 80 + 3 * f, 60, 48
            img[y:y + bh, x:x + bw] = (220, 60 + 50 * s, 40)
            path = folder / f"s{s}_{f}.png"
            cv2.imwrite(str(path), img[:, :, ::-1])
            frames.append(str(path))
            boxes.append((x, y, bw, bh))
        seqs.append(Sequence(f"bench{s}", frames, np.asarray(boxes, float), language="a red box"))
    return seqs


def make_batch(cfg: dict[str, Any], batch_size: int, seed: int = 0) -> dict[str, Any]:
    """One collated training batch for ``cfg`` through the family's processing config."""
    from torch.utils.data import default_collate

    from vtrack.config import deep_merge, from_dict
    from vtrack.models.registry import get_family
    from vtrack.train.processing import Processor
    from vtrack.train.samplers import TrackingSampler
    from vtrack.train.schema import AugmentConfig, ProcessingConfig, SamplerConfig

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    fam = get_family(cfg["model"]["name"])
    over = (cfg.get("data") or {}).get("processing") or {}
    pcfg = from_dict(ProcessingConfig, deep_merge(dict(fam.processing_config(cfg)), over), "data.processing")
    scfg = from_dict(SamplerConfig, pcfg.sampler, "processing.sampler")
    proc = Processor(pcfg, AugmentConfig())
    with tempfile.TemporaryDirectory() as tmp:
        seqs = _synthetic_sequences(Path(tmp))
        sampler = TrackingSampler([seqs], mode=pcfg.sample_mode, samples_per_epoch=batch_size, max_gap=3,
                                  num_support=scfg.num_support, num_query=scfg.num_query, seed=seed)
        items = []
        for i in range(batch_size):
            rng = sampler.rng(0, i)
            items.append(proc(sampler.sample(0, i, rng), sampler, rng))
    return default_collate(items)


def _peak_fn() -> Callable[..., int] | None:
    try:
        from vtrack.bench.common import peak_memory_bytes
    except ImportError:
        return None
    return peak_memory_bytes


class _StepRunner:
    """One backend's model, criterion, optimizer and batch, ready to run training steps."""

    def __init__(self, cfg: dict[str, Any], backend: str | None, device: torch.device, batch_size: int,
                 amp: str | None, batch: dict[str, Any] | None) -> None:
        from vtrack.config import from_dict
        from vtrack.models.registry import get_family
        from vtrack.train.schema import TrainConfig
        from vtrack.train.trainer import _amp_dtype, _to_device, build_param_groups

        train_sec = {k: v for k, v in (cfg.get("train") or {}).items() if k not in ("epochs", "batch_size")}
        tcfg = from_dict(TrainConfig, {"epochs": 1, "batch_size": batch_size, **train_sec}, "train")
        self.device = device
        self.amp_name = amp if amp is not None else tcfg.amp
        self.amp_dtype = _amp_dtype(self.amp_name, device)
        self.grad_clip = tcfg.grad_clip
        fam = get_family(cfg["model"]["name"])
        torch.manual_seed(0)
        self.model = fam.build_model(cfg["model"])
        if backend is not None:  # None: keep the model's own kernels (models without switchable attention)
            from vtrack.models.layers.backend import SupportsBackend

            if not isinstance(self.model, SupportsBackend):
                raise ValueError(f"backend: model {type(self.model).__name__} has no set_backend(); cannot switch "
                                 "kernels (pass backend=None to time it as built)")
            self.model.set_backend(backend)
        self.model.to(device).train()
        self.criterion = fam.build_criterion(cfg)
        if isinstance(self.criterion, torch.nn.Module):
            self.criterion.to(device)
        groups = build_param_groups(self.model, tcfg.lr, tcfg.weight_decay, tcfg.backbone_prefix, tcfg.backbone_lr_mult)
        self.opt = torch.optim.AdamW(groups, lr=tcfg.lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.batch = _to_device(batch if batch is not None else make_batch(cfg, batch_size), device)

    def step(self) -> None:
        """One training step: forward, loss, backward, clipping, AdamW update."""
        ctx = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
               else contextlib.nullcontext())
        with ctx:
            loss, _ = self.criterion(self.model(self.batch), self.batch)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()

    def timed_step(self, clock: Callable[[], float] = time.perf_counter) -> float:
        """Seconds of one step by ``clock`` (synchronised on CUDA)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = clock()
        self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return clock() - t0

    def kernel_share(self, steps: int = 3) -> float:
        """Fraction of the self CPU time of ``steps`` profiled steps spent in vtrack's custom attention
        ops (``vtrack::*`` forward and backward, and their autograd nodes)."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                self.step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        ours = sum(e.self_cpu_time_total for e in events if e.key.startswith("vtrack::") or "_vtrack_" in e.key)
        return ours / total if total > 0 else 0.0

    def peak_mb(self) -> float | None:
        """Peak memory of one step in MiB (None on CPU without vtrack.bench.common)."""
        fn = _peak_fn()
        if fn is not None:
            return fn(self.step, device=self.device) / 2**20
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            self.step()
            torch.cuda.synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
        return None

    def result(self, cfg: dict[str, Any], backend: str | None, batch_size: int, times: list[float], peak: float | None,
               name: str, clock: str = "wall") -> TrainStepResult:
        """The benchmark row of these step times (measured by the clock named ``clock``)."""
        med = statistics.median(times)
        return TrainStepResult(
            config=name or cfg["model"]["name"], family=cfg["model"]["name"], backend=backend or "-", device=str(self.device),
            amp=str(self.amp_name) if self.amp_dtype is not None else "off", batch_size=batch_size, steps=len(times),
            ms_per_step=1000 * med, min_ms=1000 * min(times), samples_per_s=batch_size / med, peak_mem_mb=peak,
            clock=clock,
        )


def _check_counts(steps: int, warmup: int) -> None:
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps/warmup: expected steps >= 1 and warmup >= 0, got {steps}, {warmup}")


def _clock_fn(clock: str, device: torch.device) -> Callable[[], float]:
    """The timer of the clock named ``clock``; the CPU clock times the host process, so CPU devices only."""
    from vtrack.bench.common import get_clock

    fn = get_clock(clock)
    if clock == "cpu" and device.type != "cpu":
        raise ValueError(f"clock: 'cpu' times this process's CPU work, not a {device.type} device; use 'wall' there")
    return fn


def _interleaved_times(runners: dict[Any, _StepRunner], steps: int, warmup: int,
                       clock: Callable[[], float]) -> dict[Any, list[float]]:
    """``warmup`` untimed rounds, then ``steps`` timed rounds of one step of every runner in turn."""
    for _ in range(warmup):
        for runner in runners.values():
            runner.step()
    times: dict[Any, list[float]] = {b: [] for b in runners}
    for _ in range(steps):
        for b, runner in runners.items():
            times[b].append(runner.timed_step(clock))
    return times


def bench_train_step(
    cfg: dict[str, Any],
    *,
    backend: str | None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    steps: int = 10,
    warmup: int = 3,
    amp: str | None = None,
    batch: dict[str, Any] | None = None,
    name: str = "",
    measure_memory: bool = True,
    clock: str = "wall",
) -> TrainStepResult:
    """Time ``steps`` training steps (after ``warmup``) of the config's model with kernel ``backend``.

    Args:
        cfg: full config (``model`` section required; ``train`` gives lr, grad_clip and amp).
        backend: kernel backend set through ``model.set_backend``; None keeps the model's own kernels
            (reported as ``"-"``; for families without switchable attention).
        device: torch device.
        batch_size, steps, warmup: batch size, timed steps, untimed steps.
        amp: ``"off"``, ``"bf16"``, ``"fp16"`` or ``"auto"`` (default: the config's ``train.amp``).
        batch: a batch from :func:`make_batch` (built when None).
        name: label of the config in the result.
        measure_memory: also run one step under the peak-memory counter.
        clock: ``"wall"`` or ``"cpu"`` (process CPU time; CPU devices only), see :data:`vtrack.bench.common.CLOCKS`.
    """
    _check_counts(steps, warmup)
    timer = _clock_fn(clock, torch.device(device))
    runner = _StepRunner(cfg, backend, torch.device(device), batch_size, amp, batch)
    for _ in range(warmup):
        runner.step()
    times = [runner.timed_step(timer) for _ in range(steps)]
    peak = runner.peak_mb() if measure_memory else None
    return runner.result(cfg, backend, batch_size, times, peak, name, clock)


def _default_backends(device: torch.device) -> list[str]:
    try:
        from vtrack.bench.trackers import fused_backends

        return ["reference"] + fused_backends(device)
    except Exception as err:  # kernels not importable: compare nothing but the reference
        log.warning("fused backends unavailable (%s): benchmarking the reference backend only", err)
        return ["reference"]


def _switchable(cfg: dict) -> bool:
    """Whether the config's model can switch kernel backends (``set_backend``)."""
    from vtrack.models.layers.backend import SupportsBackend
    from vtrack.models.registry import get_family

    return isinstance(get_family(cfg["model"]["name"]).build_model(cfg["model"]), SupportsBackend)


def run_benchmark(
    config: str | os.PathLike = DEFAULT_CONFIG,
    *,
    backends: Iterable[str] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    steps: int = 10,
    warmup: int = 3,
    amp: str | None = None,
    overrides: list[str] | None = None,
    interleave: bool = False,
    clock: str = "wall",
    breakdown: bool = False,
) -> list[TrainStepResult]:
    """Benchmark one config with every backend (default: reference + the fused ones on ``device``), same batch.

    ``interleave=True`` alternates the backends' steps (one model each) instead of running them one
    after the other; by the wall clock on an oversubscribed CPU this showed large artefacts (the
    extension's OpenMP pool and PyTorch's competing), so it is off by default. ``clock="cpu"`` times
    the process's CPU time instead (CPU devices; with one thread and ``interleave`` the steady
    measure on a busy machine).
    """
    from vtrack.config import load_config

    cfg = load_config(config, overrides)
    if "model" not in cfg or "name" not in (cfg["model"] or {}):
        raise ValueError(f"config: {config} has no model.name")
    dev = torch.device(device)
    timer = _clock_fn(clock, dev)
    names: list[str | None] = list(backends) if backends is not None else _default_backends(dev)
    if not _switchable(cfg):
        if backends is not None:
            raise ValueError(f"backends: the {cfg['model']['name']} model has no kernel backends to switch (no "
                             f"fused attention), got {list(backends)}; leave them out to time it as built")
        names = [None]  # e.g. DuML (no fused attention): time it once as built
    _check_counts(steps, warmup)
    batch = make_batch(cfg, batch_size)
    name = Path(config).stem
    if breakdown and not interleave:
        raise ValueError("breakdown: needs interleave=True (--interleave)")
    if not interleave:
        rows = []
        for b in names:
            log.info("benchmarking %s, backend %s, batch %d on %s", config, b, batch_size, dev)
            rows.append(bench_train_step(copy.deepcopy(cfg), backend=b, device=dev, batch_size=batch_size, steps=steps,
                                         warmup=warmup, amp=amp, batch=batch, name=name, clock=clock))
        return rows
    runners = {b: _StepRunner(copy.deepcopy(cfg), b, dev, batch_size, amp, batch) for b in names}
    log.info("benchmarking %s with backends %s, batch %d on %s (steps interleaved, %s clock)", config, names,
             batch_size, dev, clock)
    times = _interleaved_times(runners, steps, warmup, timer)
    rows = [r.result(cfg, b, batch_size, times[b], r.peak_mb(), name, clock) for b, r in runners.items()]
    if breakdown:
        for row, runner in zip(rows, runners.values()):
            row.kernel_share = runner.kernel_share()
    return rows


def run_cases(
    cases: Iterable[Any],
    *,
    backends: Iterable[str] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    steps: int = 10,
    warmup: int = 3,
    amp: str | None = None,
    measure_memory: bool = True,
    progress: bool = True,
) -> list[TrainStepResult]:
    """Training-step benchmark of every tracker case (:class:`vtrack.bench.trackers.TrackerCase`).

    Each case's first variant is used (e.g. CE on); every backend in ``backends`` (default reference +
    the fused ones on ``device``; never the Triton interpreter on CPU) runs on the same batch, steps
    interleaved as in :func:`run_benchmark`; a model without ``set_backend`` runs once with its own
    kernels (backend ``"-"``). A case that fails (e.g. out of memory) is logged and skipped.
    """
    from tqdm import tqdm

    from vtrack.bench.trackers import case_variants
    from vtrack.config import load_config

    _check_counts(steps, warmup)
    dev = torch.device(device)
    names = list(backends) if backends is not None else _default_backends(dev)
    if dev.type == "cpu":
        names = [b for b in names if b != "triton"]
    rows: list[TrainStepResult] = []
    for case in tqdm(list(cases), desc="bench train", unit="config", disable=not progress):
        first = next(iter(case_variants(case).values()))
        cfg = load_config(case.config, [*case.overrides, *first])
        switchable = _switchable(cfg)
        try:
            batch = make_batch(cfg, batch_size)
            runners = {b: _StepRunner(copy.deepcopy(cfg), b, dev, batch_size, amp, batch)
                       for b in (names if switchable else [None])}
            times = _interleaved_times(runners, steps, warmup, time.perf_counter)
            rows += [r.result(cfg, b, batch_size, times[b], r.peak_mb() if measure_memory else None,
                              Path(case.config).stem) for b, r in runners.items()]
        except (RuntimeError, NotImplementedError) as err:
            log.warning("train step %s failed: %s", case.config, err)
    return rows


def format_table(rows: list[TrainStepResult]) -> str:
    """Markdown table of the results (speed-up relative to the reference backend; ``CPU ms/step`` where
    the steps were timed by the CPU clock)."""
    ref = {(r.config, r.device): r.ms_per_step for r in rows if r.backend == "reference"}
    ms = "CPU ms/step" if any(r.clock == "cpu" for r in rows) else "ms/step"
    shares = any(r.kernel_share is not None for r in rows)
    extra = " kernel share | bound |" if shares else ""
    lines = [f"| config | backend | device | amp | batch | {ms} | samples/s | peak MB | speed-up |{extra}",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if shares else "")]
    for r in rows:
        base = ref.get((r.config, r.device))
        sp = f"{base / r.ms_per_step:.2f}x" if base else "-"
        mem = f"{r.peak_mem_mb:.1f}" if r.peak_mem_mb is not None else "-"
        line = (f"| {r.config} | {r.backend} | {r.device} | {r.amp} | {r.batch_size} | {r.ms_per_step:.1f} | "
                f"{r.samples_per_s:.1f} | {mem} | {sp} |")
        if shares:
            line += _share_cells(r, base)
        lines.append(line)
    return "\n".join(lines)


def _share_cells(r: TrainStepResult, base: float | None) -> str:
    """``kernel share`` and ``bound`` cells: the bound is the speed-up over the reference if vtrack's
    kernels took no time at all (Amdahl), reference ms / (ms x (1 - share))."""
    if r.kernel_share is None or r.backend == "reference":
        return " - | - |"
    bound = f"{base / (r.ms_per_step * (1 - r.kernel_share)):.2f}x" if base and r.kernel_share < 1 else "-"
    return f" {100 * r.kernel_share:.1f} % | {bound} |"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vtrack bench train``."""
    from vtrack.bench.common import CLOCKS

    parser.add_argument("--config", default=DEFAULT_CONFIG, help="tracker config (YAML)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="kernel backends (default: reference + every fused backend available)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=["off", "auto", "bf16", "fp16"], default=None,
                        help="mixed precision (default: the config's train.amp)")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON (and .md next to it)")
    parser.add_argument("--interleave", action="store_true", help="alternate the backends' steps")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="time steps by the wall clock (default) or by this process's CPU time (CPU devices; "
                             "steady where other processes take the cores; OMP_NUM_THREADS=1 with --interleave)")
    parser.add_argument("--breakdown", action="store_true",
                        help="with --interleave: profile 3 more steps per backend; report the share of vtrack's "
                             "kernels in the step and the speed-up bound if they took no time (Amdahl)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; prints a markdown table."""
    rows = run_benchmark(args.config, backends=args.backends, device=args.device, batch_size=args.batch_size,
                         steps=args.steps, warmup=args.warmup, amp=args.amp, overrides=args.overrides,
                         interleave=args.interleave, clock=args.clock, breakdown=args.breakdown)
    table = format_table(rows)
    print(table)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps([asdict(r) for r in rows], indent=2))
        atomic_write_text(args.out.with_suffix(".md"), table + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python benchmarks/train.py``)."""
    parser = argparse.ArgumentParser(prog="benchmarks/train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_from_args(args)
