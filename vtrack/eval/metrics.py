"""Tracking metrics with the conventions of the official toolkits.

Every definition, and the toolkit it follows, is documented in ``docs/evaluation.md``:

- One-pass evaluation (OTB, UAV123, NfS, LaSOT, TNL2K): :func:`ope_sequence` + :func:`ope_summary`
  (success/AUC, precision at 20 px, normalized precision at 0.2), modes ``"pytracking"`` (default),
  ``"matlab"`` (the OTB/LaSOT/TNL2K MATLAB kits) and ``"got10k"`` (the got10k toolkit's
  ``ExperimentOTB``).
- GOT-10k: :func:`got10k_metrics` (AO, SR0.5, SR0.75 pooled over frames).
- TrackingNet: :func:`trackingnet_sequence` + :func:`trackingnet_summary` (its devkit's rounding,
  ``>=`` and trapezoid areas).
- VOT reset-based, equal to vot-toolkit 0.9.0: :func:`vot_overlap`, :func:`vot_run_accuracy`,
  :func:`vot_accuracy_robustness` (A, R, exp(-30 R / L), failures per 100 frames), :func:`vot_eao`.

Boxes are ``(x, y, w, h)`` float arrays ``[T, 4]`` in image pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence as Seq

import numpy as np

__all__ = [
    "SUCCESS_THRESHOLDS",
    "PRECISION_THRESHOLDS",
    "NORM_PRECISION_THRESHOLDS",
    "GOT10K_THRESHOLDS",
    "VOT_CODE_INIT",
    "VOT_CODE_FAILURE",
    "VOT_CODE_SKIP",
    "VOT_CODE_TRACKED",
    "EAO_RANGES",
    "iou",
    "center_error",
    "normalized_center_error",
    "OPE_MODES",
    "SequenceCurves",
    "OPESummary",
    "ope_sequence",
    "ope_summary",
    "GOT10kResult",
    "got10k_metrics",
    "trackingnet_sequence",
    "trackingnet_summary",
    "vot_overlap",
    "vot_ground_truth",
    "VOTRun",
    "VOTResult",
    "vot_run_accuracy",
    "vot_accuracy_robustness",
    "vot_eao",
]

#: IoU thresholds of the success plot: 0, 0.05, ..., 1 (21 values).
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
#: Centre-error thresholds of the precision plot: 0..50 px (51 values); the score is at 20 px.
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
#: Normalized centre-error thresholds: 0..0.5 step 0.01 (51 values); the score is at 0.20.
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
#: GOT-10k's success-curve grid (101 values); SR0.75 is read from it.
GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_PRECISION_INDEX = 20
_NORM_PRECISION_INDEX = 20

#: VOT trajectory codes (as written in result files) and the in-memory code of a tracked frame.
VOT_CODE_INIT = 1
VOT_CODE_FAILURE = 2
VOT_CODE_SKIP = 0
VOT_CODE_TRACKED = -1
#: EAO sequence-length ranges [low, high] (inclusive) per VOT edition.
EAO_RANGES: dict[str, tuple[int, int]] = {
    "vot2015": (108, 371),
    "vot2016": (108, 371),
    "vot2017": (100, 356),
    "vot2018": (100, 356),
    "vot2019": (46, 291),
}

#: One-pass evaluation conventions (see :func:`ope_sequence`).
OPE_MODES = ("pytracking", "matlab", "got10k")


# --------------------------------------------------------------------------------------------
# input checks and per-frame errors
# --------------------------------------------------------------------------------------------
def _boxes(value: Any, name: str, *, allow_nan: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of boxes [T, 4] (x, y, w, h), got {type(value).__name__}") from None
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected shape [T, 4], got {arr.shape}")
    if not allow_nan and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(arr), axis=1))[0])
        raise ValueError(f"{name}: expected finite values, row {bad} is {arr[bad].tolist()}")
    return arr


def _pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _boxes(pred, "pred", allow_nan=True)
    g = _boxes(gt, "gt", allow_nan=True)
    if len(p) != len(g):
        raise ValueError(f"pred: expected {len(g)} boxes (one per ground-truth frame), got {len(p)}")
    return p, g


def _flags(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} flags, got shape {arr.shape}")
    return arr.astype(bool)


def iou(pred: Any, gt: Any) -> np.ndarray:
    """Plain continuous IoU per frame of two box arrays ``[T, 4]`` (no clipping to the image).

    Frames where either box is NaN give NaN; empty boxes (w or h <= 0) give 0.
    """
    p, g = _pair(pred, gt)
    px2, py2 = p[:, 0] + p[:, 2], p[:, 1] + p[:, 3]
    gx2, gy2 = g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]
    iw = np.minimum(px2, gx2) - np.maximum(p[:, 0], g[:, 0])
    ih = np.minimum(py2, gy2) - np.maximum(p[:, 1], g[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_p = np.clip(p[:, 2], 0, None) * np.clip(p[:, 3], 0, None)
    area_g = np.clip(g[:, 2], 0, None) * np.clip(g[:, 3], 0, None)
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    nan = ~(np.all(np.isfinite(p), axis=1) & np.all(np.isfinite(g), axis=1))
    out[nan] = np.nan
    return out


def _centers(b: np.ndarray) -> np.ndarray:
    return b[:, :2] + b[:, 2:] / 2.0


def center_error(pred: Any, gt: Any) -> np.ndarray:
    """Euclidean distance (pixels) between box centres per frame."""
    p, g = _pair(pred, gt)
    return np.linalg.norm(_centers(p) - _centers(g), axis=1)


def normalized_center_error(pred: Any, gt: Any) -> np.ndarray:
    """Centre offset divided per axis by the ground-truth width/height, then its norm
    (TrackingNet/pytracking normalized precision). Frames with gt w or h <= 0 give inf."""
    p, g = _pair(pred, gt)
    d = _centers(p) - _centers(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt((d[:, 0] / g[:, 2]) ** 2 + (d[:, 1] / g[:, 3]) ** 2)
    out[(g[:, 2] <= 0) | (g[:, 3] <= 0)] = np.inf
    return out


# --------------------------------------------------------------------------------------------
# one-pass evaluation
# --------------------------------------------------------------------------------------------
@dataclass
class SequenceCurves:
    """Per-sequence OPE curves and the per-frame errors they come from.

    ``success[i]`` is the fraction of frames with IoU > ``SUCCESS_THRESHOLDS[i]``; ``precision``
    and ``norm_precision`` the fractions with (normalized) centre error <= each threshold.
    """

    name: str
    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    ious: np.ndarray
    center_errors: np.ndarray
    valid: np.ndarray
    num_frames: int
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def auc(self) -> float:
        """Mean of the success curve."""
        return float(np.mean(self.success))


@dataclass
class OPESummary:
    """Dataset-level OPE result: curves averaged over sequences (each sequence weighs the same)."""

    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    num_sequences: int
    mode: str = "pytracking"

    @property
    def auc(self) -> float:
        """Success AUC: the plain mean of the 21 success values (OTB/LaSOT/pytracking)."""
        return float(np.mean(self.success))

    @property
    def precision_20(self) -> float:
        """Precision at 20 px."""
        return float(self.precision[_PRECISION_INDEX])

    @property
    def norm_precision_20(self) -> float:
        """Normalized precision at 0.20."""
        return float(self.norm_precision[_NORM_PRECISION_INDEX])

    def as_dict(self) -> dict[str, float]:
        """Scalar scores: AUC, P@20, normalized P@0.2 and OP50/OP75 (success at 0.5/0.75)."""
        return {
            "auc": self.auc,
            "precision": self.precision_20,
            "norm_precision": self.norm_precision_20,
            "op50": float(self.success[10]),
            "op75": float(self.success[15]),
            "sequences": float(self.num_sequences),
        }


def _fill_zero_size(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """pytracking: a prediction with w or h == 0 is replaced by the previous (already fixed) box."""
    pred = pred.copy()
    zero = (pred[:, 2] == 0) | (pred[:, 3] == 0)
    for i in np.flatnonzero(zero):
        if i > 0 and np.all(np.isfinite(gt[i])):
            pred[i] = pred[i - 1]
    return pred


def _fill_matlab(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The OTB/LaSOT MATLAB kits' ``calcSeqErrRobust``: from the second frame on, a prediction
    that is NaN or has w or h <= 0 takes the previous (already fixed) box, where the gt has no
    NaN: ``if (isnan(r) | r(3)<=0 | r(4)<=0) & (~isnan(r_anno))``, which MATLAB reads as "all
    four elements true", so a partly-NaN box with positive size is kept."""
    pred = pred.copy()
    for i in range(1, len(pred)):
        r = pred[i]
        bad = bool(np.all(np.isnan(r))) or bool(r[2] <= 0) or bool(r[3] <= 0)
        if bad and not np.any(np.isnan(gt[i])):
            pred[i] = pred[i - 1]
    return pred


