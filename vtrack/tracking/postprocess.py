"""Shared state update of the deep trackers: bounded, smoothed scale and a way back after a loss.

A raw per-frame box from a small network is noisy. Used directly as the next search centre and
size (OSTrack's tracker), one bad frame shrinks the box, the next search crop then zooms in on the
wrong place and the tracker never recovers. :func:`update_state` applies what SiamFC++'s and
pytracking's trackers apply:

- the size follows the prediction with a learning rate ``size_lr``, optionally scaled by the
  confidence (``lr = size_lr * score``, SiamFC++), and may change by at most ``max_scale_step``
  per frame;
- the size stays within ``[min_size_ratio, max_size_ratio]`` times the initial size;
- when the confidence falls below ``lost_threshold`` the target counts as lost: the box stays
  where it was and the search area grows by ``lost_search_growth`` per lost frame (up to
  ``max_search_growth``) until the target is found again (pytracking's "not_found" handling).

:class:`StateUpdateConfig` is the one config type of these options; a tracker family embeds it in
its ``tracker`` section as ``update``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrack.tracking.crops import clip_box

__all__ = ["StateUpdateConfig", "TrackState", "update_state", "blend_window"]


@dataclass
class StateUpdateConfig:
    """Options of :func:`update_state` (defaults tuned on the synthetic **val** split, docs/zoo.md).

    Attributes:
        size_lr: weight of the predicted size (0: size never changes; 1: OSTrack).
        size_lr_by_score: multiply ``size_lr`` by the frame's confidence (SiamFC++).
        max_scale_step: largest size ratio between two frames (>= 1; ``inf``: unbounded).
        min_size_ratio, max_size_ratio: size bounds relative to the initial box.
        lost_threshold: confidence under which the target counts as lost (0: never).
        lost_search_growth: search-area factor per lost frame (1: no growth).
        max_search_growth: the largest search-area factor.
    """

    size_lr: float = 1.0
    size_lr_by_score: bool = False
    max_scale_step: float = math.inf
    min_size_ratio: float = 0.0
    max_size_ratio: float = math.inf
    lost_threshold: float = 0.0
    lost_search_growth: float = 1.0
    max_search_growth: float = 1.0

    def __post_init__(self) -> None:
        checks = (
            ("size_lr", 0.0 <= self.size_lr <= 1.0, "a value in [0, 1]"),
            ("max_scale_step", self.max_scale_step >= 1.0, "a value >= 1"),
            ("min_size_ratio", 0.0 <= self.min_size_ratio <= 1.0, "a value in [0, 1]"),
            ("max_size_ratio", self.max_size_ratio >= 1.0, "a value >= 1"),
            ("lost_threshold", 0.0 <= self.lost_threshold <= 1.0, "a value in [0, 1]"),
            ("lost_search_growth", self.lost_search_growth >= 1.0, "a value >= 1"),
            ("max_search_growth", self.max_search_growth >= 1.0, "a value >= 1"),
        )
        for name, ok, expected in checks:
            value = getattr(self, name)
            if name == "size_lr" and not isinstance(self.size_lr_by_score, bool):
                raise TypeError(f"update.size_lr_by_score: expected a bool, got {self.size_lr_by_score!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not ok:
                raise ValueError(f"update.{name}: expected {expected}, got {value!r}")


@dataclass
class TrackState:
    """What the update carries between frames: the box, the initial size and the loss streak."""

    box: np.ndarray
    init_size: tuple[float, float]
    lost_frames: int = 0

    @classmethod
    def start(cls, box: Any) -> "TrackState":
        """State after ``initialize`` with the first-frame box ``(x, y, w, h)``."""
        b = np.asarray(box, dtype=np.float64)
        return cls(box=b.copy(), init_size=(float(b[2]), float(b[3])))

    def search_growth(self, cfg: StateUpdateConfig) -> float:
        """Factor on the search area for the next frame (grows while the target is lost)."""
        return float(min(cfg.max_search_growth, cfg.lost_search_growth ** self.lost_frames))


def blend_window(score: Any, window: Any, influence: float) -> Any:
    """Rank a score map with a motion prior: ``score * ((1 - influence) + influence * window)``.

    ``influence`` 1 is OSTrack's product with the Hann window; 0 ignores the window.
    """
    if not 0.0 <= float(influence) <= 1.0:
        raise ValueError(f"window_influence: expected a value in [0, 1], got {influence!r}")
    return score * ((1.0 - influence) + influence * window)


def update_state(state: TrackState, predicted: Any, score: float, cfg: StateUpdateConfig,
                 image_size: tuple[int, int]) -> TrackState:
    """Next state from the predicted box ``(x, y, w, h)`` in image pixels and its confidence.

    Args:
        state: the current state (not modified).
        predicted: the network's box for this frame.
        score: its confidence in [0, 1].
        cfg: update options.
        image_size: ``(width, height)`` of the frame.

    Returns:
        The new :class:`TrackState`; ``box`` is inside the image with sides of at least
        ``min(10, width, height)`` pixels.
    """
    W, H = image_size
    pred = np.asarray(predicted, dtype=np.float64)
    if pred.shape != (4,) or not np.all(np.isfinite(pred)):
        raise ValueError(f"predicted: expected 4 finite numbers (x, y, w, h), got {predicted!r}")
    if not math.isfinite(score):
        raise ValueError(f"score: expected a finite confidence, got {score!r}")
    margin = min(10.0, float(W), float(H))
    old = state.box
    if score < cfg.lost_threshold:
        return TrackState(box=old.copy(), init_size=state.init_size, lost_frames=state.lost_frames + 1)
    lr = cfg.size_lr * (min(max(score, 0.0), 1.0) if cfg.size_lr_by_score else 1.0)
    size = np.empty(2)
    for i in (0, 1):
        target = max(pred[2 + i], 1e-6)
        new = old[2 + i] * (1.0 - lr) + target * lr
        new = min(max(new, old[2 + i] / cfg.max_scale_step), old[2 + i] * cfg.max_scale_step)
        init = state.init_size[i]
        size[i] = min(max(new, init * cfg.min_size_ratio), init * cfg.max_size_ratio)
    cx, cy = pred[0] + pred[2] / 2, pred[1] + pred[3] / 2
    box = clip_box([cx - size[0] / 2, cy - size[1] / 2, size[0], size[1]], W, H, min_size=margin)
    return TrackState(box=box, init_size=state.init_size, lost_frames=0)
