"""Tracker speed benchmark.

``vtrack bench trackers`` benchmarks every registered tracker family generically, through the
registry and the family contract (``family.build_model`` / ``family.build_tracker``): the cases
(a config, config overrides, and variants such as CE on/off given as config overrides) come from
``benchmarks/trackers.yaml`` (one list per device type), completed with a tiny config of every
registered family the list misses. Per case x variant x kernel backend (``model.set_backend``;
reference + every fused backend that runs on the device) it measures:

* FPS at batch 1 through the whole tracking step (crop, normalise, model, window, decode, map back,
  online updates): ``fps`` = frames / total wall time (every frame counts, also a tracker's
  occasional online optimisation, e.g. DuML's), ``fps_median`` = 1 / median wall time per frame,
  and ``fps_cpu`` = frames / total CPU time of the tracking thread (``time.thread_time``: on a
  machine shared with other jobs it is the step's own cost, where wall time also counts the time
  the thread waits for a core), under autocast when ``--amp`` is given (default fp16 on CUDA);
* the model forward (template + search, the family's training-batch layout) at batch 1, replayed
  from a CUDA graph on CUDA (eager where capture fails);
* throughput of the model forward at batch 32 (``--batch``);
* GMACs of the batch-1 forward with ``torch.utils.flop_counter.FlopCounterMode`` on the reference
  backend (fused custom ops have no FLOP formula and would count zero).

The per-config API (:func:`bench_tracker`, :func:`format_table`) serves ``vtrack demo``. Weights are random: speed does not depend on them (CE keeps a fixed
number of tokens whatever their scores).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from vtrack.configs import CONFIG_DIR

log = logging.getLogger(__name__)


@dataclass
class TrackerSpeed:
    """One benchmark row (``variant``: a name from ``family.variants()``, ``"-"`` = as configured)."""

    config: str
    family: str
    backend: str
    variant: str
    device: str
    frames: int
    fps: float
    ms_per_frame: float


def _synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """A target square drifting over noise: frames and boxes (only the speed matters here)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    frames, boxes = [], []
    for t in range(n):
        img = np.roll(base, t, axis=1).copy()
        x, y = width * 0.3 + 2 * t, height * 0.4 + t
        img[int(y):int(y) + 48, int(x):int(x) + 40] = (230, 30, 30)
        frames.append(img)
        boxes.append((x, y, 40.0, 48.0))
    return frames, np.asarray(boxes)


def fused_backends(device: torch.device | str = "cpu") -> list[str]:
    """Registered non-reference kernel backends that can run attention inputs on ``device``."""
    import vtrack.kernels as kernels

    dev = torch.device(device)
    q = torch.zeros(1, 2, 8, 16, device=dev)
    inputs = kernels.build_inputs(q, q, q, ce={"num_template": 4, "keep": 2})
    return [b for b in kernels.available_backends(inputs) if b != "reference"]