def _got10k_rect_iou(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """got10k toolkit ``rect_iou`` without bounds: inter / (union + eps), clipped to [0, 1]."""
    x1 = np.maximum(p[:, 0], g[:, 0])
    y1 = np.maximum(p[:, 1], g[:, 1])
    x2 = np.minimum(p[:, 0] + p[:, 2], g[:, 0] + g[:, 2])
    y2 = np.minimum(p[:, 1] + p[:, 3], g[:, 1] + g[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = p[:, 2] * p[:, 3] + g[:, 2] * g[:, 3] - inter
    with np.errstate(invalid="ignore"):
        return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def ope_sequence(
    pred: Any,
    gt: Any,
    valid: Any = None,
    *,
    mode: str = "pytracking",
    exclude_invalid: bool = False,
    name: str = "",
    attributes: dict[str, Any] | None = None,
) -> SequenceCurves:
    """OPE curves of one sequence.

    Args:
        pred: predicted boxes [T, 4]; must be finite with w, h >= 0 (``"matlab"`` mode: NaN and
            non-positive sizes are allowed and replaced as the MATLAB kits do).
        gt: ground-truth boxes [T, 4]; rows may be NaN where the target is absent.
        valid: [T] bool, False where the dataset marks the target absent (LaSOT full occlusion or
            out of view, GOT-10k absence, NaN rows...); default all True.
        mode: ``"pytracking"`` (default): a frame counts only if ``valid`` and the gt has w, h > 0
            and is finite; other frames fail all three metrics; predictions with w or h == 0 take
            the previous box. ``"matlab"`` (OTB/LaSOT/TNL2K MATLAB kits): NaN or zero/negative-size
            predictions take the previous box (``calcSeqErrRobust``); frames with ``valid`` False
            fail; among the others a gt with any coordinate <= 0 fails the success plot but counts
            as a success for both precision plots (centre error -1). ``"got10k"`` (the got10k
            toolkit's ``ExperimentOTB``, also used for NfS, TColor128, DTB70 and UAV123): IoU =
            inter / (union + eps) clipped to [0, 1]; ``valid`` is ignored (the toolkit reads only
            the ground truth), frames with a NaN gt fail (or leave the denominator with
            ``exclude_invalid``, as its UAV123 experiment), every other frame counts.
        exclude_invalid: pytracking's ``exclude_invalid_frames``: divide by the number of counted
            frames instead of all frames.
        name: sequence name (kept in the result).
        attributes: per-sequence attributes (kept for the attribute breakdown).

    The first frame is counted with the prediction replaced by the ground truth.
    """
    p, g = _pair(pred, gt)
    if mode not in OPE_MODES:
        raise ValueError(f"mode: expected one of {OPE_MODES}, got {mode!r}")
    n = len(g)
    if n == 0:
        raise ValueError(f"gt: sequence {name!r} has no frames")
    if mode == "matlab":
        p = _fill_matlab(p, g)
    else:
        if not np.all(np.isfinite(p)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(p), axis=1))[0])
            raise ValueError(f"pred: sequence {name!r} frame {bad} is not finite: {p[bad].tolist()}")
        if np.any(p[:, 2:] < 0):
            bad = int(np.flatnonzero(np.any(p[:, 2:] < 0, axis=1))[0])
            raise ValueError(f"pred: sequence {name!r} frame {bad} has a negative size: {p[bad].tolist()}")
    flags = np.ones(n, bool) if valid is None else _flags(valid, n, "valid")
    if mode == "pytracking":
        p = _fill_zero_size(p, g)
    if np.all(np.isfinite(g[0])):
        p[0] = g[0]
    finite = np.all(np.isfinite(g), axis=1)
    ious = _got10k_rect_iou(p, g) if mode == "got10k" else iou(p, g)
    cerr = center_error(p, g)
    nerr = normalized_center_error(p, g)
    if mode == "pytracking":
        counted = flags & finite & (g[:, 2] > 0) & (g[:, 3] > 0)
    elif mode == "got10k":
        counted = finite
    else:
        counted = flags & finite
    ious[~counted] = -1.0
    cerr[~counted] = np.inf
    nerr[~counted] = np.inf
    if mode == "matlab":
        nonpos = counted & np.any(g <= 0, axis=1)
        ious[nonpos] = -1.0
        cerr[nonpos] = -1.0
        nerr[nonpos] = -1.0
    # a prediction left NaN (matlab mode: no previous box to take) fails every threshold
    ious[np.isnan(ious)] = -1.0
    cerr[np.isnan(cerr)] = np.inf
    nerr[np.isnan(nerr)] = np.inf
    denom = float(counted.sum()) if exclude_invalid else float(n)
    if denom == 0:
        success = np.zeros(len(SUCCESS_THRESHOLDS))
        precision = np.zeros(len(PRECISION_THRESHOLDS))
        norm_precision = np.zeros(len(NORM_PRECISION_THRESHOLDS))
    else:
        success = (ious[:, None] > SUCCESS_THRESHOLDS[None, :]).sum(0) / denom
        precision = (cerr[:, None] <= PRECISION_THRESHOLDS[None, :]).sum(0) / denom
        norm_precision = (nerr[:, None] <= NORM_PRECISION_THRESHOLDS[None, :]).sum(0) / denom
    return SequenceCurves(
        name=name,
        success=success,
        precision=precision,
        norm_precision=norm_precision,
        ious=ious,
        center_errors=cerr,
        valid=counted,
        num_frames=n,
        attributes=dict(attributes or {}),
    )


def ope_summary(curves: Seq[SequenceCurves], *, mode: str = "pytracking") -> OPESummary:
    """Average per-sequence curves (each sequence weighs the same).

    In ``"matlab"`` mode, sequences whose curve is zero everywhere are dropped from that curve's
    average (the LaSOT/TNL2K MATLAB kits do this).
    """
    if mode not in OPE_MODES:
        raise ValueError(f"mode: expected one of {OPE_MODES}, got {mode!r}")
    if not curves:
        raise ValueError("curves: expected at least one sequence, got none")
    for c in curves:
        if not isinstance(c, SequenceCurves):
            raise TypeError(f"curves: expected SequenceCurves items, got {type(c).__name__}")

    def avg(stack: np.ndarray) -> np.ndarray:
        if mode == "matlab":
            keep = np.any(stack > 0, axis=1)
            if keep.any():
                stack = stack[keep]
        return stack.mean(0)

    return OPESummary(
        success=avg(np.stack([c.success for c in curves])),
        precision=avg(np.stack([c.precision for c in curves])),
        norm_precision=avg(np.stack([c.norm_precision for c in curves])),
        num_sequences=len(curves),
        mode=mode,
    )


# --------------------------------------------------------------------------------------------
# GOT-10k
# --------------------------------------------------------------------------------------------
def _got10k_clip(b: np.ndarray, width: float, height: float) -> np.ndarray:
    """The got10k toolkit's ``rect_iou(bound=...)`` clipping (x, y clipped first, then w, h)."""
    b = b.copy()
    b[:, 0] = np.clip(b[:, 0], 0, width)
    b[:, 1] = np.clip(b[:, 1], 0, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
    return b


def _got10k_iou(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    x1 = np.maximum(p[:, 0], g[:, 0])
    y1 = np.maximum(p[:, 1], g[:, 1])
    x2 = np.minimum(p[:, 0] + p[:, 2], g[:, 0] + g[:, 2])
    y2 = np.minimum(p[:, 1] + p[:, 3], g[:, 1] + g[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = p[:, 2] * p[:, 3] + g[:, 2] * g[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


@dataclass
class GOT10kResult:
    """GOT-10k scores over frames pooled across sequences (and repetitions)."""

    ao: float
    sr50: float
    sr75: float
    success_curve: np.ndarray
    num_frames: int
    per_sequence: dict[str, dict[str, float]]
    fps: float | None = None

    def as_dict(self) -> dict[str, float]:
        """Scalar scores (AO, SR0.5, SR0.75, frames, FPS when known)."""
        out = {"ao": self.ao, "sr50": self.sr50, "sr75": self.sr75, "frames": float(self.num_frames)}
        if self.fps is not None:
            out["fps"] = self.fps
        return out


def got10k_metrics(
    preds: dict[str, Any],
    gts: dict[str, Any],
    *,
    covers: dict[str, Any] | None = None,
    resolutions: dict[str, tuple[int, int]] | None = None,
    times: dict[str, Any] | None = None,
) -> GOT10kResult:
    """AO / SR0.5 / SR0.75 as the official GOT-10k toolkit computes them.

    Args:
        preds: sequence name -> boxes [T, 4], or a list of such arrays (repetitions _001.._003).
        gts: sequence name -> ground truth [T, 4].
        covers: sequence name -> cover labels [T] (0..8); only frames with cover > 0 count.
            A sequence without one counts every frame with a finite gt of positive size.
        resolutions: sequence name -> (width, height); both boxes are clipped to it first.
        times: sequence name -> seconds per frame [T] (or a list per repetition); FPS is
            mean(1 / t) over the positive times of all frames pooled, as the toolkit.

    The first frame is excluded. IoUs of all remaining frames of all sequences and repetitions
    are pooled: AO is their mean (frames weigh the same, not sequences), SR_t = mean(IoU > t);
    SR0.75 is read from the 101-point grid ``linspace(0, 1, 101)`` like the toolkit's curve.
    """
    if not isinstance(preds, dict) or not isinstance(gts, dict):
        raise TypeError("preds, gts: expected dicts mapping sequence names to boxes")
    if not preds:
        raise ValueError("preds: expected at least one sequence, got none")
    pooled: list[np.ndarray] = []
    per_seq: dict[str, dict[str, float]] = {}
    speeds: list[np.ndarray] = []
    for name, runs in preds.items():
        if name not in gts:
            raise ValueError(f"preds: sequence {name!r} has no ground truth in gts")
        g = _boxes(gts[name], f"gts[{name!r}]", allow_nan=True)
        run_list = list(runs) if isinstance(runs, (list, tuple)) else [runs]
        if covers is not None and name in covers and covers[name] is not None:
            keep = _flags(np.asarray(covers[name]) > 0, len(g), f"covers[{name!r}]")
        else:
            keep = np.all(np.isfinite(g), axis=1) & (g[:, 2] > 0) & (g[:, 3] > 0)
        keep = keep[1:]
        seq_ious = []
        for r, run in enumerate(run_list):
            p = _boxes(run, f"preds[{name!r}][{r}]")
            if len(p) != len(g):
                raise ValueError(f"preds[{name!r}][{r}]: expected {len(g)} boxes, got {len(p)}")
            pp, gg = p[1:][keep], g[1:][keep]
            if not np.all(np.isfinite(gg)):
                raise ValueError(f"gts[{name!r}]: counted frames (cover > 0) must have finite boxes")
            if resolutions is not None and name in resolutions:
                w, h = (float(v) for v in resolutions[name])
                pp, gg = _got10k_clip(pp, w, h), _got10k_clip(gg, w, h)
            seq_ious.append(_got10k_iou(pp, gg))
        ious = np.concatenate(seq_ious) if seq_ious else np.zeros(0)
        pooled.append(ious)
        per_seq[name] = {
            "ao": float(ious.mean()) if ious.size else float("nan"),
            "sr50": float((ious > 0.5).mean()) if ious.size else float("nan"),
            "frames": float(ious.size),
        }
        if times is not None and name in times and times[name] is not None:
            t_runs = times[name] if isinstance(times[name], (list, tuple)) else [times[name]]
            for t in t_runs:
                t = np.asarray(t, dtype=np.float64).reshape(-1)
                t = t[np.isfinite(t) & (t > 0)]
                if t.size:
                    speeds.append(t)
    allious = np.concatenate(pooled)
    if allious.size == 0:
        raise ValueError("preds: no frame counts (every sequence has cover == 0 after the first frame)")
    curve = (allious[:, None] > GOT10K_THRESHOLDS[None, :]).mean(0)
    return GOT10kResult(
        ao=float(allious.mean()),
        sr50=float((allious > 0.5).mean()),
        sr75=float(curve[75]),
        success_curve=curve,
        num_frames=int(allious.size),
        per_sequence=per_seq,
        fps=float(np.mean(1.0 / np.concatenate(speeds))) if speeds else None,
    )


# --------------------------------------------------------------------------------------------
# TrackingNet
# --------------------------------------------------------------------------------------------
_TN_SUCCESS = np.linspace(0.0, 1.0, 21)
_TN_PRECISION = np.linspace(0.0, 50.0, 21)
_TN_NORM = np.linspace(0.0, 0.5, 21)


def trackingnet_sequence(pred: Any, gt: Any, *, name: str = "") -> SequenceCurves:
    """TrackingNet devkit curves of one sequence.

    Coordinates are rounded to integers first, the first prediction is replaced by the gt;
    success uses ``IoU >= t`` on ``linspace(0, 1, 21)``, precision ``<=`` on ``linspace(0, 50, 21)``
    and normalized precision ``<=`` on ``linspace(0, 0.5, 21)``. Frames with an empty union fail.
    """
    p, g = _pair(pred, gt)
    if len(g) == 0:
        raise ValueError(f"gt: sequence {name!r} has no frames")
    p, g = np.round(p), np.round(g)
    p[0] = g[0]
    ious = iou(p, g)
    ious[~np.isfinite(ious) | (p[:, 2] * p[:, 3] + g[:, 2] * g[:, 3] <= 0)] = -1.0
    cerr = center_error(p, g)
    nerr = normalized_center_error(p, g)
    cerr[~np.isfinite(cerr)] = np.inf
    nerr[~np.isfinite(nerr)] = np.inf
    n = float(len(g))
    return SequenceCurves(
        name=name,
        success=(ious[:, None] >= _TN_SUCCESS[None, :]).sum(0) / n,
        precision=(cerr[:, None] <= _TN_PRECISION[None, :]).sum(0) / n,
        norm_precision=(nerr[:, None] <= _TN_NORM[None, :]).sum(0) / n,
        ious=ious,
        center_errors=cerr,
        valid=np.ones(len(g), bool),
        num_frames=len(g),
    )


def trackingnet_summary(curves: Seq[SequenceCurves]) -> dict[str, Any]:
    """TrackingNet scores: per-sequence curves averaged, each reported as the trapezoid area over
    the normalized threshold axis (``np.trapz(curve, x=linspace(0, 1, 21))``), not a value at a
    threshold. Returns ``{"success", "precision", "norm_precision", "curves": {...}}``."""
    if not curves:
        raise ValueError("curves: expected at least one sequence, got none")
    x = np.linspace(0.0, 1.0, 21)
    out: dict[str, Any] = {"curves": {}}
    for key in ("success", "precision", "norm_precision"):
        curve = np.stack([getattr(c, key) for c in curves]).mean(0)
        if curve.shape != x.shape:
            raise ValueError(f"curves: expected TrackingNet curves of 21 points, got {curve.shape}")
        out["curves"][key] = curve
        out[key] = float(np.sum((curve[1:] + curve[:-1]) / 2.0 * np.diff(x)))
    out["sequences"] = float(len(curves))
    return out


# --------------------------------------------------------------------------------------------
# VOT reset-based
# --------------------------------------------------------------------------------------------
def _vot_rect_bounds(b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Inclusive pixel bounds ``(left, top, right, bottom)`` of rectangles as vot-toolkit 0.9.0
    computes them: x, y, w and h are each stored in float32 and rounded separately (half to
    even; ``vot/region/shapes.py`` ``Rectangle``, ``vot/region/raster.py`` ``_infer_meta``), then
    ``right = round(x) + round(w) - 1`` (``_bounds_rectangle``)."""
    r = np.round(b.astype(np.float32)).astype(np.float64)
    return r[:, 0], r[:, 1], r[:, 0] + r[:, 2] - 1, r[:, 1] + r[:, 3] - 1


def vot_ground_truth(seq: Any) -> np.ndarray:
    """The regions a VOT sequence's overlaps are computed against (failures and scores): its
    polygons (VOT2015-2019's 8-number ground truth, ``seq.attributes["polygons"]``) when it has
    them, as vot-toolkit rasterises them, else its boxes ``seq.boxes``."""
    polygons = seq.attributes.get("polygons")
    return np.asarray(seq.boxes if polygons is None else polygons, dtype=np.float64)


def _vot_regions(value: Any, name: str) -> np.ndarray:
    """Boxes [T, 4] or polygons [T, 2k] (k >= 3 corners x1, y1, x2, y2, ...), NaN rows allowed."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected boxes [T, 4] or polygons [T, 2k], got {type(value).__name__}") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or not (arr.shape[1] == 4 or (arr.shape[1] >= 6 and arr.shape[1] % 2 == 0)):
        raise ValueError(f"{name}: expected boxes [T, 4] or polygons [T, 2k] with k >= 3, got shape {arr.shape}")
    return arr


def _vot_overlap_rects(p: np.ndarray, g: np.ndarray, W: int, H: int) -> np.ndarray:
    """vot-toolkit's overlap of two rectangle arrays (finite rows), vectorised."""
    pl, pt, pr, pb = _vot_rect_bounds(p)
    gl, gt_, gr, gb = _vot_rect_bounds(g)
    ul, ut = np.minimum(pl, gl), np.minimum(pt, gt_)
    ur, ub = np.maximum(pr, gr), np.maximum(pb, gb)
    identical = (ul >= ur) | (ut >= ub)  # raster.py: "Two empty regions are considered to be identical"
    rl, rt = np.maximum(0, ul), np.maximum(0, ut)
    rr, rb = np.minimum(W - 1, ur), np.minimum(H - 1, ub)
    outside = (rl >= rr) | (rt >= rb)  # raster.py: "outside rasterization bounds"

    def extent(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.clip(hi - lo + 1, 0, None)

    # each box rasterised inside the raster bounds (rasterize_rectangle), then counted
    area_p = extent(np.maximum(pl, rl), np.minimum(pr, rr)) * extent(np.maximum(pt, rt), np.minimum(pb, rb))
    area_g = extent(np.maximum(gl, rl), np.minimum(gr, rr)) * extent(np.maximum(gt_, rt), np.minimum(gb, rb))
    inter = extent(np.maximum.reduce([pl, gl, rl]), np.minimum.reduce([pr, gr, rr])) * extent(
        np.maximum.reduce([pt, gt_, rt]), np.minimum.reduce([pb, gb, rb])
    )
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    out = np.where(outside, 0.0, out)
    return np.where(identical, 1.0, out)


def _vot_polygon_mask(points: np.ndarray, bounds: tuple[int, int, int, int]) -> np.ndarray:
    """vot-toolkit 0.9.0's ``rasterize_polygon`` (``vot/region/raster.py``): the polygon's
    (already rounded) corners minus the bounds' origin, scan-line nodes truncated toward zero,
    sorted, and filled pairwise with the toolkit's rules for repeated nodes and clipping."""
    width, height = bounds[2] - bounds[0] + 1, bounds[3] - bounds[1] + 1
    poly = points - np.array([bounds[0], bounds[1]], dtype=np.float64)
    xi, yi = poly[:, 0], poly[:, 1]
    prev = np.arange(len(poly)) - 1  # j = the previous corner (i - 1, wrapping)
    xj, yj = xi[prev], yi[prev]
    rows = np.arange(height, dtype=np.float64)[:, None]
    cross = (
        ((yi <= rows) & (yj > rows)) | ((yj <= rows) & (yi > rows)) | ((yi < rows) & (yj >= rows))
        | ((yj < rows) & (yi >= rows)) | ((yi == yj) & (yi == rows))
    )
    r, k = yj - yi, xj - xi
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(r != 0, xi + (rows - yi) / np.where(r != 0, r, 1) * k, xi)
    # the toolkit's fill loop, run for all rows at once: per row, sorted nodes (invalid ones last)
    node = np.sort(np.where(cross, np.trunc(np.where(cross, x, 0.0)), np.inf), axis=1)
    node = np.where(np.isfinite(node), node, 0.0).astype(np.int64)  # entries past `nodes` are never read
    nodes = cross.sum(axis=1)
    i = np.zeros(height, dtype=np.int64)
    active = i < nodes - 1
    diff = np.zeros((height, width + 1), dtype=np.int64)
    all_rows = np.arange(height)
    while active.any():
        rows_a = all_rows[active]
        ia = i[active]
        ni, nj = node[rows_a, ia], node[rows_a, ia + 1]
        stop = ni >= width
        skip = ~stop & (ni == nj) & (ia < nodes[active] - 2)
        fill = ~stop & ~skip
        draw = fill & (nj >= 0)
        if draw.any():
            np.add.at(diff, (rows_a[draw], np.maximum(ni[draw], 0)), 1)
            np.add.at(diff, (rows_a[draw], np.minimum(nj[draw], width - 1) + 1), -1)
        i[rows_a] = ia + np.where(skip, 1, 2)
        active[rows_a[stop]] = False
        active &= i < nodes - 1
    return np.cumsum(diff[:, :width], axis=1) > 0


def _vot_overlap_polygon(p: np.ndarray, poly: np.ndarray, W: int, H: int) -> float:
    """vot-toolkit's ``_calculate_overlap`` of a rectangle ``p`` [4] and a polygon [2k]."""
    pl, pt, pr, pb = (float(v[0]) for v in _vot_rect_bounds(p[None]))
    pts = np.round(poly.astype(np.float32).reshape(-1, 2)).astype(np.float64)  # Polygon: float32, rounded
    gl, gt_ = int(round(pts[:, 0].min())), int(round(pts[:, 1].min()))  # _bounds_polygon
    gr, gb = int(round(pts[:, 0].max())), int(round(pts[:, 1].max()))
    ul, ut, ur, ub = min(pl, gl), min(pt, gt_), max(pr, gr), max(pb, gb)
    if ul >= ur or ut >= ub:
        return 1.0
    rb = (int(max(0, ul)), int(max(0, ut)), int(min(W - 1, ur)), int(min(H - 1, ub)))
    if rb[0] >= rb[2] or rb[1] >= rb[3]:
        return 0.0
    rect = np.zeros((rb[3] - rb[1] + 1, rb[2] - rb[0] + 1), dtype=bool)
    left, top = int(max(pl, rb[0]) - rb[0]), int(max(pt, rb[1]) - rb[1])
    right, bottom = int(min(pr, rb[2]) - rb[0]), int(min(pb, rb[3]) - rb[1])
    if right >= left and bottom >= top:
        rect[top : bottom + 1, left : right + 1] = True
    gmask = _vot_polygon_mask(pts, rb)
    union = int(np.count_nonzero(rect | gmask))
    return int(np.count_nonzero(rect & gmask)) / union if union > 0 else 0.0


def vot_overlap(pred: Any, gt: Any, width: int, height: int) -> np.ndarray:
    """VOT region overlap per frame, exactly as vot-toolkit 0.9.0's
    ``calculate_overlap(..., bounds=(width, height))`` (``vot/region/raster.py``).

    ``pred`` holds boxes [T, 4]; ``gt`` boxes [T, 4] or polygons [T, 2k] (VOT2015-2019's 8-number
    ground truth, rasterised as the toolkit does).

    - Each box's x, y, w, h are rounded separately (float32, half to even), so a box covers the
      inclusive pixel columns ``round(x) .. round(x) + round(w) - 1`` (not ``round(x + w - 1)``)
      and rows likewise; a polygon's corners are rounded and its bounds are their min/max.
    - If the union of the two regions' bounds has no extent (``left >= right`` or ``top >=
      bottom``, e.g. two empty boxes) the overlap is 1.
    - The union's bounds are cut to the image ``[0, width-1] x [0, height-1]``; if nothing with
      an extent is left (the regions lie outside the image, or the cut is one pixel wide) it is 0.
    - Otherwise both regions are rasterised inside those bounds and the overlap is
      ``|A and B| / |A or B|`` in pixels (0 when the union holds no pixel).

    Frames where either region is NaN give NaN.
    """
    p = _boxes(pred, "pred", allow_nan=True)
    g = _vot_regions(gt, "gt")
    if len(p) != len(g):
        raise ValueError(f"pred: expected {len(g)} boxes (one per ground-truth frame), got {len(p)}")
    W = int(width)
    H = int(height)
    if W < 1 or H < 1:
        raise ValueError(f"width, height: expected positive image size, got {width}x{height}")
    nan = ~(np.all(np.isfinite(p), axis=1) & np.all(np.isfinite(g), axis=1))
    out = np.full(len(p), np.nan)
    ok = ~nan
    if g.shape[1] == 4:
        out[ok] = _vot_overlap_rects(p[ok], g[ok], W, H)
    else:
        for t in np.flatnonzero(ok):
            out[t] = _vot_overlap_polygon(p[t], g[t], W, H)
    return out


@dataclass
class VOTRun:
    """One reset-based run of a sequence.

    ``codes[t]`` is ``VOT_CODE_INIT`` (1), ``VOT_CODE_FAILURE`` (2), ``VOT_CODE_SKIP`` (0) or
    ``VOT_CODE_TRACKED`` (-1, a box in ``boxes[t]``); ``boxes`` is [T, 4] with NaN rows where no box.
    """

    codes: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes, dtype=np.int64).reshape(-1)
        self.boxes = _boxes(self.boxes, "boxes", allow_nan=True)
        if len(self.codes) != len(self.boxes):
            raise ValueError(f"codes: expected {len(self.boxes)} codes (one per box), got {len(self.codes)}")
        known = np.isin(self.codes, (VOT_CODE_INIT, VOT_CODE_FAILURE, VOT_CODE_SKIP, VOT_CODE_TRACKED))
        if not known.all():
            raise ValueError(f"codes: unknown code {self.codes[~known][0]} (expected 1, 2, 0 or -1)")
        if len(self.codes) and self.codes[0] != VOT_CODE_INIT:
            raise ValueError(f"codes: a run must start with an initialization (1), got {self.codes[0]}")

    @property
    def failures(self) -> int:
        """Number of failures in the run."""
        return int(np.sum(self.codes == VOT_CODE_FAILURE))

    def overlaps(self, gt: Any, width: int, height: int) -> np.ndarray:
        """Per-frame overlap with the ground truth: :func:`vot_overlap` on tracked frames, 0 on
        init, failure and skipped frames (the toolkit stores no region there, and an empty
        region overlaps a non-empty ground truth 0); NaN where the ground truth is NaN."""
        out = np.zeros(len(self.codes))
        tracked = self.codes == VOT_CODE_TRACKED
        g = _vot_regions(gt, "gt")
        if len(g) != len(self.codes):
            raise ValueError(f"gt: expected {len(self.codes)} regions (one per frame), got {len(g)}")
        if tracked.any():
            out[tracked] = vot_overlap(self.boxes[tracked], g[tracked], width, height)
        out[~np.all(np.isfinite(g), axis=1)] = np.nan
        return out


@dataclass
class VOTResult:
    """VOT accuracy/robustness summary over a dataset (vot-toolkit 0.9.0's AR analysis).

    ``accuracy`` and ``failures_mean`` are the toolkit's A and R; ``robustness_exp`` the
    robustness of its AR plot, ``exp(-sensitivity * failures_mean / mean_length)``;
    ``failures`` the total over sequences and ``robustness`` failures per 100 frames (pysot's R).
    """

    accuracy: float
    failures: float
    robustness: float
    failures_mean: float
    robustness_exp: float
    num_frames: int
    per_sequence: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, float]:
        """Scalar scores."""
        return {
            "accuracy": self.accuracy,
            "failures": self.failures,
            "robustness": self.robustness,
            "failures_mean": self.failures_mean,
            "robustness_exp": self.robustness_exp,
            "frames": float(self.num_frames),
        }


def _run_list(rs: Any) -> list[VOTRun]:
    return list(rs) if isinstance(rs, (list, tuple)) else [rs]


def _check_runs(runs: dict[str, Any], gts: dict[str, Any], sizes: dict[str, tuple[int, int]]) -> None:
    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs: expected a non-empty dict mapping sequence names to VOTRun lists")
    for name, rs in runs.items():
        if name not in gts or name not in sizes:
            raise ValueError(f"runs: sequence {name!r} has no ground truth/size in gts/sizes")
        items = _run_list(rs)
        if not items:
            raise ValueError(f"runs[{name!r}]: expected at least one run, got none")
        for r in items:
            if not isinstance(r, VOTRun):
                raise TypeError(f"runs[{name!r}]: expected VOTRun items, got {type(r).__name__}")
            if len(r.codes) != len(items[0].codes):
                raise ValueError(
                    f"runs[{name!r}]: expected runs of one length ({len(items[0].codes)} frames), got {len(r.codes)}"
                )


def vot_run_accuracy(run: VOTRun, overlaps: np.ndarray, *, burnin: int = 10) -> float:
    """Accuracy of one run as vot-toolkit 0.9.0's ``compute_accuracy`` (``vot/analysis/supervised.py``).

    The mean overlap over tracked frames, leaving out the ``burnin`` frames that start at each
    (re)initialization (init frame included), failure and skipped frames. A run with no such
    frame scores **0** (the toolkit returns ``0, 0``). Frames without ground truth (NaN overlap)
    are left out too (VOT short-term sequences have none).
    """
    use = run.codes == VOT_CODE_TRACKED
    for s in np.flatnonzero(run.codes == VOT_CODE_INIT):
        use[s : s + burnin] = False
    use &= np.isfinite(overlaps)
    return float(np.mean(overlaps[use])) if use.any() else 0.0


def vot_accuracy_robustness(
    runs: dict[str, Any],
    gts: dict[str, Any],
    sizes: dict[str, tuple[int, int]],
    *,
    burnin: int = 10,
    sensitivity: float = 30.0,
) -> VOTResult:
    """VOT accuracy and robustness of reset-based runs, as vot-toolkit 0.9.0's
    ``AccuracyRobustness`` and ``AverageAccuracyRobustness`` (``vot/analysis/supervised.py``).

    Per sequence: accuracy = mean over runs of :func:`vot_run_accuracy` (a run without any
    frame outside burn-in counts 0, and the sequence keeps its weight); failures = mean number
    of failures over runs. Dataset: ``accuracy`` and ``failures_mean`` are the means over
    sequences **weighted by their length** L_s (the toolkit's A and R); ``robustness_exp`` =
    ``exp(-sensitivity * failures_mean / mean(L_s))`` (the AR plot's robustness). Also:
    ``failures`` = total over sequences, ``robustness`` = failures per 100 frames (pysot's R).
    """
    _check_runs(runs, gts, sizes)
    if isinstance(burnin, bool) or not isinstance(burnin, int) or burnin < 0:
        raise ValueError(f"burnin: expected an int >= 0, got {burnin!r}")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, (int, float)) or not sensitivity > 0:
        raise ValueError(f"sensitivity: expected a number > 0, got {sensitivity!r}")
    per_seq: dict[str, dict[str, float]] = {}
    acc_w = fail_w = 0.0
    total_failures = 0.0
    total_frames = 0
    for name, rs in runs.items():
        items = _run_list(rs)
        w, h = sizes[name]
        accs = [vot_run_accuracy(r, r.overlaps(gts[name], w, h), burnin=burnin) for r in items]
        acc = float(np.mean(accs))
        fails = float(np.mean([r.failures for r in items]))
        n = len(items[0].codes)
        per_seq[name] = {"accuracy": acc, "failures": fails, "frames": float(n)}
        acc_w += acc * n
        fail_w += fails * n
        total_failures += fails
        total_frames += n
    if total_frames == 0:
        raise ValueError("runs: every run is empty (no frames)")
    failures_mean = fail_w / total_frames
    mean_length = total_frames / len(runs)
    return VOTResult(
        accuracy=acc_w / total_frames,
        failures=total_failures,
        robustness=100.0 * total_failures / total_frames,
        failures_mean=failures_mean,
        robustness_exp=float(np.exp(-float(sensitivity) * failures_mean / mean_length)),
        num_frames=total_frames,
        per_sequence=per_seq,
    )


def _segments(run: VOTRun, overlaps: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """A run's EAO segments as vot-toolkit 0.9.0's ``EAOCurve.subcompute``: the k-th segment runs
    from the k-th initialization up to the frame before the k-th failure (``failed=True``); after
    the last failure, a re-initialization starts a final segment to the end (``failed=False``),
    as does the whole run when it never fails. Overlaps are those of :meth:`VOTRun.overlaps`
    with NaN (no ground truth) read as 0."""
    ov = np.nan_to_num(overlaps, nan=0.0)
    fails = np.flatnonzero(run.codes == VOT_CODE_FAILURE)
    inits = np.flatnonzero(run.codes == VOT_CODE_INIT)
    if not fails.size:
        return [(ov, False)]
    segs = [(ov[inits[k] : fails[k]], True) for k in range(len(fails))]
    if len(inits) > len(fails):
        segs.append((ov[inits[-1] :], False))
    return segs


def _eao_interval(interval: tuple[int, int] | str) -> tuple[int, int]:
    if isinstance(interval, str):
        if interval not in EAO_RANGES:
            raise ValueError(f"interval: expected (low, high) or one of {sorted(EAO_RANGES)}, got {interval!r}")
        return EAO_RANGES[interval]
    try:
        low, high = (int(v) for v in interval)
    except (TypeError, ValueError):
        raise TypeError(f"interval: expected (low, high), got {interval!r}") from None
    if not 1 <= low <= high:
        raise ValueError(f"interval: expected 1 <= low <= high, got {interval!r}")
    return low, high


def vot_eao(
    runs: dict[str, Any],
    gts: dict[str, Any],
    sizes: dict[str, tuple[int, int]],
    *,
    interval: tuple[int, int] | str = "vot2018",
) -> dict[str, Any]:
    """Expected average overlap of reset-based runs, as vot-toolkit 0.9.0's ``EAOCurve`` and
    ``EAOScore`` (``compute_eao_curve`` in ``vot/analysis/supervised.py``).

    Every run of every sequence is split into segments (:func:`_segments`), each of weight 1.
    A segment that ended in a failure is zero-padded up to the length of the **longest
    segment**; a final segment without failure keeps its own length. ``curve[j]`` (j >= 1) is
    the mean over the segments that reach index j (padded ones always do) of their mean overlap
    over frames ``1 .. j`` (the init frame 0 excluded); ``curve[0]`` is the mean overlap of the
    init frames (0: no region is stored there). EAO = mean of ``curve[low .. high]`` (inclusive,
    indexed exactly so; an interval past the curve's end is cut there), with ``interval`` a
    ``(low, high)`` pair or a VOT edition from :data:`EAO_RANGES` (VOT2017/2018: [100, 356]).

    Returns ``{"eao", "curve", "interval"}``. Raises ValueError when ``low`` lies beyond the
    longest segment (the toolkit would return NaN).
    """
    _check_runs(runs, gts, sizes)
    low, high = _eao_interval(interval)
    segs: list[tuple[np.ndarray, bool]] = []
    for name, rs in runs.items():
        w, h = sizes[name]
        for r in _run_list(rs):
            segs.extend(_segments(r, r.overlaps(gts[name], w, h)))
    max_len = max(len(s) for s, _ in segs)
    if low >= max_len:
        longest_seq = max(len(_run_list(rs)[0].codes) for rs in runs.values())
        raise ValueError(
            f"interval: low={low} reaches beyond the longest segment ({max_len} frames, curve indices "
            f"0..{max_len - 1}; the longest sequence has {longest_seq}); pass a shorter interval"
        )
    padded = np.zeros((len(segs), max_len))
    alive = np.zeros((len(segs), max_len), dtype=bool)
    for i, (s, failed) in enumerate(segs):
        padded[i, : len(s)] = s
        alive[i] = True if failed else np.arange(max_len) < len(s)
    curve = np.empty(max_len)
    curve[0] = padded[alive[:, 0], 0].mean()
    if max_len > 1:
        means = np.cumsum(padded[:, 1:], axis=1) / np.arange(1, max_len)  # mean of frames 1..j
        curve[1:] = np.sum(means * alive[:, 1:], axis=0) / np.sum(alive[:, 1:], axis=0)
    eao = float(np.mean(curve[low : high + 1]))
    return {"eao": eao, "curve": curve, "interval": (low, high)}
