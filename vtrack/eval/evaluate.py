"""Score a tracker's result folder against the ground truth and write ``summary.json``.

The summary holds everything :mod:`vtrack.eval.reports` needs (scores, curves, per-sequence
scores, FPS and scalar attributes), so reports never need the dataset again.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from vtrack.data.sequence import Sequence
from vtrack.eval import metrics as M
from vtrack.eval.runner import PROTOCOLS, get_layout
from vtrack.io import atomic_write_text, read_json

__all__ = ["SUMMARY_FILE", "PRIMARY_SCORE", "evaluate_results", "load_summary", "scalar_attributes"]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
#: The score each protocol ranks trackers by.
PRIMARY_SCORE = {"ope": "auc", "got10k": "ao", "vot": "eao", "trackingnet": "success"}
_SKIP_ATTRIBUTES = {"first_frame_only", "meta", "resolution"}


def scalar_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly scalar attributes of a sequence (bool, str, int, float), for breakdowns."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in _SKIP_ATTRIBUTES:
            continue
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool):
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _frame_size(seq: Sequence) -> tuple[int, int]:
    res = seq.attributes.get("resolution")
    if res is not None:
        w, h = (int(v) for v in res)
        return w, h
    img = seq.frame(0)
    return img.shape[1], img.shape[0]


def _fps(times: list[np.ndarray]) -> tuple[float, float, int]:
    total = float(sum(float(np.sum(t)) for t in times))
    frames = int(sum(len(t) for t in times))
    return (frames / total if total > 0 else float("nan")), total, frames


def _curve(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def evaluate_results(
    result_dir: str | os.PathLike,
    sequences: Iterable[Sequence],
    *,
    protocol: str = "ope",
    mode: str = "pytracking",
    exclude_invalid: bool = False,
    eao_interval: tuple[int, int] | str = "vot2018",
    burnin: int = 10,
    tracker: str | None = None,
    dataset: str | None = None,
    allow_missing: bool = False,
    write: bool = True,
) -> dict[str, Any]:
    """Score the results in ``result_dir`` (written by :func:`vtrack.eval.runner.run_tracker`).

    Args:
        result_dir: one tracker's result folder in ``protocol``'s layout.
        sequences: the ground truth.
        protocol: ``"ope"``, ``"got10k"``, ``"vot"`` or ``"trackingnet"``.
        mode, exclude_invalid: OPE conventions (see :func:`vtrack.eval.metrics.ope_sequence`).
        eao_interval: VOT EAO range (``(low, high)`` or an edition such as ``"vot2018"``).
        burnin: VOT accuracy burn-in frames after each initialization.
        tracker, dataset: names recorded in the summary (default: the folder name / the
            sequences' dataset).
        allow_missing: score the sequences that have results instead of failing on missing ones.
        write: write ``summary.json`` into ``result_dir``.

    Returns:
        The summary: ``tracker``, ``dataset``, ``protocol``, ``options``, ``scores``, ``curves``
        (``{"success": {"x": [...], "y": [...]}, ...}``), ``sequences`` (per-sequence scores,
        frames, fps, attributes) and ``fps``.
    """
    layout = get_layout(protocol)
    root = Path(result_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"result_dir: folder not found: {root}")
    seqs = list(sequences)
    if not seqs:
        raise ValueError("sequences: expected at least one sequence, got none")
    loaded: dict[str, tuple[Any, list[np.ndarray]]] = {}
    missing: list[str] = []
    for s in seqs:
        try:
            loaded[s.name] = layout.read(root, s.name)
        except FileNotFoundError:
            missing.append(s.name)
    if missing and not allow_missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"result_dir: {root} has no {protocol} results for {len(missing)} sequence(s): "
            f"{', '.join(missing[:5])}{more}"
        )
    if missing:
        logger.warning("%d sequences without results are left out: %s", len(missing), ", ".join(missing[:5]))
    seqs = [s for s in seqs if s.name in loaded]
    if not seqs:
        raise FileNotFoundError(f"result_dir: {root} has no results for any sequence")
    for s in seqs:
        if s.attributes.get("first_frame_only", False):
            raise ValueError(
                f"sequences: {s.name!r} has only its first box public (a test split); "
                "submit the result folder to the benchmark's server instead"
            )
    per_seq: dict[str, dict[str, Any]] = {}
    all_times: list[np.ndarray] = []
    for s in seqs:
        fps, _, frames = _fps(loaded[s.name][1])
        all_times.extend(loaded[s.name][1])
        per_seq[s.name] = {"frames": len(s), "fps": fps, "attributes": scalar_attributes(s.attributes)}
    summary: dict[str, Any] = {
        "tracker": tracker or root.name,
        "dataset": dataset or (seqs[0].dataset or "unknown"),
        "protocol": protocol,
        "options": {},
        "sequences": per_seq,
    }
    if protocol == "ope":
        _score_ope(summary, seqs, loaded, mode=mode, exclude_invalid=exclude_invalid)
    elif protocol == "trackingnet":
        _score_trackingnet(summary, seqs, loaded)
    elif protocol == "got10k":
        _score_got10k(summary, seqs, loaded)
    else:
        _score_vot(summary, seqs, loaded, eao_interval=eao_interval, burnin=burnin)
    fps, total, frames = _fps(all_times)
    summary["fps"] = fps
    summary["scores"]["fps"] = fps
    summary["primary"] = PRIMARY_SCORE[protocol]
    summary = _plain(summary)
    if write:
        atomic_write_text(root / SUMMARY_FILE, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return summary


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, tuples to lists, NaN/inf to None
    (e.g. the AO of a GOT-10k sequence without any counted frame)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _single(boxes: Any, seq: Sequence) -> np.ndarray:
    """The (first) predicted box array of ``seq``, matched to its ground-truth length.

    More boxes than ground-truth rows (LaSOT's monkey-17 has fewer boxes than frames) are cut
    to the ground truth as pytracking does; fewer boxes mean incomplete results (an error).
    """
    pred = boxes[0] if isinstance(boxes, list) else boxes
    n = len(seq.boxes)
    if len(pred) > n:
        logger.warning("%s: %d predicted boxes for %d ground-truth rows; extra boxes ignored", seq.name, len(pred), n)
        pred = pred[:n]
    elif len(pred) < n:
        raise ValueError(f"results: {seq.name!r} has {len(pred)} boxes for {n} ground-truth frames (incomplete run)")
    return pred


def _score_ope(summary: dict, seqs: list[Sequence], loaded: dict, *, mode: str, exclude_invalid: bool) -> None:
    curves = []
    for s in seqs:
        pred = _single(loaded[s.name][0], s)
        c = M.ope_sequence(pred, s.boxes, s.valid, mode=mode, exclude_invalid=exclude_invalid, name=s.name)
        curves.append(c)
        summary["sequences"][s.name].update(
            auc=c.auc,
            precision=float(c.precision[20]),
            norm_precision=float(c.norm_precision[20]),
            success=[float(v) for v in c.success],
        )
    res = M.ope_summary(curves, mode=mode)
    summary["options"] = {"mode": mode, "exclude_invalid": exclude_invalid}
    summary["scores"] = res.as_dict()
    summary["curves"] = {
        "success": _curve(M.SUCCESS_THRESHOLDS, res.success),
        "precision": _curve(M.PRECISION_THRESHOLDS, res.precision),
        "norm_precision": _curve(M.NORM_PRECISION_THRESHOLDS, res.norm_precision),
    }


def _score_trackingnet(summary: dict, seqs: list[Sequence], loaded: dict) -> None:
    curves = []
    for s in seqs:
        pred = _single(loaded[s.name][0], s)
        c = M.trackingnet_sequence(pred, s.boxes, name=s.name)
        curves.append(c)
        one = M.trackingnet_summary([c])
        summary["sequences"][s.name].update(
            auc=one["success"], precision=one["precision"], norm_precision=one["norm_precision"],
            success=[float(v) for v in c.success],
        )
    res = M.trackingnet_summary(curves)
    summary["scores"] = {k: res[k] for k in ("success", "precision", "norm_precision", "sequences")}
    summary["curves"] = {
        "success": _curve(np.linspace(0, 1, 21), res["curves"]["success"]),
        "precision": _curve(np.linspace(0, 50, 21), res["curves"]["precision"]),
        "norm_precision": _curve(np.linspace(0, 0.5, 21), res["curves"]["norm_precision"]),
    }


def got10k_scores(preds: dict[str, Any], sequences: Iterable[Sequence], times: dict[str, Any] | None = None
                  ) -> M.GOT10kResult:
    """GOT-10k toolkit scores (AO, SR0.5, SR0.75) of ``preds`` (sequence name -> boxes, or a list of
    repetitions) on ``sequences``, as ``vtrack eval`` reports them: frames whose target is absent
    (cover 0; where a dataset has no cover labels, its invalid frames) are left out, as the
    official toolkit does. Every AO that vtrack prints (eval, the zoo manifest, the demo, the
    tuning script) comes from here."""
    seqs = list(sequences)
    missing = [s.name for s in seqs if s.name not in preds]
    if missing:
        raise ValueError(f"preds: no boxes for {len(missing)} sequence(s): {', '.join(missing[:5])}")
    covers = {s.name: s.attributes.get("cover") for s in seqs}
    for s in seqs:
        if covers[s.name] is None:  # no cover.label: valid flags stand in (absent = cover 0)
            covers[s.name] = s.valid.astype(np.int64)
    sizes = {s.name: _frame_size(s) for s in seqs}
    return M.got10k_metrics({s.name: preds[s.name] for s in seqs}, {s.name: s.boxes for s in seqs},
                            covers=covers, resolutions=sizes, times=times)


def _score_got10k(summary: dict, seqs: list[Sequence], loaded: dict) -> None:
    preds = {s.name: loaded[s.name][0] for s in seqs}
    times = {s.name: loaded[s.name][1] or None for s in seqs}
    res = got10k_scores(preds, seqs, times=times)
    for name, vals in res.per_sequence.items():
        summary["sequences"][name].update(ao=vals["ao"], sr50=vals["sr50"])
    summary["scores"] = res.as_dict()
    summary["curves"] = {"success": _curve(M.GOT10K_THRESHOLDS, res.success_curve)}


def _score_vot(summary: dict, seqs: list[Sequence], loaded: dict, *, eao_interval: Any, burnin: int) -> None:
    runs = {s.name: loaded[s.name][0] for s in seqs}
    gts = {s.name: M.vot_ground_truth(s) for s in seqs}
    sizes = {s.name: _frame_size(s) for s in seqs}
    ar = M.vot_accuracy_robustness(runs, gts, sizes, burnin=burnin)
    for name, vals in ar.per_sequence.items():
        summary["sequences"][name].update(accuracy=vals["accuracy"], failures=vals["failures"])
    summary["options"] = {"eao_interval": eao_interval if isinstance(eao_interval, str) else list(eao_interval),
                          "burnin": burnin}
    summary["scores"] = ar.as_dict()
    summary["curves"] = {}
    try:
        eao = M.vot_eao(runs, gts, sizes, interval=eao_interval)
    except ValueError as err:
        # the sequences are shorter than the EAO range: keep accuracy/robustness, say why EAO is missing
        logger.warning("EAO not computed: %s", err)
        summary["warnings"] = [f"EAO not computed: {err}"]
        return
    summary["scores"]["eao"] = eao["eao"]
    curve = eao["curve"]
    # x = frames after the (re)initialization averaged (the toolkit's curve index)
    summary["curves"] = {"eao": _curve(np.arange(1, len(curve)), curve[1:])}


def load_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``summary.json`` (or the one inside a result folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    if not p.is_file():
        raise FileNotFoundError(f"results: no {SUMMARY_FILE} at {p} (run `vtrack eval` first)")
    data = read_json(p, what="results")
    for key in ("tracker", "protocol", "scores", "sequences"):
        if key not in data:
            raise ValueError(f"results: {p} lacks the key {key!r}; not a vtrack summary")
    if data["protocol"] not in PROTOCOLS:
        raise ValueError(f"results: {p} has an unknown protocol {data['protocol']!r}")
    return data
