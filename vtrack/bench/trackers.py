"""Tracker speed benchmark: frames per second at batch 1 through the whole tracking step
(crop, normalise, model, window, decode, map back) per config x kernel backend x CE on/off.

Used by ``vtrack bench trackers`` (see :func:`add_arguments` / :func:`run_from_args`) and by
``vtrack demo``. Weights are random: speed does not depend on them (CE keeps a fixed number of
tokens whatever their scores).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

log = logging.getLogger(__name__)

DEFAULT_CONFIGS = ("configs/ostrack/ostrack_tiny.yaml", "configs/ostrack/ostrack_256.yaml")


@dataclass
class TrackerSpeed:
    """One benchmark row."""

    config: str
    family: str
    backend: str
    ce: bool
    device: str
    frames: int
    fps: float
    ms_per_frame: float
    keep_tokens: int
    search_tokens: int


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


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config with ``model`` (and optional ``tracker``) sections."""
    from vtrack.config import load_yaml

    cfg = load_yaml(path)
    if "model" not in cfg or "name" not in cfg["model"]:
        raise ValueError(f"config: {path} has no model.name")
    return cfg


def bench_tracker(
    cfg: dict[str, Any],
    *,
    backend: str,
    ce: bool,
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
        backend: kernel backend for every attention layer.
        ce: candidate elimination on/off.
        device: torch device.
        frames, warmup: timed and untimed frames.
        image_size: (height, width) of the synthetic frames.
        model: an already built model of this config (rebuilt from ``cfg`` when None).
        name: label of the config in the result.
    """
    from vtrack.models import get_family

    if frames < 1 or warmup < 0:
        raise ValueError(f"frames/warmup: expected frames >= 1 and warmup >= 0, got {frames}, {warmup}")
    dev = torch.device(device)
    fam = get_family(cfg["model"]["name"])
    if model is None:
        model = fam.build_model(cfg["model"])
    tcfg = dict(cfg)
    tcfg["tracker"] = {**(cfg.get("tracker") or {}), "backend": backend, "ce_enabled": bool(ce)}
    tracker = fam.build_tracker(model, tcfg, dev)
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
    bb = getattr(model, "backbone", None)
    keep = int(getattr(bb, "num_search", 0))
    if ce and bb is not None and getattr(bb, "ce_layers", ()):
        for _ in bb.ce_layers:
            keep = max(1, int(np.ceil(bb.ce_keep_ratio * keep)))
    return TrackerSpeed(
        config=name or cfg["model"]["name"], family=cfg["model"]["name"], backend=backend, ce=bool(ce),
        device=str(dev), frames=frames, fps=frames / dt, ms_per_frame=1000.0 * dt / frames,
        keep_tokens=keep, search_tokens=int(getattr(bb, "num_search", 0)),
    )


def run_benchmark(
    configs: Iterable[str | os.PathLike[str]] = DEFAULT_CONFIGS,
    *,
    backends: Iterable[str] | None = None,
    ce: Iterable[bool] = (True, False),
    device: torch.device | str = "cpu",
    frames: int = 30,
    warmup: int = 3,
    progress: bool = True,
) -> list[TrackerSpeed]:
    """Benchmark every config x backend x CE setting.

    ``backends`` defaults to ``"reference"`` plus every fused backend available on ``device``.
    """
    from tqdm import tqdm

    from vtrack.models import get_family

    dev = torch.device(device)
    names = ["reference", *fused_backends(dev)] if backends is None else list(backends)
    if not names:
        raise ValueError("backends: expected at least one backend name")
    rows: list[TrackerSpeed] = []
    jobs = [(c, b, e) for c in configs for b in names for e in ce]
    models: dict[str, torch.nn.Module] = {}
    for path, backend, ce_on in tqdm(jobs, desc="bench trackers", unit="run", disable=not progress):
        cfg = load_config(path)
        key = str(path)
        if key not in models:
            torch.manual_seed(0)
            models[key] = get_family(cfg["model"]["name"]).build_model(cfg["model"])
        rows.append(bench_tracker(cfg, backend=backend, ce=ce_on, device=dev, frames=frames, warmup=warmup,
                                  model=models[key], name=Path(path).stem))
        log.info("%s %s ce=%s: %.1f fps", Path(path).stem, backend, ce_on, rows[-1].fps)
    return rows


def format_table(rows: list[TrackerSpeed]) -> str:
    """Markdown table: one line per config x backend, FPS with CE on and off and the CE speed-up."""
    lines = [
        "| config | device | backend | search tokens (kept) | FPS CE on | FPS CE off | CE speed-up |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[str, str, str], dict[bool, TrackerSpeed]] = {}
    for r in rows:
        groups.setdefault((r.config, r.device, r.backend), {})[r.ce] = r
    for (config, device, backend), by_ce in groups.items():
        on, off = by_ce.get(True), by_ce.get(False)
        tokens = f"{(on or off).search_tokens} ({on.keep_tokens})" if on else f"{(off or on).search_tokens}"
        f_on = f"{on.fps:.1f}" if on else "-"
        f_off = f"{off.fps:.1f}" if off else "-"
        speed = f"{on.fps / off.fps:.2f}x" if on and off else "-"
        lines.append(f"| {config} | {device} | {backend} | {tokens} | {f_on} | {f_off} | {speed} |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[TrackerSpeed], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``trackers.md`` and ``trackers.json`` (atomically) under ``out_dir``; returns the .md path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("trackers.md", format_table(rows)),
                       ("trackers.json", json.dumps([asdict(r) for r in rows], indent=2))):
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out / name)
    return out / "trackers.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vtrack bench trackers``."""
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="tracker YAML configs")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="kernel backends (default: reference + every fused backend available)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames per run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: batch-1 tracking is latency-bound)")
    parser.add_argument("--quick", action="store_true", help="tiny config only, 10 frames")
    parser.add_argument("--out", default=None, help="folder for trackers.md / trackers.json")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; prints the table."""
    if args.threads < 1:
        raise ValueError(f"--threads: expected a positive int, got {args.threads}")
    torch.set_num_threads(args.threads)
    configs = [DEFAULT_CONFIGS[0]] if args.quick else args.configs
    frames = min(args.frames, 10) if args.quick else args.frames
    rows = run_benchmark(configs, backends=args.backends, device=args.device, frames=frames, warmup=args.warmup)
    print(format_table(rows))
    if args.out:
        print(f"written: {write_results(rows, args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vtrack.bench.trackers``."""
    parser = argparse.ArgumentParser(prog="vtrack bench trackers", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
