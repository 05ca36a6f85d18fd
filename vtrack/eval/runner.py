"""Run any tracker over any list of sequences and write results in the official layouts.

Protocols and their result layouts (``out_dir`` is one tracker's folder):

- ``"ope"`` (OTB/LaSOT/UAV123/NfS/TNL2K, pytracking layout): ``<seq>.txt`` tab-separated
  x, y, w, h per frame and ``<seq>_time.txt`` (seconds per frame).
- ``"got10k"``: ``<seq>/<seq>_001.txt`` (comma-separated, one file per repetition
  ``_001``..) and ``<seq>/<seq>_time.txt``; zip the folder for the evaluation server.
- ``"trackingnet"``: ``<seq>.txt`` comma-separated (the server's format) and ``<seq>_time.txt``.
- ``"vot"`` (reset-based): ``baseline/<seq>/<seq>_001.txt`` with one line per frame: ``1``
  (initialization), ``2`` (failure), ``0`` (skipped) or ``x,y,w,h``; ``<seq>_time.txt``
  alongside. After a failure (overlap <= 0 with the ground truth) the tracker is
  re-initialized from the ground truth ``skip`` (5) frames later.

Runs are resumable: a sequence counts as finished when every result file exists and holds one
row per frame (files are written to a temporary name then renamed). A result folder belongs to one
origin: ``manifest.json`` records the tracker, the hashes of its config and checkpoint, the
dataset, split, protocol and vtrack version, and a run with another origin is refused unless
``overwrite`` (which first removes the other origin's result files). One run per folder at a time
(:class:`vtrack.io.FolderLock`). Several worker processes can run, each building its own tracker
from a picklable factory (see :class:`vtrack.tracking.TrackerFactory`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from vtrack.data.sequence import Sequence
from vtrack.eval import metrics as M
from vtrack.tracking.base import Tracker
from vtrack.io import FolderLock, atomic_write_text, file_sha256, remove_stale_temp_files

__all__ = [
    "PROTOCOLS",
    "SequenceOutput",
    "Layout",
    "get_layout",
    "init_info",
    "track_sequence",
    "track_sequence_vot",
    "run_tracker",
    "atomic_write_text",
    "read_box_file",
    "MANIFEST_FILE",
    "build_manifest",
    "check_manifest",
]

logger = logging.getLogger(__name__)

PROTOCOLS = ("ope", "got10k", "vot", "trackingnet")


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _format_boxes(boxes: np.ndarray, delimiter: str) -> str:
    return "".join(delimiter.join(f"{v:.4f}" for v in row) + "\n" for row in boxes)


def _format_times(times: np.ndarray) -> str:
    return "".join(f"{t:.6f}\n" for t in times)


def _numeric_rows(path: str | os.PathLike, expected: str) -> Iterator[tuple[int, str, list[float]]]:
    """(line number, line, numbers) for each non-blank line of a result file; values may be
    separated by commas, tabs or spaces; a non-number raises naming the file and line."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.replace(",", " ").replace("\t", " ").split()
            if not parts:
                continue
            try:
                yield number, line, [float(v) for v in parts]
            except ValueError:
                raise ValueError(f"{path}:{number}: expected {expected}, got {line.strip()!r}") from None


def read_box_file(path: str | os.PathLike) -> np.ndarray:
    """Read a result file of x, y, w, h rows separated by commas, tabs or spaces -> [T, 4]."""
    rows = []
    for number, _, vals in _numeric_rows(path, "4 numbers"):
        if len(vals) != 4:
            raise ValueError(f"{path}:{number}: expected 4 numbers, got {len(vals)}")
        rows.append(vals)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _row_count(path: Path) -> int:
    """Non-blank lines of a result file (-1 when it does not exist)."""
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, UnicodeDecodeError):
        return -1


