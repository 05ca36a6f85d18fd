"""Reports from ``summary.json`` files: plots, tables, attribute breakdown, and box videos.

Plots follow the official toolkits: the success plot's legend ranks trackers by AUC and shows
it as ``[0.652] name`` (OTB/LaSOT/pytracking), the precision plot by the value at 20 px, the
normalized-precision plot by the value at 0.2, GOT-10k's by AO and VOT's expected-overlap curve
by EAO. Figures use matplotlib's object API (no global pyplot state) and are written atomically.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence as Seq

import numpy as np

from vtrack.eval.evaluate import PRIMARY_SCORE, load_summary
from vtrack.io import AtomicPath, atomic_write_text, refuse_overwrite_input, safe_name

__all__ = [
    "plot_curves",
    "comparison_table",
    "attribute_breakdown",
    "attribute_table",
    "write_report",
    "draw_boxes",
    "VideoWriter",
    "write_video",
]

logger = logging.getLogger(__name__)

# curve key -> (title, x label, y label, score shown in the legend)
_PLOTS: dict[str, tuple[str, str, str, str]] = {
    "success": ("Success plot", "Overlap threshold", "Success rate", "auc"),
    "precision": ("Precision plot", "Location error threshold (pixels)", "Precision", "precision"),
    "norm_precision": ("Normalized precision plot", "Normalized location error threshold", "Precision", "norm_precision"),
    "eao": ("Expected overlap", "Sequence length", "Expected overlap", "eao"),
}
# per-protocol score used in the legend of each curve
_LEGEND_SCORE = {
    ("got10k", "success"): "ao",
    ("trackingnet", "success"): "success",
}
# per-protocol columns of the comparison table: (key, header, format) with format "pct" (x100,
# one decimal, as papers report AUC/AO), "f3" (three decimals) or "f1" (one decimal)
_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "ope": [("auc", "AUC", "pct"), ("precision", "P@20", "pct"), ("norm_precision", "P_norm@0.2", "pct"),
            ("op50", "OP50", "pct"), ("op75", "OP75", "pct")],
    "got10k": [("ao", "AO", "pct"), ("sr50", "SR0.5", "pct"), ("sr75", "SR0.75", "pct")],
    "trackingnet": [("success", "Success", "pct"), ("precision", "Precision", "pct"),
                    ("norm_precision", "Norm. precision", "pct")],
    "vot": [("eao", "EAO", "f3"), ("accuracy", "Accuracy", "f3"), ("failures_mean", "R (vot-toolkit)", "f3"),
            ("robustness_exp", "exp(-30R/L)", "f3"), ("robustness", "R (fail/100 fr)", "f3"),
            ("failures", "Failures", "f1")],
}
# per-sequence score used for the attribute breakdown
_SEQ_SCORE = {"ope": "auc", "trackingnet": "auc", "got10k": "ao", "vot": "accuracy"}


def _check_summaries(summaries: Seq[dict[str, Any]]) -> list[dict[str, Any]]:
    if not summaries:
        raise ValueError("summaries: expected at least one summary, got none")
    out = list(summaries)
    for s in out:
        if not isinstance(s, dict) or "protocol" not in s or "scores" not in s:
            raise TypeError("summaries: expected summary dicts from vtrack.eval.evaluate_results")
    return out


def _save_figure(fig: Any, path: Path) -> None:
    with AtomicPath(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")


def plot_curves(summaries: Seq[dict[str, Any]], key: str, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Plot curve ``key`` (``success``, ``precision``, ``norm_precision`` or ``eao``) of several
    trackers into a PNG, the legend ranked by the curve's score as the official toolkits do."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = _check_summaries(summaries)
    if key not in _PLOTS:
        raise ValueError(f"key: expected one of {sorted(_PLOTS)}, got {key!r}")
    name, xlabel, ylabel, score_key = _PLOTS[key]
    rows = []
    for s in items:
        curve = s.get("curves", {}).get(key)
        if curve is None:
            continue
        score_key_here = _LEGEND_SCORE.get((s["protocol"], key), score_key)
        value = s["scores"].get(score_key_here)
        score = float(value) if value is not None else float("nan")
        rows.append((score, s["tracker"], np.asarray(curve["x"]), np.asarray(curve["y"])))
    if not rows:
        raise ValueError(f"summaries: none has a {key!r} curve")
    rows.sort(key=lambda r: -r[0] if np.isfinite(r[0]) else np.inf)
    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for score, tracker, x, y in rows:
        ax.plot(x, y, linewidth=2, label=f"[{score:.3f}] {tracker}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(float(min(r[2].min() for r in rows)), float(max(r[2].max() for r in rows)))
    ax.set_ylim(0.0, 1.01 if key != "eao" else max(1e-3, float(max(r[3].max() for r in rows)) * 1.05))
    ax.grid(True, linestyle=":")
    dataset = items[0].get("dataset", "")
    if title is None:
        title = f"{name} of OPE on {dataset}" if items[0]["protocol"] == "ope" else f"{name} on {dataset}"
    ax.set_title(title)
    ax.legend(loc="lower left" if key == "success" else "lower right", fontsize=8)
    out = Path(path)
    _save_figure(fig, out)
    return out


def _fmt(value: Any, fmt: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if not np.isfinite(v):
        return "-"
    if fmt == "pct":
        return f"{100.0 * v:.1f}"
    return f"{v:.1f}" if fmt == "f1" else f"{v:.3f}"


def comparison_table(summaries: Seq[dict[str, Any]]) -> str:
    """Markdown table comparing trackers of one protocol (rows sorted by the primary score)."""
    items = _check_summaries(summaries)
    protocols = {s["protocol"] for s in items}
    if len(protocols) != 1:
        raise ValueError(f"summaries: expected one protocol per table, got {sorted(protocols)}")
    protocol = protocols.pop()
    cols = _COLUMNS[protocol]
    primary = PRIMARY_SCORE[protocol]
    items.sort(key=lambda s: -float(s["scores"][primary]) if s["scores"].get(primary) is not None else np.inf)
    head = ["Tracker"] + [c[1] for c in cols] + ["FPS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for s in items:
        cells = [str(s["tracker"])] + [_fmt(s["scores"].get(k), f) for k, _, f in cols]
        fps = s.get("fps")
        cells.append(f"{fps:.1f}" if isinstance(fps, (int, float)) and np.isfinite(fps) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _groups(attributes: dict[str, Any]) -> list[str]:
    out = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            if value:
                out.append(key)
        elif isinstance(value, str):
            out.append(f"{key}={value}")
        elif isinstance(value, (int, float)) and value > 0:
            out.append(f"{key}>0")
    return out


def attribute_breakdown(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean per-sequence score (AUC for OPE/TrackingNet, AO for GOT-10k, accuracy for VOT) of the
    sequences in each attribute group: a True flag ``"occlusion"``, a category
    ``"motion=fast"``, or a positive count ``"distractors>0"``; plus ``"all"``.

    Returns ``{group: {"score": mean, "sequences": count}}``.
    """
    _check_summaries([summary])
    key = _SEQ_SCORE[summary["protocol"]]
    members: dict[str, list[float]] = defaultdict(list)
    for seq in summary["sequences"].values():
        score = seq.get(key)
        if score is None or not np.isfinite(score):
            continue
        members["all"].append(float(score))
        for g in _groups(seq.get("attributes", {})):
            members[g].append(float(score))
    return {g: {"score": float(np.mean(v)), "sequences": float(len(v))} for g, v in sorted(members.items())}