def bench_tracker(
    cfg: dict[str, Any],
    *,
    backend: str | None,
    variant: str | None = None,
    device: torch.device | str = "cpu",
    frames: int = 30,
    warmup: int = 3,
    image_size: tuple[int, int] = (360, 480),
    model: torch.nn.Module | None = None,
    name: str = "",
) -> TrackerSpeed:
    """Time ``frames`` tracking steps (after ``warmup`` untimed ones) of the config's tracker.

    Args:
        cfg: config mapping with ``model`` (and optionally ``tracker``) sections.
        backend: kernel backend for every attention layer (``model.set_backend``; a model without
            switchable kernels keeps its own); None: the kernels the config sets (row backend ``"-"``).
        variant: a name of ``family.variants()`` whose config overrides are applied; None: as configured.
        device: torch device.
        frames, warmup: timed and untimed frames.
        image_size: (height, width) of the synthetic frames.
        model: weights to use (a model of this config); random weights when None.
        name: label of the config in the result.
    """
    from vtrack.config import apply_overrides, override_strings
    from vtrack.models import get_family
    from vtrack.models.layers.backend import SupportsBackend

    if frames < 1 or warmup < 0:
        raise ValueError(f"frames/warmup: expected frames >= 1 and warmup >= 0, got {frames}, {warmup}")
    dev = torch.device(device)
    fam = get_family(cfg["model"]["name"])
    variants = fam.variants()
    if variant is not None and variant not in variants:
        raise ValueError(f"variant: expected one of {sorted(variants)} (family {fam.name!r}), got {variant!r}")
    vcfg = apply_overrides(dict(cfg), override_strings(variants[variant]) if variant else [])
    built = fam.build_model(vcfg["model"])  # the variant's model; a variant changes no parameter
    if model is not None:
        built.load_state_dict(model.state_dict())
    if backend is not None and isinstance(built, SupportsBackend):
        built.set_backend(backend)
    tracker = fam.build_tracker(built, vcfg, dev)
    imgs, boxes = _synthetic_frames(frames + warmup + 1, *image_size)
    tracker.initialize(imgs[0], boxes[0])
    for img in imgs[1:warmup + 1]:
        tracker.track(img)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for img in imgs[warmup + 1:]:
        tracker.track(img)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    dt = time.perf_counter() - t0
    return TrackerSpeed(
        config=name or cfg["model"]["name"], family=cfg["model"]["name"], backend=backend or "-", variant=variant or "-",
        device=str(dev), frames=frames, fps=frames / dt, ms_per_frame=1000.0 * dt / frames,
    )


def _common_prefix(names: list[str]) -> str:
    """Words the variant names share at the front ("CE on", "CE off" -> "CE")."""
    words = [n.split() for n in names]
    common = []
    for group in zip(*words):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return " ".join(common)


