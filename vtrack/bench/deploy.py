"""Deployment benchmark: ONNX export, onnxruntime vs PyTorch agreement and FPS per tracker.

``vtrack bench deploy`` measures, for each tracker (a zoo name, or a config with optional
``--checkpoint``; ``--zoo`` with no name: every zoo tracker):

* the export (:func:`vtrack.deploy.export_engine` into a fresh folder): seconds and the size of
  every branch's ONNX file;
* the agreement of the onnxruntime tracker with the PyTorch tracker over every sequence of a
  dataset split (default: the synthetic test split): the mean IoU of their boxes per frame, both
  trackers running free (the issue's measure), and "per step": from the PyTorch tracker's state at
  every frame, the onnxruntime tracker's next box (the runtimes compared without the tracking loop
  amplifying a near-tie). The PyTorch reference and cpp kernel backends are compared the same way,
  which shows how much two PyTorch runs of one model differ by float rounding alone;
* FPS of the whole tracking step (crop, normalise, network, post-processing) at batch 1 with the
  PyTorch ``reference`` backend, the PyTorch ``cpp`` backend and onnxruntime, **interleaved**: the
  trackers run in one process on the same frames, one after the other at every frame (the order
  rotating), so load from other processes hits all of them alike. Every runtime computes in the
  calling thread (one torch thread, one onnxruntime intra-op thread), so the thread's CPU time
  (``time.thread_time``) is the step's cost even on a loaded machine, where wall time mostly
  measures the scheduler. Reported: FPS = 1 / the median CPU time per frame (and the same from
  wall time), the median and range over sequences of each sequence's FPS (the repeats), the paired
  ratio (median over frames of the time ratio), and the median CPU time inside the network engine.

Each tracker's result is written to ``OUT/<name>-<key>.json`` (``<key>``: the hash of its config
and weights, so a retrained zoo tracker gets a new file and an older result is never
overwritten), and ``OUT/deploy.md`` / ``OUT/deploy.json`` tabulate every result in ``OUT``
(zoo results whose weights are no longer the zoo's are listed as superseded).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Kernel backends of the PyTorch rows (a model without switchable kernels has one row, "pytorch").
TORCH_BACKENDS = ("reference", "cpp")
ORT = "onnxruntime"


class TimedEngine:
    """Wraps a tracker's engine; accumulates this thread's CPU seconds spent in ``run`` (the network)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runtime = getattr(inner, "runtime", "?")
        self.seconds = 0.0

    def run(self, branch: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run ``branch`` on the wrapped engine, timed."""
        t0 = time.thread_time()
        try:
            return self.inner.run(branch, **inputs)
        finally:
            self.seconds += time.thread_time() - t0


def _spec(spec: str, checkpoint: str | None, overrides: list[str]) -> tuple[str, dict[str, Any], Any, str]:
    """(label, config, model with its weights, weights description) of a zoo name or a config path."""
    from vtrack import zoo
    from vtrack.config import load_config
    from vtrack.models import get_family

    if zoo.is_zoo_name(spec) and checkpoint is None and not overrides:
        entry = zoo.get_entry(spec)
        cfg = zoo.zoo_config(entry)
        model = get_family(cfg["model"]["name"]).build_model(cfg["model"])
        zoo.load_entry_weights(model, entry)
        return entry.name, cfg, model.eval(), f"zoo {entry.weights} sha256 {entry.sha256[:12]}"
    if not Path(spec).is_file():
        raise ValueError(f"tracker: expected a zoo name (`vtrack zoo list`) or a config file, got {spec!r}")
    cfg = load_config(spec, overrides)
    torch.manual_seed(0)
    model = get_family(cfg["model"]["name"]).build_model(cfg["model"])
    if checkpoint is None:
        return Path(spec).stem, cfg, model.eval(), "random (seeded)"
    from vtrack.tracking.loader import load_model_weights

    load_model_weights(model, checkpoint)
    return Path(spec).stem, cfg, model.eval(), f"checkpoint {checkpoint}"


def build_runtimes(cfg: dict[str, Any], model: torch.nn.Module, onnx_dir: Path) -> dict[str, Any]:
    """Trackers of ``model``: one per PyTorch kernel backend (``pytorch`` for a model without
    switchable kernels) and one on onnxruntime (1 intra-op thread), each engine timed."""
    from vtrack.deploy import use_onnxruntime
    from vtrack.models import get_family
    from vtrack.models.layers.backend import SupportsBackend

    fam = get_family(cfg["model"]["name"])
    trackers: dict[str, Any] = {}
    if isinstance(model, SupportsBackend):
        for backend in TORCH_BACKENDS:
            m = copy.deepcopy(model)
            m.set_backend(backend)
            trackers[backend] = fam.build_tracker(m.eval(), cfg, "cpu")
    else:
        trackers["pytorch"] = fam.build_tracker(model, cfg, "cpu")
    trackers[ORT] = use_onnxruntime(fam.build_tracker(model, cfg, "cpu"), cfg, onnx_dir=onnx_dir, threads=1)
    for t in trackers.values():
        t.engine = TimedEngine(t.engine)
    return trackers


def _twin(tracker: Any, engine: Any) -> Any:
    """A copy of ``tracker`` (state included) whose network runs on ``engine`` (weights shared)."""
    memo = {id(tracker.engine): engine}
    if getattr(tracker, "model", None) is not None:
        memo[id(tracker.model)] = tracker.model
    return copy.deepcopy(tracker, memo=memo)


def run_sequence(trackers: dict[str, Any], seq: Any, step_of: str | None) -> dict[str, Any]:
    """Track ``seq`` with every tracker of ``trackers``, interleaved frame by frame (order rotating).

    Returns per runtime the boxes [T, 4] (frame 0: the initial box), the seconds per tracked frame
    (wall clock ``s``, this thread's CPU time ``cpu_s``) and the network's CPU seconds per frame; and
    with ``step_of``, ``step``: per other runtime, per frame, its box from ``trackers[step_of]``'s
    state (a copy of that tracker on the other runtime's engine, weights shared).
    """
    names = list(trackers)
    box0 = tuple(float(v) for v in seq.boxes[0])
    first = seq.frame(0)
    out: dict[str, Any] = {n: {"boxes": [box0], "s": [], "cpu_s": [], "net_s": []} for n in names}
    from vtrack.eval.runner import init_info

    info = init_info(seq)  # as in the evaluation: VLT gets the sequence's description
    for n in names:
        trackers[n].initialize(first, box0, info)
    others = [n for n in names if n != step_of] if step_of else []
    step: dict[str, list[Any]] = {n: [box0] for n in others}
    for i in range(1, len(seq)):
        img = seq.frame(i)
        twins = {n: _twin(trackers[step_of], trackers[n].engine) for n in others}
        k = i % len(names)
        for n in names[k:] + names[:k]:
            engine = trackers[n].engine
            net0, t0, c0 = engine.seconds, time.perf_counter(), time.thread_time()
            box = trackers[n].track(img).box
            out[n]["cpu_s"].append(time.thread_time() - c0)
            out[n]["s"].append(time.perf_counter() - t0)
            out[n]["net_s"].append(engine.seconds - net0)
            out[n]["boxes"].append(tuple(float(v) for v in box))
        for n, twin in twins.items():
            step[n].append(tuple(float(v) for v in twin.track(img).box))
    if step_of:
        out["step"] = step
    return out


def _mean_iou(a: list[Any], b: list[Any]) -> float:
    from vtrack.eval.metrics import iou

    return float(np.nanmean(iou(np.asarray(a[1:]), np.asarray(b[1:]))))


def summarise(per_seq: list[dict[str, Any]], names: list[str], pytorch: str) -> dict[str, Any]:
    """IoU and FPS figures from :func:`run_sequence` outputs (``pytorch``: the tracker compared with
    ORT). A runtime missing from some sequences is compared on the sequences it ran; FPS and
    ratios come from the sequences where every runtime ran (the timed ones)."""
    from vtrack.eval.metrics import iou

    def ious(a: str, b: str) -> np.ndarray:
        return np.concatenate([iou(np.asarray(s[a]["boxes"][1:]), np.asarray(s[b]["boxes"][1:]))
                               for s in per_seq if a in s and b in s])

    def times(n: str, key: str = "s") -> np.ndarray:
        return np.concatenate([s[n][key] for s in timed])

    timed = [s for s in per_seq if all(n in s for n in names)]
    step = {n: np.concatenate([iou(np.asarray(s[pytorch]["boxes"][1:]), np.asarray(s["step"][n][1:]))
                               for s in per_seq if n in s.get("step", {})])
            for n in names if n != pytorch and any(n in s.get("step", {}) for s in per_seq)}
    agree = {f"{ORT} vs {n}": float(np.nanmean(ious(ORT, n))) for n in names if n != ORT}
    if "reference" in names and "cpp" in names:
        agree["cpp vs reference"] = float(np.nanmean(ious("cpp", "reference")))
    fps: dict[str, Any] = {}
    for n in names:
        per = [1.0 / float(np.median(s[n]["cpu_s"])) for s in timed if s[n]["cpu_s"]]
        fps[n] = {"fps": 1.0 / float(np.median(times(n, "cpu_s"))), "fps_wall": 1.0 / float(np.median(times(n))),
                  "fps_seq_median": float(np.median(per)), "fps_seq_min": float(np.min(per)),
                  "fps_seq_max": float(np.max(per)), "ms_median": 1e3 * float(np.median(times(n, "cpu_s"))),
                  "wall_ms_median": 1e3 * float(np.median(times(n))),
                  "net_ms_median": 1e3 * float(np.median(times(n, "net_s"))), "frames": int(times(n).size)}
    ratios = {f"{ORT} vs {n}": float(np.median(times(n, "cpu_s") / np.maximum(times(ORT, "cpu_s"), 1e-9)))
              for n in names if n != ORT}
    ratios.update({f"{ORT} vs {n} (wall)": float(np.median(times(n) / times(ORT))) for n in names if n != ORT})
    return {"iou": agree, "iou_step": float(np.nanmean(step[ORT])) if ORT in step else None,
            "iou_step_all": {f"{n} vs {pytorch}": {"mean": float(np.nanmean(v)), "frames": int(v.size),
                                                   "below_0.9": int(np.sum(v < 0.9)), "min": float(np.nanmin(v))}
                             for n, v in step.items()},
            "iou_per_sequence": [round(_mean_iou(s[ORT]["boxes"], s[pytorch]["boxes"]), 4) for s in per_seq],
            "iou_min_frame": float(np.nanmin(ious(ORT, pytorch))),
            "iou_frames_below": {f"{t:g}": int(np.sum(ious(ORT, pytorch) < t)) for t in (0.99, 0.9, 0.5)},
            "fps": fps, "speedup": ratios,
            "frames": int(sum(len(s[ORT]["s"]) for s in per_seq)), "fps_sequences": len(timed)}


def export_figures(engine: Any, onnx_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Export the branches of the PyTorch ``engine`` into ``onnx_dir`` (new): wall and CPU seconds
    (the process's: on a loaded machine the wall time mostly measures the scheduler) and sizes."""
    from vtrack.deploy import export_engine

    t0, c0 = time.perf_counter(), time.process_time()
    manifest = export_engine(engine, onnx_dir, info=info)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    branches = {k: {"mb": v["bytes"] / 1e6, "seconds": v["seconds"], "opset": v["opset"], "nodes": v["nodes"]}
                for k, v in manifest["branches"].items()}
    return {"export_s": seconds, "export_cpu_s": cpu, "onnx_mb": sum(b["mb"] for b in branches.values()), "branches": branches,
            "opset": manifest["opset"]}


def measure_tracker(spec: str, sequences: list[Any], *, checkpoint: str | None = None,
                    overrides: Iterable[str] = (), fps_sequences: int | None = None,
                    per_step: bool = False, progress: bool = True) -> dict[str, Any]:
    """Export, agreement and interleaved FPS of one tracker over ``sequences`` (see the module doc).
    ``fps_sequences``: every runtime tracks (timed) the first N sequences; the others only the
    PyTorch tracker compared with onnxruntime and onnxruntime (None: all). ``per_step``: also the
    per-step IoU of each other runtime from the PyTorch tracker's state (one more step per frame each)."""
    from tqdm import tqdm

    from vtrack.bench.common import environment
    from vtrack.deploy.export import model_key
    from vtrack.models import get_family

    label, cfg, model, weights = _spec(spec, checkpoint, list(overrides))
    fam = get_family(cfg["model"]["name"])
    env = environment("cpu")
    engine = fam.build_tracker(model, cfg, "cpu").engine
    key = model_key(cfg, engine)
    with tempfile.TemporaryDirectory(prefix="vtrack-deploy-") as tmp:
        onnx_dir = Path(tmp) / "onnx"
        export = export_figures(engine, onnx_dir, {"model": cfg["model"]["name"], "tracker": label})
        trackers = build_runtimes(cfg, model, onnx_dir)
        names = list(trackers)
        pytorch = "cpp" if "cpp" in trackers else names[0]
        per_seq = []
        for i, seq in enumerate(tqdm(sequences, desc=f"deploy {label}", unit="seq", disable=not progress)):
            every = fps_sequences is None or i < fps_sequences
            active = {n: t for n, t in trackers.items() if every or n in (pytorch, ORT)}
            per_seq.append(run_sequence(active, seq, pytorch if per_step else None))
    result = {"tracker": label, "family": cfg["model"]["name"], "key": key[:12], "config_sha256": config_digest(cfg),
              "weights": weights,
              "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "runtimes": names,
              "pytorch_compared": pytorch, "sequences": [s.name for s in sequences], **export,
              **summarise(per_seq, names, pytorch), "environment": env,
              "load_avg_end": os.getloadavg()[0], "notes": _notes(cfg)}
    return result


def _notes(cfg: dict[str, Any]) -> str:
    """What of the tracker stays in PyTorch with onnxruntime (the family's own statement)."""
    from vtrack.models import get_family

    fam = get_family(cfg["model"]["name"])
    note = getattr(fam, "deploy_note", None)
    return note(cfg) if callable(note) else ""


# --------------------------------------------------------------------------------------------
# results: one JSON per tracker, a table over every result of the folder
# --------------------------------------------------------------------------------------------
def result_path(out_dir: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """``OUT/<tracker>-<key>.json``: one file per tracker and weights."""
    return Path(out_dir) / f"{result['tracker']}-{result['key']}.json"


def config_digest(cfg: dict[str, Any]) -> str:
    """Short sha256 of a full config (sorted JSON): which tracker options a result was measured with."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def read_results(out_dir: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(current, superseded) results of ``out_dir``: a zoo result is superseded when its weights are
    no longer the zoo's, or when a result of the entry's current config exists and it is not one
    (its tracker options changed since); current ones in zoo order, then the others by name."""
    from vtrack import zoo

    entries = {e.name: e for e in zoo.list_entries()}
    configs = {n: config_digest(zoo.zoo_config(e)) for n, e in entries.items()}
    order = {n: i for i, n in enumerate(entries)}
    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(out_dir).glob("*-*.json"))]
    with_current_config = {r["tracker"] for r in results if r.get("config_sha256") == configs.get(r.get("tracker"))}
    current, old = [], []
    for res in results:
        entry = entries.get(res.get("tracker"))
        stale = entry is not None and res.get("weights", "").startswith("zoo ") and (
            f"sha256 {entry.sha256[:12]}" not in res["weights"]
            or (entry.name in with_current_config and res.get("config_sha256") != configs[entry.name]))
        (old if stale else current).append(res)
    current.sort(key=lambda r: (order.get(r["tracker"], len(order)), r["tracker"], r["environment"]["time_utc"]))
    return current, old


def _f(x: Any, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def format_table(results: list[dict[str, Any]]) -> str:
    """Markdown: export, agreement and FPS of every result."""
    heads = ["tracker", "export CPU s (wall)", "ONNX MB (per branch)", "IoU ORT vs PyTorch (free)", "IoU per step",
             "IoU cpp vs reference", "FPS reference", "FPS cpp", "FPS ORT", "ORT vs reference", "ORT vs cpp",
             "frames", "load (1 min)", "stays in PyTorch"]
    lines = ["| " + " | ".join(heads) + " |", "| --- |" + " ---: |" * (len(heads) - 2) + " --- |"]
    for r in results:
        fps = r["fps"]
        torch_rows = [n for n in r["runtimes"] if n != ORT]
        ref = fps.get("reference", fps.get(torch_rows[0]))
        cpp = fps.get("cpp")
        sizes = " + ".join(f"{k} {v['mb']:.2f}" for k, v in r["branches"].items())
        sp = r["speedup"]
        lines.append("| " + " | ".join([
            r["tracker"], f"{r['export_cpu_s']:.1f} ({r['export_s']:.0f})", f"{r['onnx_mb']:.2f} ({sizes})",
            f"{r['iou'][ORT + ' vs ' + r['pytorch_compared']]:.4f}", _f(r["iou_step"], ".4f"),
            _f(r["iou"].get("cpp vs reference"), ".4f"),
            f"{ref['fps']:.1f}" + ("" if "reference" in fps else f" ({torch_rows[0]})"),
            _f(cpp and cpp["fps"], ".1f"), f"{fps[ORT]['fps']:.1f}",
            f"{sp.get(f'{ORT} vs reference', sp[f'{ORT} vs {torch_rows[0]}']):.2f}x",
            f"{sp[f'{ORT} vs cpp']:.2f}x" if f"{ORT} vs cpp" in sp else "-",
            str(r["frames"]), f"{r['environment']['load_avg_1m']:.1f}-{r['load_avg_end']:.1f}", r["notes"] or "nothing",
        ]) + " |")
    return "\n".join(lines) + "\n"


def write_results(out_dir: str | os.PathLike[str], result: dict[str, Any] | None = None, *,
                  overwrite: bool = False) -> Path:
    """Write ``result`` (if given) to its own JSON file, then ``deploy.md`` / ``deploy.json`` over
    every result in ``out_dir``. An existing result file is refused unless ``overwrite``."""
    from vtrack.bench.common import write_json
    from vtrack.io import atomic_write_text

    out = Path(out_dir)
    if result is not None:
        path = result_path(out, result)
        if path.exists() and not overwrite:
            raise FileExistsError(f"out: {path} exists (same tracker and weights); pass --overwrite to measure again")
        write_json(path, result)
    current, old = read_results(out)
    write_json(out / "deploy.json", {"results": [_brief(r) for r in current],
                                     "superseded": [_brief(r) for r in old]})
    envs = [r["environment"] for r in current]
    md = ["# Deployment: ONNX export, onnxruntime vs PyTorch\n",
          "Written by `vtrack bench deploy` (vtrack/bench/deploy.py; docs/deploy.md). One process per tracker: "
          "the PyTorch trackers (kernel backends `reference` and `cpp`) and the onnxruntime tracker track every "
          "sequence of the split interleaved frame by frame (order rotating), 1 thread each "
          "(`torch.set_num_threads(1)`, onnxruntime `intra_op_num_threads=1`), all computing in the calling thread. "
          "FPS: 1 / median CPU seconds of that thread (`time.thread_time`) per tracking step (crop, normalise, "
          "network, post-processing) on the timed sequences; wall-clock FPS in deploy.json; ratios: median over "
          "frames of the paired CPU-time ratio. IoU (free): both trackers running free over the whole split; per step: "
          "the onnxruntime tracker's box from the PyTorch (cpp) tracker's state at every frame.\n"]
    if envs:
        cpus = sorted({f"{e.get('device_name')} ({e.get('cpu_count')} cores, ATen {e.get('aten_cpu_capability')}, "
                       f"vtrack cpp {e.get('cpp_isa')})" for e in envs})
        md.append(f"CPU: {'; '.join(cpus)}. torch {envs[0].get('torch')}. Load: the 1-minute load average at the "
                  "start and end of each tracker's run.\n")
    md.append(format_table(current))
    details = [f"- {r['tracker']}: {r['weights']}; {len(r['sequences'])} sequences, {r['frames']} frames; "
               f"measured {r['environment']['time_utc']} at commit {str(r['environment']['git_commit'])[:10]}; "
               f"FPS on the first {r['fps_sequences']} sequences (per-sequence FPS median, min-max): " + ", ".join(
                   f"{n} {v['fps_seq_median']:.1f} ({v['fps_seq_min']:.1f}-{v['fps_seq_max']:.1f}), "
                   f"network {v['net_ms_median']:.1f} of {v['ms_median']:.1f} ms" for n, v in r["fps"].items())
               + "".join(f"; per step {k}: IoU {v['mean']:.4f}, {v['below_0.9']} of {v['frames']} frames below 0.9"
                         for k, v in r.get("iou_step_all", {}).items())
               + ("; free-running ORT vs PyTorch, frames with IoU below 0.99 / 0.9 / 0.5: " + " / ".join(
                   str(n) for n in r["iou_frames_below"].values()) + f" of {r['frames']}; per sequence: "
                  + ", ".join(f"{v:.3f}" for v in r["iou_per_sequence"]) if "iou_frames_below" in r else "")
               for r in current]
    md += ["", *details, ""]
    if old:
        md += ["Superseded (the zoo's weights or tracker options changed since):", "", format_table(old)]
    return atomic_write_text(out / "deploy.md", "\n".join(md))


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("tracker", "key", "config_sha256", "weights", "export_s", "export_cpu_s", "onnx_mb", "branches", "iou", "iou_step",
            "iou_step_all", "iou_frames_below", "iou_per_sequence", "fps", "speedup",
            "frames", "notes")
    return {k: r.get(k) for k in keys}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vtrack bench deploy``."""
    parser.add_argument("trackers", nargs="*", help="zoo names or config paths (default with --zoo: every zoo tracker)")
    parser.add_argument("--zoo", action="store_true", help="add every zoo tracker (`vtrack zoo list`)")
    parser.add_argument("--checkpoint", default=None, help="weights for a single config (else seeded random)")
    parser.add_argument("--override", nargs="*", default=[], metavar="key=value", help="config overrides")
    parser.add_argument("--root", default="data/synthetic", help="synthetic dataset root")
    parser.add_argument("--split", default="test", help="dataset split (every sequence is tracked)")
    parser.add_argument("--sequences", type=int, default=None, help="only the first N sequences (default: all)")
    parser.add_argument("--fps-sequences", type=int, default=None,
                        help="time every runtime on the first N sequences only (the others: the IoU pair only; "
                             "default: all)")
    parser.add_argument("--per-step", action="store_true",
                        help="also the per-step IoU: from the PyTorch (cpp) tracker's state at every frame, the "
                             "next box of onnxruntime (and of the reference backend): one more step per frame each")
    parser.add_argument("--out", default=None,
                        help="result folder (one JSON per tracker; deploy.md/deploy.json over all of them)")
    parser.add_argument("--overwrite", action="store_true", help="replace a result of the same tracker and weights")
    parser.add_argument("--table-only", action="store_true", help="only rewrite deploy.md/deploy.json of --out")


def run_from_args(args: argparse.Namespace) -> int:
    """Measure each tracker, write its result as soon as it is done; print the table."""
    from vtrack import zoo
    from vtrack.data import load_dataset

    if args.table_only:
        if not args.out:
            raise ValueError("--table-only: needs --out")
        print(f"written: {write_results(args.out)}")
        return 0
    specs = list(args.trackers) + ([e.name for e in zoo.list_entries()] if args.zoo else [])
    if not specs:
        raise ValueError("trackers: name at least one tracker, or pass --zoo")
    if args.checkpoint is not None and len(specs) != 1:
        raise ValueError(f"--checkpoint: only with a single tracker, got {len(specs)}")
    for opt in ("sequences", "fps_sequences"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise ValueError(f"--{opt.replace('_', '-')}: expected a positive int, got {value}")
    for spec in specs:
        if not zoo.is_zoo_name(spec) and not Path(spec).is_file():
            raise ValueError(f"trackers: expected zoo names (`vtrack zoo list`) or config files, got {spec!r}")
    torch.set_num_threads(1)
    seqs = list(load_dataset("synthetic", args.root, args.split))[: args.sequences]
    results = []
    for spec in dict.fromkeys(specs):
        res = measure_tracker(spec, seqs, checkpoint=args.checkpoint, overrides=args.override,
                              fps_sequences=args.fps_sequences, per_step=args.per_step)
        results.append(res)
        if args.out:
            write_results(args.out, res, overwrite=args.overwrite)
    print(format_table(results))
    if args.out:
        print(f"written: {Path(args.out) / 'deploy.md'}")
    return 0