def attribute_table(summaries: Seq[dict[str, Any]]) -> str:
    """Markdown table: one row per attribute group, one column per tracker (score x100 for
    AUC/AO, the sequence count in brackets)."""
    items = _check_summaries(summaries)
    breakdowns = [(s["tracker"], attribute_breakdown(s)) for s in items]
    groups = sorted({g for _, b in breakdowns for g in b}, key=lambda g: (g != "all", g))
    fmt = "f3" if items[0]["protocol"] == "vot" else "pct"
    head = ["Attribute (sequences)"] + [t for t, _ in breakdowns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(breakdowns)) + "|"]
    for g in groups:
        count = max(int(b[g]["sequences"]) for _, b in breakdowns if g in b)
        cells = [f"{g} ({count})"] + [_fmt(b[g]["score"], fmt) if g in b else "-" for _, b in breakdowns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(result_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> Path:
    """Write ``report.md`` and the plots for the ``summary.json`` of each result folder.

    Summaries are grouped by (dataset, protocol); each group gets a comparison table, its
    plots and an attribute breakdown. Returns the path of ``report.md``.
    """
    dirs = list(result_dirs)
    if not dirs:
        raise ValueError("result_dirs: expected at least one result folder, got none")
    out = Path(out_dir)
    refuse_overwrite_input(out, dirs + [Path(d) / "summary.json" for d in dirs if Path(d).is_dir()])
    summaries = [load_summary(d) for d in dirs]
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in summaries:
        groups[(str(s.get("dataset", "unknown")), s["protocol"])].append(s)
    parts = ["# Tracking results\n"]
    for (dataset, protocol), items in sorted(groups.items()):
        parts.append(f"\n## {dataset} ({protocol})\n\n")
        parts.append(comparison_table(items))
        parts.append("\n")
        for key in ("success", "precision", "norm_precision", "eao"):
            if any(key in s.get("curves", {}) for s in items):
                png = out / f"{safe_name(dataset, what='dataset')}_{protocol}_{key}.png"
                plot_curves(items, key, png)
                parts.append(f"![{key}]({png.name})\n")
        parts.append("\n### Attributes\n\n")
        parts.append(attribute_table(items))
    report = out / "report.md"
    atomic_write_text(report, "".join(parts))
    logger.info("report written to %s", report)
    return report


# --------------------------------------------------------------------------------------------
# videos
# --------------------------------------------------------------------------------------------
PRED_COLOUR = (255, 64, 64)  # RGB red
GT_COLOUR = (64, 255, 64)  # RGB green


def draw_boxes(
    image: np.ndarray,
    pred: Any = None,
    gt: Any = None,
    *,
    label: str | None = None,
    thickness: int = 2,
) -> np.ndarray:
    """Copy of the RGB ``image`` with the predicted box (red) and ground truth (green) drawn;
    NaN or empty boxes are not drawn; ``label`` is written in the top-left corner."""
    import cv2

    from vtrack.tracking.base import check_image

    out = check_image(image).copy()
    for box, colour in ((gt, GT_COLOUR), (pred, PRED_COLOUR)):
        if box is None:
            continue
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.shape != (4,):
            raise ValueError(f"box: expected 4 numbers (x, y, w, h), got shape {b.shape}")
        if not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
            continue
        p1 = (int(round(b[0])), int(round(b[1])))
        p2 = (int(round(b[0] + b[2])), int(round(b[1] + b[3])))
        cv2.rectangle(out, p1, p2, colour, thickness)
    if label:
        cv2.putText(out, label, (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class VideoWriter:
    """MP4 writer (``cv2.VideoWriter``, fourcc ``mp4v``) for RGB frames, written atomically:
    frames go to a temporary file renamed to ``path`` on :meth:`close`.

    Use as a context manager; the frame size is fixed by the first frame.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0) -> None:
        try:
            fps = float(fps)
        except (TypeError, ValueError):
            raise TypeError(f"fps: expected a positive number, got {fps!r}") from None
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps: expected a positive number, got {fps}")
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise ValueError(f"path: expected an .mp4 file, got {self.path.name!r}")
        self.fps = fps
        self.frames = 0
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self._file: AtomicPath | None = None

    def write(self, image: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame."""
        import cv2

        from vtrack.tracking.base import check_image

        img = check_image(image)
        size = (img.shape[1], img.shape[0])
        if self._writer is None:
            self._file = AtomicPath(self.path, keep_suffix=True)
            self._writer = cv2.VideoWriter(str(self._file.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self._writer.isOpened():
                self._discard()
                raise OSError(f"path: OpenCV cannot open an mp4v video writer for {self.path}")
            self._size = size
        elif size != self._size:
            raise ValueError(f"image: expected frames of {self._size[0]}x{self._size[1]}, got {size[0]}x{size[1]}")
        self._writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._file is not None:
            self._file.discard()
        self._file = None

    def close(self) -> None:
        """Finish the file and move it to ``path`` (nothing is written without frames)."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        assert self._file is not None
        self._file.commit()
        self._file = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    pred: Any = None,
    gt: Any = None,
    *,
    fps: float = 30.0,
    label: str | None = None,
) -> Path:
    """Write ``frames`` (RGB) to an mp4 with the predicted (red) and ground-truth (green) boxes
    ``[T, 4]`` drawn; either may be None. Returns the path."""
    p = None if pred is None else np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    g = None if gt is None else np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    with VideoWriter(path, fps) as writer:
        for i, frame in enumerate(frames):
            pb = p[i] if p is not None and i < len(p) else None
            gb = g[i] if g is not None and i < len(g) else None
            writer.write(draw_boxes(frame, pb, gb, label=f"{label} #{i}" if label else None))
        if writer.frames == 0:
            raise ValueError("frames: expected at least one frame, got none")
    return Path(path)