def format_table(rows: list[TrackerSpeed]) -> str:
    """Markdown table: one line per config x backend, the FPS of every variant and, with two or more
    variants, the speed-up of the first over the second (e.g. "CE speed-up" for CE on / CE off)."""
    variants = list(dict.fromkeys(r.variant for r in rows))
    named = [v for v in variants if v != "-"]
    heads = ["config", "device", "backend", *(f"FPS {v}" if v != "-" else "FPS" for v in variants)]
    ratio = named[:2] if len(named) >= 2 else []
    if ratio:
        heads.append(f"{_common_prefix(ratio)} speed-up".strip())
    lines = ["| " + " | ".join(heads) + " |", "| --- | --- | --- |" + " ---: |" * (len(heads) - 3)]
    groups: dict[tuple[str, str, str], dict[str, TrackerSpeed]] = {}
    for r in rows:
        groups.setdefault((r.config, r.device, r.backend), {})[r.variant] = r
    for (config, device, backend), by_variant in groups.items():
        cells = [f"{by_variant[v].fps:.1f}" if v in by_variant else "-" for v in variants]
        if ratio:
            a, b = (by_variant.get(v) for v in ratio)
            cells.append(f"{a.fps / b.fps:.2f}x" if a and b else "-")
        lines.append(f"| {config} | {device} | {backend} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Generic suite: every registered family through the family contract, cases from a YAML spec.
# --------------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES_FILE = REPO_ROOT / "benchmarks" / "trackers.yaml"
AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class TrackerCase:
    """One tracker configuration of the suite.

    Attributes:
        config: YAML config path.
        overrides: ``key=value`` config overrides applied to every variant.
        variants: variant name -> extra overrides (each measured as its own row); empty: one row.
        note: free text copied into the table.
        zoo: the model-zoo tracker whose verified weights are loaded into the model; "": random weights.
        name: label of the case (default: the config file stem).
    """

    config: str
    overrides: tuple[str, ...] = ()
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    zoo: str = ""
    name: str = ""

    @property
    def label(self) -> str:
        """The case's name, else the config file stem."""
        return self.name or Path(self.config).stem


@dataclass
class TrackerSuiteRow:
    """One row of the generic tracker benchmark (times in ms; None where not measured)."""

    config: str
    family: str
    variant: str
    backend: str
    device: str
    amp: str
    frames: int
    fps: float | None = None
    ms_per_frame: float | None = None
    fps_median: float | None = None
    fps_cpu: float | None = None
    model_ms_b1: float | None = None
    cuda_graph: bool = False
    throughput_batch: int = 0
    throughput_pairs_per_s: float | None = None
    gmacs_b1: float | None = None
    params_m: float | None = None
    note: str = ""


def case_variants(case: TrackerCase) -> dict[str, tuple[str, ...]]:
    """The case's variants: those of the spec, else the family's declared ones
    (``family.variants()`` as ``key=value`` overrides), else one ``"-"`` (as configured)."""
    if case.variants:
        return dict(case.variants)
    from vtrack.config import load_config, override_strings
    from vtrack.models import get_family

    cfg = load_config(case.config, list(case.overrides))
    declared = get_family(cfg["model"]["name"]).variants()
    return {name: tuple(override_strings(o)) for name, o in declared.items()} or {"-": ()}


def _seq(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: expected a list of 'key=value' strings, got {value!r}")
    return tuple(value)


def load_cases(path: str | os.PathLike[str] | None = None, device: str = "cpu") -> list[TrackerCase]:
    """Cases of ``device`` (``cpu`` or ``cuda``) from the YAML spec (default ``benchmarks/trackers.yaml``)."""
    from vtrack.config import load_yaml

    p = Path(path) if path is not None else CASES_FILE
    if not p.is_file():
        raise FileNotFoundError(f"cases: no such file: {p}")
    data = load_yaml(p)
    items = data.get(device, [])
    if not isinstance(items, list):
        raise ValueError(f"cases: {p}: {device!r} must be a list, got {type(items).__name__}")
    cases = []
    for i, item in enumerate(items):
        where = f"{p.name}:{device}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("config"), str):
            raise ValueError(f"cases: {where}: expected a mapping with a 'config' path, got {item!r}")
        unknown = set(item) - {"config", "overrides", "variants", "note"}
        if unknown:
            raise ValueError(f"cases: {where}: unknown keys {sorted(unknown)}")
        variants = item.get("variants") or {}
        if not isinstance(variants, dict):
            raise ValueError(f"cases: {where}.variants: expected a mapping name -> overrides, got {variants!r}")
        config = item["config"]
        if not Path(config).is_file() and (REPO_ROOT / config).is_file():  # paths are relative to the checkout
            config = str(REPO_ROOT / config)
        cases.append(TrackerCase(config, _seq(item.get("overrides"), f"{where}.overrides"),
                                 {str(k): _seq(v, f"{where}.variants.{k}") for k, v in variants.items()},
                                 str(item.get("note") or "")))
    return cases


def discover_configs(root: str | os.PathLike[str] = CONFIG_DIR, pattern: str = "*_tiny.yaml") -> dict[str, str]:
    """First config matching ``pattern`` under ``root`` per registered family (by its ``model.name``)."""
    from vtrack.config import load_yaml
    from vtrack.models import list_families

    families = set(list_families())
    found: dict[str, str] = {}
    for path in sorted(Path(root).glob(f"*/{pattern}")):
        try:
            name = (load_yaml(path).get("model") or {}).get("name")
        except (OSError, ValueError):
            continue
        if name in families and name not in found:
            found[name] = str(path)
    return found


def complete_cases(cases: list[TrackerCase], config_root: str | os.PathLike[str] = CONFIG_DIR) -> list[TrackerCase]:
    """``cases`` plus one case for every registered family the list does not cover (its tiny config)."""
    from vtrack.config import load_yaml

    covered = {(load_yaml(c.config).get("model") or {}).get("name") for c in cases}
    extra = [TrackerCase(path, note="auto-discovered config") for fam, path in discover_configs(config_root).items()
             if fam not in covered]
    return list(cases) + extra


def _tile(batch: dict[str, Any], n: int) -> dict[str, Any]:
    """Repeat every tensor (and list) of a collated batch along the batch dimension to ``n`` samples."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            reps = -(-n // v.shape[0])
            out[k] = v.repeat(reps, *([1] * (v.dim() - 1)))[:n].contiguous()
        elif isinstance(v, list):
            out[k] = (v * (-(-n // max(1, len(v)))))[:n]
        else:
            out[k] = v
    return out


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> Any:
    import contextlib

    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


def model_forward_ms(model: torch.nn.Module, batch: dict[str, Any], device: torch.device, *, warmup: int = 2,
                     repeat: int = 5, amp_dtype: torch.dtype | None = None,
                     cuda_graph: bool = False) -> tuple[float, bool]:
    """Median ms of ``model(batch)`` under no_grad; on CUDA optionally replayed from a CUDA graph.

    Returns (ms, graph_used). A model whose forward cannot be captured (data-dependent host sync,
    unsupported op) falls back to eager timing, logged.
    """
    from vtrack.bench.common import time_fn

    def fwd() -> Any:
        with torch.no_grad(), _autocast(device, amp_dtype):
            return model(batch)

    if cuda_graph and device.type == "cuda":
        try:
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    fwd()
            torch.cuda.current_stream(device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fwd()
            t = time_fn(graph.replay, device=device, warmup=warmup, repeat=repeat)
            return t.median_ms, True
        except (RuntimeError, NotImplementedError) as err:
            log.warning("CUDA graph capture failed (%s); timing eagerly", str(err).splitlines()[0][:160])
            torch.cuda.synchronize(device)
    t = time_fn(fwd, device=device, warmup=warmup, repeat=repeat)
    return t.median_ms, False


def model_gmacs(model: torch.nn.Module, batch: dict[str, Any]) -> float | None:
    """GMACs of one ``model(batch)`` counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2).

    Only ops with a registered FLOP formula count (matmul, conv, SDPA...): custom fused ops such as
    vtrack's ``cpp``/``triton`` kernels count zero, so call this with the reference backend.
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(batch)
    except (RuntimeError, NotImplementedError, TypeError) as err:
        log.warning("FLOP counting failed: %s", err)
        return None
    return counter.get_total_flops() / 2e9


def _time_tracking(tracker: Any, frames: int, warmup: int, image_size: tuple[int, int], device: torch.device,
                   amp_dtype: torch.dtype | None) -> tuple[list[float], list[float]]:
    """Wall and thread-CPU seconds of each of ``frames`` tracking steps after ``warmup`` untimed ones
    (CUDA synchronised)."""
    imgs, boxes = _synthetic_frames(frames + warmup + 1, *image_size)
    times, cpu = [], []
    with _autocast(device, amp_dtype):
        tracker.initialize(imgs[0], boxes[0])
        for img in imgs[1:warmup + 1]:
            tracker.track(img)
        for img in imgs[warmup + 1:]:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0, c0 = time.perf_counter(), time.thread_time()
            tracker.track(img)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return times, cpu


def _set_fps(row: "TrackerSuiteRow", wall: list[float], cpu: list[float]) -> None:
    """Fill the FPS fields of ``row`` from per-frame wall and CPU seconds (see the module docstring)."""
    total = float(np.sum(wall))
    row.fps, row.ms_per_frame = len(wall) / total, 1e3 * total / len(wall)
    row.fps_median = 1.0 / float(np.median(wall))
    row.fps_cpu = len(cpu) / float(np.sum(cpu)) if float(np.sum(cpu)) > 0 else None


def kernel_backends(device: torch.device | str) -> list[str]:
    """``reference`` plus every fused backend that runs (not interpreted) on ``device``."""
    dev = torch.device(device)
    names = fused_backends(dev)
    if dev.type == "cpu":  # Triton on CPU is its interpreter: timing it is meaningless
        names = [b for b in names if b != "triton"]
    return ["reference", *names]


def bench_case(case: TrackerCase, *, backends: Iterable[str] | None = None, device: torch.device | str = "cpu",
               frames: int = 30, warmup: int = 3, image_size: tuple[int, int] = (360, 480), throughput_batch: int = 32,
               repeat: int = 5, amp: str = "off", cuda_graph: bool = True, macs: bool = True,
               runtimes: Iterable[str] = ("pytorch",)) -> list[TrackerSuiteRow]:
    """Measure one case: per variant x backend, tracking FPS at batch 1 through ``family.build_tracker``,
    the model forward at batch 1 (CUDA graph on CUDA), throughput of the model forward at
    ``throughput_batch`` (0 skips it) and GMACs (reference backend).

    ``runtimes``: ``"pytorch"`` gives the rows above; ``"onnxruntime"`` adds a row (backend
    ``onnxruntime``) with the tracking FPS of the same tracker whose network runs on onnxruntime
    (:func:`vtrack.deploy.use_onnxruntime`, exported on first use into the cache; as many
    onnxruntime threads as torch threads)."""
    from vtrack.bench.train import make_batch
    from vtrack.config import load_config as load_with_overrides
    from vtrack.models import get_family
    from vtrack.models.layers.backend import SupportsBackend

    if frames < 1 or warmup < 0 or repeat < 1 or throughput_batch < 0:
        raise ValueError(f"frames/warmup/repeat/throughput_batch: expected >= 1/0/1/0, got "
                         f"{frames}/{warmup}/{repeat}/{throughput_batch}")
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp: expected one of {sorted(AMP_DTYPES)}, got {amp!r}")
    dev = torch.device(device)
    amp_dtype = AMP_DTYPES[amp]
    from vtrack.tracking.loader import RUNTIMES

    runtimes = list(runtimes)
    if not runtimes or any(r not in RUNTIMES for r in runtimes):
        raise ValueError(f"runtimes: expected a non-empty list of {RUNTIMES}, got {runtimes}")
    names = list(backends) if backends is not None else kernel_backends(dev)
    if "pytorch" not in runtimes:
        names = []
    rows: list[TrackerSuiteRow] = []
    for variant, extra in case_variants(case).items():
        cfg = load_with_overrides(case.config, [*case.overrides, *extra])
        family_name = cfg["model"]["name"]
        fam = get_family(family_name)
        torch.manual_seed(0)
        model = fam.build_model(cfg["model"])
        if case.zoo:
            from vtrack import zoo

            zoo.load_entry_weights(model, zoo.get_entry(case.zoo))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        switchable = isinstance(model, SupportsBackend)
        batch1 = make_batch(cfg, 1)
        gmacs = None
        for backend in (names if switchable else ["-"]):
            note = case.note if switchable else "; ".join(
                x for x in ("model has no switchable attention kernels", case.note) if x)
            if switchable:
                model.set_backend(backend)
            tracker = fam.build_tracker(model, cfg, dev)  # moves the model to the device, eval mode
            model.eval()
            row = TrackerSuiteRow(case.label, family_name, variant, backend, str(dev), amp, frames,
                                  params_m=params, note=note, throughput_batch=throughput_batch)
            try:
                _set_fps(row, *_time_tracking(tracker, frames, warmup, image_size, dev, amp_dtype))
                from vtrack.train.trainer import _to_device

                b1 = _to_device(batch1, dev)
                row.model_ms_b1, row.cuda_graph = model_forward_ms(model, b1, dev, warmup=warmup, repeat=repeat,
                                                                   amp_dtype=amp_dtype, cuda_graph=cuda_graph)
                if macs and gmacs is None and backend in ("reference", "-"):
                    gmacs = model_gmacs(model, b1)
                if throughput_batch:
                    bn = _to_device(_tile(batch1, throughput_batch), dev)
                    ms, _ = model_forward_ms(model, bn, dev, warmup=1, repeat=max(1, repeat // 2), amp_dtype=amp_dtype)
                    row.throughput_pairs_per_s = throughput_batch * 1e3 / ms
            except (RuntimeError, NotImplementedError, ValueError) as err:  # e.g. out of memory
                row.note = "; ".join(x for x in (row.note, f"failed: {type(err).__name__}: "
                                                 f"{str(err).splitlines()[0][:120]}") if x)
                log.warning("%s %s %s failed: %s", case.label, variant, backend, err)
            rows.append(row)
            log.info("%s %s %s: %s fps", case.label, variant, backend, row.fps)
        for r in rows:
            if r.config == case.label and r.variant == variant:
                r.gmacs_b1 = gmacs
        if "onnxruntime" in runtimes:
            rows.append(_bench_onnxruntime(case, fam, model, cfg, variant, dev, frames, warmup, image_size, params))
    return rows


def _bench_onnxruntime(case: TrackerCase, fam: Any, model: torch.nn.Module, cfg: dict[str, Any], variant: str,
                       dev: torch.device, frames: int, warmup: int, image_size: tuple[int, int],
                       params: float) -> TrackerSuiteRow:
    """Tracking FPS of ``model``'s tracker with its network on onnxruntime (CPU)."""
    from vtrack.deploy import use_onnxruntime

    row = TrackerSuiteRow(case.label, cfg["model"]["name"], variant, "onnxruntime", "cpu", "off", frames,
                          params_m=params, note="; ".join(x for x in ("onnxruntime", case.note) if x),
                          throughput_batch=0)
    if dev.type != "cpu":
        row.note += "; skipped: onnxruntime runs on the CPU"
        return row
    try:
        tracker = use_onnxruntime(fam.build_tracker(model, cfg, dev), cfg)
        model.eval()
        _set_fps(row, *_time_tracking(tracker, frames, warmup, image_size, dev, None))
    except (RuntimeError, ValueError) as err:
        row.note += f"; failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
        log.warning("%s %s onnxruntime failed: %s", case.label, variant, err)
    log.info("%s %s onnxruntime: %s fps", case.label, variant, row.fps)
    return row


def run_cases(cases: Iterable[TrackerCase], *, progress: bool = True, **kwargs: Any) -> list[TrackerSuiteRow]:
    """:func:`bench_case` over ``cases`` (keyword arguments passed on)."""
    from tqdm import tqdm

    rows: list[TrackerSuiteRow] = []
    for case in tqdm(list(cases), desc="bench trackers", unit="config", disable=not progress):
        rows.extend(bench_case(case, **kwargs))
    return rows


SUITE_COLUMNS = ["config", "family", "variant", "backend", "fps", "ms_per_frame", "fps_median", "fps_cpu",
                 "model_ms_b1", "cuda_graph",
                 "throughput_pairs_per_s", "gmacs_b1", "params_m", "note"]


def format_suite_table(rows: list[TrackerSuiteRow]) -> str:
    """Markdown table of :func:`run_cases` rows (speed-up of each backend over the reference in FPS)."""
    from vtrack.bench.common import markdown_table

    ref = {(r.config, r.variant): r.fps for r in rows if r.backend == "reference" and r.fps}
    table = []
    for r in rows:
        d = asdict(r)
        base = ref.get((r.config, r.variant))
        d["speedup"] = f"{r.fps / base:.2f}x" if base and r.fps and r.backend != "reference" else "-"
        d["cuda_graph"] = "yes" if r.cuda_graph else "-"
        table.append(d)
    batch = max((r.throughput_batch for r in rows), default=0)
    cols = SUITE_COLUMNS[:5] + ["speedup"] + SUITE_COLUMNS[5:]
    heads = ["config", "family", "variant", "backend", "FPS (b=1, tracking step)", "FPS vs reference",
             "ms/frame", "FPS (median frame)", "FPS (thread CPU time)", "model fwd ms (b=1)", "CUDA graph", f"pairs/s (b={batch})", "GMACs (b=1)", "params (M)",
             "note"]
    return markdown_table(table, cols, heads)



def write_suite_results(rows: list[TrackerSuiteRow], out_dir: str | os.PathLike[str],
                        env: dict[str, Any] | None = None, args: dict[str, Any] | None = None) -> Path:
    """Write ``trackers.json`` (environment + rows), ``trackers.md`` and ``trackers_fps.png`` under ``out_dir``."""
    from vtrack.bench.common import environment, plot_bars, write_json
    from vtrack.io import atomic_write_text

    out = Path(out_dir)
    device = torch.device(rows[0].device) if rows else torch.device("cpu")
    env = env or environment(device)
    write_json(out / "trackers.json", {"environment": env, "arguments": args or {}, "rows": [asdict(r) for r in rows]})
    groups = list(dict.fromkeys(f"{r.config}" + ("" if r.variant == "-" else f" {r.variant}") for r in rows))
    series: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.fps is not None:
            label = r.backend if r.backend != "-" else "model's own kernels"
            series.setdefault(label, {})[f"{r.config}" + ("" if r.variant == "-" else f" {r.variant}")] = r.fps
    md = [f"# Tracker speed ({env.get('device_name')}, {env.get('device')})\n",
          f"torch {env.get('torch')}, commit `{str(env.get('git_commit'))[:12]}`, {env.get('time_utc')}, "
          f"{env.get('tracker_threads', env.get('cpu_threads'))} CPU thread(s). Weights: a zoo tracker's own "
          "(note 'zoo'), else random. FPS: whole "
          "tracking step at batch 1 (crop, normalise, model, post-processing, online updates) on synthetic 480x360 "
          "frames: frames / total wall time; also 1 / median wall time per frame, and frames / total CPU time of the "
          "tracking thread (the step's own cost when other jobs share the machine; load average "
          f"{env.get('load_avg_1m')}). "
          "Model forward: template+search (the family's training batch layout) under no_grad. GMACs: "
          "FlopCounterMode on the reference-backend forward (custom fused ops report no FLOPs, so they are "
          "counted on the reference path).\n", format_suite_table(rows)]
    if groups and series:
        plot_bars(groups, {b: [v.get(g, math.nan) for g in groups] for b, v in series.items()},
                  out / "trackers_fps.png", ylabel="frames per second (batch 1)", baseline=None,
                  title=f"tracker FPS ({env.get('device_name')})")
        md.append("\n![tracker FPS](trackers_fps.png)\n")
    return atomic_write_text(out / "trackers.md", "\n".join(md))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vtrack bench trackers``."""
    parser.add_argument("--configs", nargs="+", default=None,
                        help="tracker YAML configs (default: the cases of --cases for the device, plus a tiny "
                             "config of every registered family they miss)")
    parser.add_argument("--zoo", nargs="*", default=None, metavar="NAME",
                        help="benchmark model-zoo trackers with their weights (no NAME: every zoo tracker); "
                             "zoo names are also accepted by --configs, whose cases follow the zoo's")
    parser.add_argument("--cases", default=None, help=f"YAML case list (default {CASES_FILE})")
    parser.add_argument("--override", nargs="*", default=[], metavar="key=value",
                        help="config overrides applied to every case")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="kernel backends (default: reference + every fused backend available)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames per run")
    parser.add_argument("--repeat", type=int, default=5, help="timed model forwards (median reported)")
    parser.add_argument("--batch", type=int, default=32, help="batch of the throughput measurement (0: skip)")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), default=None,
                        help="autocast dtype (default fp16 on CUDA, off on CPU)")
    parser.add_argument("--no-graph", action="store_true", help="no CUDA graph for the batch-1 model forward")
    parser.add_argument("--no-macs", action="store_true", help="skip FLOP counting")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: batch-1 tracking is latency-bound)")
    parser.add_argument("--quick", action="store_true", help="5 frames, 2 repeats, throughput batch 4")
    parser.add_argument("--runtime", nargs="+", choices=("pytorch", "onnxruntime"), default=["pytorch"],
                        help="pytorch: a row per kernel backend; onnxruntime: a row with the network on onnxruntime "
                             "(exported on first use and cached); both: compare them")
    parser.add_argument("--out", default=None, help="folder for trackers.md / trackers.json / trackers_fps.png")


def zoo_case(name: str) -> TrackerCase:
    """The case of the model-zoo tracker ``name``: its shipped config and verified weights."""
    from vtrack import zoo

    entry = zoo.get_entry(name)
    zoo.verified_weights(entry)  # a damaged file fails before any timing
    return TrackerCase(str(zoo.zoo_dir() / entry.config), note=f"zoo ({entry.family})", zoo=entry.name,
                       name=entry.name)


def suite_cases(device: torch.device | str, configs: list[str] | None = None, cases_file: str | None = None,
                overrides: Iterable[str] = (), zoo: list[str] | None = None) -> list[TrackerCase]:
    """The cases to run, each with ``overrides`` appended: ``zoo`` (names of model-zoo trackers;
    an empty list: every zoo tracker) followed by explicit ``configs`` (config paths or zoo names;
    e.g. a family whose zoo entry is still training), else the spec's cases for the device type
    (completed with every registered family)."""
    from dataclasses import replace

    from vtrack import zoo as zoo_mod

    dev = torch.device(device)
    cases: list[TrackerCase] = []
    if zoo is not None:
        names = list(zoo) or [e.name for e in zoo_mod.list_entries()]
        if not names:
            raise ValueError(f"--zoo: the zoo ({zoo_mod.zoo_dir()}) holds no trackers")
        cases = [zoo_case(n) for n in names]
    if configs:
        cases += [zoo_case(c) if zoo_mod.is_zoo_name(c) else TrackerCase(c) for c in configs]
    if zoo is None and not configs:
        cases = complete_cases(load_cases(cases_file, dev.type))
    extra = tuple(overrides)
    return [replace(c, overrides=c.overrides + extra) for c in cases]


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; prints the table."""
    if args.threads < 1:
        raise ValueError(f"--threads: expected a positive int, got {args.threads}")
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda requested but torch.cuda.is_available() is False")
    cases = suite_cases(dev, args.configs, args.cases, args.override, args.zoo)
    frames, repeat, batch = (min(args.frames, 5), 2, min(args.batch, 4)) if args.quick else (
        args.frames, args.repeat, args.batch)
    amp = args.amp or ("fp16" if dev.type == "cuda" else "off")
    from vtrack.bench.common import environment

    env = environment(dev)
    print(f"{env['device_name']} ({dev}), {torch.get_num_threads()} torch thread(s), torch {env['torch']}, "
          f"commit {str(env['git_commit'])[:12]}, load average {env['load_avg_1m']} on {env['cpu_count']} CPUs")
    rows = run_cases(cases, backends=args.backends, device=dev, frames=frames, warmup=args.warmup, repeat=repeat,
                     throughput_batch=batch, amp=amp, cuda_graph=not args.no_graph, macs=not args.no_macs,
                     runtimes=args.runtime)
    print(format_suite_table(rows))
    if args.out:
        print(f"written: {write_suite_results(rows, args.out, env=env, args=_args_dict(args))}")
    return 0


def _args_dict(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def main(argv: list[str] | None = None) -> int:
    """``python -m vtrack.bench.trackers``."""
    parser = argparse.ArgumentParser(prog="vtrack bench trackers", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