def _read_times(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    vals = [float(v) for v in path.read_text(encoding="utf-8").split()]
    return np.asarray(vals, dtype=np.float64)


def _read_vot_file(path: Path) -> M.VOTRun:
    codes, boxes = [], []
    for number, line, vals in _numeric_rows(path, "a code (1, 2, 0) or x,y,w,h"):
        if len(vals) == 1 and vals[0] in (M.VOT_CODE_INIT, M.VOT_CODE_FAILURE, M.VOT_CODE_SKIP):
            codes.append(int(vals[0]))
            boxes.append([np.nan] * 4)
        elif len(vals) == 4:
            codes.append(M.VOT_CODE_TRACKED)
            boxes.append(vals)
        elif len(vals) == 8:  # polygon -> its axis-aligned bounding box
            xs, ys = vals[0::2], vals[1::2]
            codes.append(M.VOT_CODE_TRACKED)
            boxes.append([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
        else:
            raise ValueError(f"{path}:{number}: expected a code (1, 2, 0), 4 or 8 numbers, got {line.strip()!r}")
    return M.VOTRun(np.asarray(codes), np.asarray(boxes, dtype=np.float64).reshape(-1, 4))


# --------------------------------------------------------------------------------------------
# tracking one sequence
# --------------------------------------------------------------------------------------------
@dataclass
class SequenceOutput:
    """What a tracker produced on one sequence (one run)."""

    name: str
    boxes: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    codes: np.ndarray | None = None  # VOT trajectory codes (see vtrack.eval.metrics)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames per second of the tracker alone (decoding excluded)."""
        total = float(np.sum(self.times))
        return len(self.times) / total if total > 0 else float("inf")


def init_info(seq: Sequence) -> dict[str, Any]:
    """The ``info`` a tracker is initialised with on ``seq``: its description (``language``) if it has one."""
    return {"language": seq.language} if seq.language else {}


def track_sequence(tracker: Tracker, seq: Sequence) -> SequenceOutput:
    """One-pass evaluation: initialize on frame 0 with the ground truth, then track every frame.

    The first output box is the initial box; times are the tracker's own (initialize/track)
    seconds per frame, frame decoding excluded.
    """
    if not isinstance(tracker, Tracker):
        raise TypeError(f"tracker: expected a vtrack.tracking.Tracker, got {type(tracker).__name__}")
    if len(seq) == 0:
        raise ValueError(f"seq: sequence {seq.name!r} has no frames")
    init = np.asarray(seq.boxes[0], dtype=np.float64)
    if not (np.all(np.isfinite(init)) and init[2] > 0 and init[3] > 0):
        raise ValueError(f"seq: sequence {seq.name!r} has no valid box on its first frame: {init.tolist()}")
    n = len(seq)
    boxes = np.zeros((n, 4))
    scores = np.ones(n)
    times = np.zeros(n)
    image = seq.frame(0)
    t0 = time.perf_counter()
    tracker.initialize(image, init, init_info(seq))
    times[0] = time.perf_counter() - t0
    boxes[0] = init
    for i in range(1, n):
        image = seq.frame(i)
        t0 = time.perf_counter()
        res = tracker.track(image)
        times[i] = time.perf_counter() - t0
        boxes[i] = res.box
        scores[i] = res.score
    return SequenceOutput(seq.name, boxes, scores, times)


def track_sequence_vot(tracker: Tracker, seq: Sequence, *, skip: int = 5) -> SequenceOutput:
    """VOT reset-based run: after a failure (VOT overlap <= 0) the tracker is re-initialized
    from the ground truth ``skip`` frames later (frames in between are coded 0)."""
    if not isinstance(tracker, Tracker):
        raise TypeError(f"tracker: expected a vtrack.tracking.Tracker, got {type(tracker).__name__}")
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 1:
        raise ValueError(f"skip: expected an int >= 1, got {skip!r}")
    if seq.attributes.get("first_frame_only", False):
        raise ValueError(f"seq: {seq.name!r} has only its first box public; VOT runs need every box")
    n = len(seq)
    gt = seq.boxes
    regions = M.vot_ground_truth(seq)  # polygons when the sequence has them, as vot-toolkit
    codes = np.full(n, M.VOT_CODE_SKIP, dtype=np.int64)
    boxes = np.full((n, 4), np.nan)
    scores = np.zeros(n)
    times = np.zeros(n)
    next_init = 0
    size: tuple[int, int] | None = None
    for i in range(n):
        if i < next_init:
            continue
        if i == next_init:
            g = gt[i]
            if not (np.all(np.isfinite(g)) and g[2] > 0 and g[3] > 0):
                next_init = i + 1  # no box to initialize from: try the next frame
                continue
            image = seq.frame(i)
            size = (image.shape[1], image.shape[0])
            t0 = time.perf_counter()
            tracker.initialize(image, g, init_info(seq))
            times[i] = time.perf_counter() - t0
            codes[i] = M.VOT_CODE_INIT
            scores[i] = 1.0
            continue
        image = seq.frame(i)
        t0 = time.perf_counter()
        res = tracker.track(image)
        times[i] = time.perf_counter() - t0
        assert size is not None
        if np.all(np.isfinite(regions[i])):
            overlap = float(M.vot_overlap([res.box], regions[i : i + 1], size[0], size[1])[0])
        else:
            overlap = 1.0  # no ground truth on this frame: cannot fail
        if overlap > 0:
            codes[i] = M.VOT_CODE_TRACKED
            boxes[i] = res.box
            scores[i] = res.score
        else:
            codes[i] = M.VOT_CODE_FAILURE
            next_init = i + skip
    if codes[0] != M.VOT_CODE_INIT:
        raise ValueError(f"seq: sequence {seq.name!r} has no valid box on its first frame")
    return SequenceOutput(seq.name, boxes, scores, times, codes=codes)


# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------
class Layout:
    """Where one protocol's result files live and how they are written and read."""

    protocol = "ope"
    delimiter = "\t"

    def files(self, out_dir: Path, name: str, repetitions: int) -> list[Path]:
        """Result files of sequence ``name`` (all must exist for it to count as finished)."""
        return [out_dir / f"{name}.txt", self.time_file(out_dir, name)]

    def time_file(self, out_dir: Path, name: str) -> Path:
        """Per-frame time file of ``name``."""
        return out_dir / f"{name}_time.txt"

    def is_done(self, out_dir: Path, name: str, repetitions: int, frames: int) -> bool:
        """True when every result file of ``name`` exists and holds one row per frame (a file
        cut short by hand or by a crash of another writer does not count)."""
        return all(_row_count(p) == frames for p in self.files(out_dir, name, repetitions))

    def result_files(self, out_dir: Path) -> list[Path]:
        """Every result file of this layout in ``out_dir`` (whatever the sequence)."""
        return sorted(p for p in out_dir.glob("*.txt") if p.is_file())

    def run(self, tracker: Tracker, seq: Sequence, **options: Any) -> SequenceOutput:
        """Track ``seq`` for this protocol."""
        return track_sequence(tracker, seq)

    def write(self, out_dir: Path, outputs: list[SequenceOutput]) -> None:
        """Write the result files of one sequence (one output per repetition)."""
        out = outputs[0]
        atomic_write_text(self.time_file(out_dir, out.name), _format_times(out.times))
        atomic_write_text(out_dir / f"{out.name}.txt", _format_boxes(out.boxes, self.delimiter))

    def read(self, out_dir: Path, name: str) -> tuple[Any, list[np.ndarray]]:
        """Boxes (or runs) of ``name`` and its time arrays; FileNotFoundError when missing."""
        path = out_dir / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"results: no result file for sequence {name!r}: {path}")
        t = _read_times(self.time_file(out_dir, name))
        return read_box_file(path), ([] if t is None else [t])


class _TrackingNetLayout(Layout):
    protocol = "trackingnet"
    delimiter = ","


class _GOT10kLayout(Layout):
    protocol = "got10k"
    delimiter = ","

    def time_file(self, out_dir: Path, name: str) -> Path:
        return out_dir / name / f"{name}_time.txt"

    def files(self, out_dir: Path, name: str, repetitions: int) -> list[Path]:
        reps = [out_dir / name / f"{name}_{r + 1:03d}.txt" for r in range(repetitions)]
        return reps + [self.time_file(out_dir, name)]

    def result_files(self, out_dir: Path) -> list[Path]:
        found = set(out_dir.glob("*/*_[0-9][0-9][0-9].txt")) | set(out_dir.glob("*/*_time.txt"))
        return sorted(p for p in found if p.is_file() and p.name.startswith(p.parent.name + "_"))

    def write(self, out_dir: Path, outputs: list[SequenceOutput]) -> None:
        name = outputs[0].name
        for r, out in enumerate(outputs):
            atomic_write_text(out_dir / name / f"{name}_{r + 1:03d}.txt", _format_boxes(out.boxes, self.delimiter))
        atomic_write_text(self.time_file(out_dir, name), _format_times(outputs[0].times))

    def read(self, out_dir: Path, name: str) -> tuple[Any, list[np.ndarray]]:
        reps = sorted((out_dir / name).glob(f"{name}_[0-9][0-9][0-9].txt"))
        if not reps:
            raise FileNotFoundError(f"results: no result file for sequence {name!r} in {out_dir / name}")
        t = _read_times(self.time_file(out_dir, name))
        return [read_box_file(p) for p in reps], ([] if t is None else [t])


class _VOTLayout(Layout):
    protocol = "vot"

    def time_file(self, out_dir: Path, name: str) -> Path:
        return out_dir / "baseline" / name / f"{name}_time.txt"

    def files(self, out_dir: Path, name: str, repetitions: int) -> list[Path]:
        reps = [out_dir / "baseline" / name / f"{name}_{r + 1:03d}.txt" for r in range(repetitions)]
        return reps + [self.time_file(out_dir, name)]

    def result_files(self, out_dir: Path) -> list[Path]:
        return sorted(p for p in out_dir.glob("baseline/*/*.txt") if p.is_file())

    def run(self, tracker: Tracker, seq: Sequence, **options: Any) -> SequenceOutput:
        return track_sequence_vot(tracker, seq, skip=int(options.get("skip", 5)))

    def write(self, out_dir: Path, outputs: list[SequenceOutput]) -> None:
        name = outputs[0].name
        for r, out in enumerate(outputs):
            assert out.codes is not None
            lines = []
            for code, box in zip(out.codes, out.boxes):
                if code == M.VOT_CODE_TRACKED:
                    lines.append(",".join(f"{v:.4f}" for v in box))
                else:
                    lines.append(str(int(code)))
            atomic_write_text(out_dir / "baseline" / name / f"{name}_{r + 1:03d}.txt", "\n".join(lines) + "\n")
        atomic_write_text(self.time_file(out_dir, name), _format_times(outputs[0].times))

    def read(self, out_dir: Path, name: str) -> tuple[Any, list[np.ndarray]]:
        folder = out_dir / "baseline" / name
        reps = sorted(folder.glob(f"{name}_[0-9][0-9][0-9].txt"))
        if not reps:
            raise FileNotFoundError(f"results: no result file for sequence {name!r} in {folder}")
        t = _read_times(self.time_file(out_dir, name))
        return [_read_vot_file(p) for p in reps], ([] if t is None else [t])


_LAYOUTS: dict[str, Layout] = {
    "ope": Layout(),
    "got10k": _GOT10kLayout(),
    "trackingnet": _TrackingNetLayout(),
    "vot": _VOTLayout(),
}


def get_layout(protocol: str) -> Layout:
    """The result layout of ``protocol`` (one of :data:`PROTOCOLS`)."""
    if protocol not in _LAYOUTS:
        raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return _LAYOUTS[protocol]


# --------------------------------------------------------------------------------------------
# origin of a result folder
# --------------------------------------------------------------------------------------------
MANIFEST_FILE = "manifest.json"
#: Manifest keys that must match for a run to add results to an existing folder.
ORIGIN_KEYS = ("tracker", "config_sha256", "checkpoint_sha256", "zoo", "dataset", "split", "protocol",
               "vtrack_version")


def _config_sha256(config: Any) -> str | None:
    """Hash of a tracker config's content (a YAML path or a loaded dict), whitespace and
    comments aside; None without a config."""
    if config is None:
        return None
    if not isinstance(config, dict):
        from vtrack.config import load_yaml

        config = load_yaml(config)
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_manifest(
    tracker: str,
    *,
    protocol: str,
    dataset: str | None,
    split: str | None = None,
    config: Any = None,
    checkpoint: str | os.PathLike | None = None,
    zoo: str | None = None,
) -> dict[str, Any]:
    """The origin of a result folder: tracker name, config hash, checkpoint hash (or zoo model
    name), dataset, split, protocol and vtrack version."""
    import vtrack

    return {
        "tracker": str(tracker),
        "config_sha256": _config_sha256(config),
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint is not None else None,
        "zoo": zoo,
        "dataset": dataset,
        "split": split,
        "protocol": protocol,
        "vtrack_version": vtrack.__version__,
    }


def _factory_manifest(factory: Callable[[], Tracker], protocol: str, seqs: list[Sequence]) -> dict[str, Any]:
    name = getattr(factory, "name", None) or getattr(factory, "__qualname__", type(factory).__name__)
    return build_manifest(
        name,
        protocol=protocol,
        dataset=seqs[0].dataset or None,
        config=getattr(factory, "config", None),
        checkpoint=getattr(factory, "checkpoint", None),
        zoo=getattr(factory, "zoo", None),
    )


def _describe_origin(m: dict[str, Any]) -> str:
    parts = [f"{k}={m.get(k)}" if not str(k).endswith("sha256") or m.get(k) is None
             else f"{k}={str(m.get(k))[:12]}" for k in ORIGIN_KEYS]
    return ", ".join(parts)


def check_manifest(out_dir: Path, manifest: dict[str, Any], layout: Layout, overwrite: bool) -> None:
    """Compare ``manifest`` with the folder's ``manifest.json``: same origin -> nothing to do; no
    manifest and no results -> new folder; otherwise refuse unless ``overwrite``, which removes
    the other origin's result files and summary first. Writes ``manifest``."""
    path = out_dir / MANIFEST_FILE
    old: dict[str, Any] | None = None
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if not isinstance(old, dict):
            old = {}
    existing = layout.result_files(out_dir)
    if old is not None:
        same = all(old.get(k) == manifest.get(k) for k in ORIGIN_KEYS)
    else:
        same = not existing  # results without a manifest: origin unknown
    if not same:
        if not overwrite:
            theirs = f"results of another origin ({_describe_origin(old)})" if old else \
                f"{len(existing)} result file(s) of unknown origin (no {MANIFEST_FILE})"
            raise ValueError(
                f"out_dir: {out_dir} holds {theirs}; this run is {_describe_origin(manifest)}. "
                "Pass --overwrite (overwrite=True) to replace them, or write to another folder")
        logger.warning("%s: removing %d result file(s) of another origin (--overwrite)", out_dir, len(existing))
        for p in existing:
            p.unlink()
        for d in sorted({p.parent for p in existing}, key=lambda q: -len(q.parts)):
            if d != out_dir and not any(d.iterdir()):
                d.rmdir()
                if d.parent != out_dir and d.parent.is_dir() and not any(d.parent.iterdir()):
                    d.parent.rmdir()
        (out_dir / "summary.json").unlink(missing_ok=True)
    if old != manifest:
        atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------
_WORKER_TRACKER: Tracker | None = None


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one, else ``os.cpu_count()``."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def init_worker_threads(threads: int, log_level: int | None = None) -> None:
    """Set up a tracking worker process: ``threads`` torch threads, one OpenCV thread and, when given,
    the parent's log level (a spawned process starts with logging unconfigured)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an int >= 1, got {threads!r}")
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    if log_level is not None:
        logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")


def _worker_init(factory: Callable[[], Tracker], threads: int, log_level: int | None) -> None:
    global _WORKER_TRACKER
    init_worker_threads(threads, log_level)
    _WORKER_TRACKER = factory()


def _run_one(
    tracker: Tracker, seq: Sequence, out_dir: Path, protocol: str, repetitions: int, options: dict[str, Any]
) -> dict[str, Any]:
    layout = get_layout(protocol)
    outputs = [layout.run(tracker, seq, **options) for _ in range(repetitions)]
    layout.write(out_dir, outputs)
    out = outputs[0]
    info: dict[str, Any] = {"name": seq.name, "frames": len(out.times), "fps": out.fps, "status": "done"}
    if out.codes is not None:
        info["failures"] = int(np.sum(out.codes == M.VOT_CODE_FAILURE))
    return info


def _worker_run(seq: Sequence, out_dir: Path, protocol: str, repetitions: int, options: dict[str, Any]) -> dict[str, Any]:
    assert _WORKER_TRACKER is not None
    return _run_one(_WORKER_TRACKER, seq, out_dir, protocol, repetitions, options)


def run_tracker(
    factory: Callable[[], Tracker],
    sequences: Iterable[Sequence],
    out_dir: str | os.PathLike,
    *,
    protocol: str = "ope",
    workers: int = 1,
    repetitions: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    skip: int = 5,
    manifest: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run a tracker over sequences and write its results in ``protocol``'s layout.

    Args:
        factory: zero-argument callable building a fresh tracker (picklable when ``workers`` > 1,
            e.g. :class:`vtrack.tracking.TrackerFactory`); one tracker per worker, re-initialized
            for every sequence.
        sequences: the sequences to run.
        out_dir: this tracker's result folder.
        protocol: one of :data:`PROTOCOLS`.
        workers: number of worker processes (1 = in this process).
        repetitions: runs per sequence (GOT-10k/VOT files ``_001``, ``_002``...; only
            stochastic trackers need more than one).
        overwrite: re-run every sequence, and replace the results of another origin (default:
            resume: finished sequences are skipped, and a folder of another origin is refused).
        progress: show a tqdm bar.
        skip: VOT frames skipped before re-initialization after a failure.
        manifest: the origin of these results (:func:`build_manifest`); default: from the
            factory (its ``name``, ``config``, ``checkpoint``), ``protocol`` and the dataset.

    Raises:
        ValueError: bad arguments, or ``out_dir`` holds results of another origin.
        vtrack.io.FolderLockedError: another process is writing to ``out_dir``.

    Returns:
        Per sequence: ``{"frames", "fps", "status": "done"|"skipped", ...}``.
    """
    layout = get_layout(protocol)
    if not callable(factory):
        raise TypeError(f"factory: expected a callable returning a Tracker, got {type(factory).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if isinstance(repetitions, bool) or not isinstance(repetitions, int) or repetitions < 1:
        raise ValueError(f"repetitions: expected an int >= 1, got {repetitions!r}")
    if protocol in ("ope", "trackingnet") and repetitions != 1:
        raise ValueError(f"repetitions: the {protocol} layout holds one run per sequence, got {repetitions}")
    seqs = list(sequences)
    if not seqs:
        raise ValueError("sequences: expected at least one sequence, got none")
    for s in seqs:
        if not isinstance(s, Sequence):
            raise TypeError(f"sequences: expected vtrack.data.Sequence items, got {type(s).__name__}")
    names = [s.name for s in seqs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"sequences: names must be unique, repeated: {dup[:5]}")
    bad = [n for n in names if not n or n in (".", "..") or any(c in n for c in "/\\\0")]
    if bad:
        raise ValueError(f"sequences: a sequence name becomes a file name; got {bad[0]!r} (a path)")
    out = Path(out_dir)
    if manifest is None:
        manifest = _factory_manifest(factory, protocol, seqs)
    with FolderLock(out, "eval"):
        remove_stale_temp_files(out, recursive=True)
        check_manifest(out, manifest, layout, overwrite)
        return _run_all(factory, seqs, out, layout, protocol, workers, repetitions, overwrite, progress, skip)


def _run_all(factory: Callable[[], Tracker], seqs: list[Sequence], out: Path, layout: Layout, protocol: str,
             workers: int, repetitions: int, overwrite: bool, progress: bool, skip: int) -> dict[str, dict[str, Any]]:
    from tqdm import tqdm

    names = [s.name for s in seqs]
    report: dict[str, dict[str, Any]] = {}
    todo = []
    for s in seqs:
        if not overwrite and layout.is_done(out, s.name, repetitions, len(s)):
            report[s.name] = {"name": s.name, "frames": len(s), "status": "skipped"}
        else:
            todo.append(s)
    if report:
        logger.info("%d of %d sequences already have results in %s (skipped)", len(report), len(seqs), out)
    options = {"skip": skip}
    bar = tqdm(total=len(todo), desc=f"{protocol} {out.name}", unit="seq", disable=not progress or not todo)
    if workers == 1 or len(todo) <= 1:
        tracker = factory() if todo else None
        for s in todo:
            report[s.name] = _run_one(tracker, s, out, protocol, repetitions, options)  # type: ignore[arg-type]
            bar.set_postfix(seq=s.name, fps=f"{report[s.name]['fps']:.1f}")
            bar.update()
    else:
        factory()  # fail fast here (bad spec, missing checkpoint) rather than in a worker
        threads = max(1, usable_cores() // workers)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(factory, threads, logging.getLogger().level)) as pool:
            futures = {pool.submit(_worker_run, s, out, protocol, repetitions, options): s.name for s in todo}
            for fut in as_completed(futures):
                info = fut.result()
                report[futures[fut]] = info
                bar.set_postfix(seq=info["name"], fps=f"{info['fps']:.1f}")
                bar.update()
    bar.close()
    return {n: report[n] for n in names}
