"""The tracker API shared by every tracker (pytracking-style initialize/track)."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrackResult:
    """One frame's output: box as (x, y, w, h) in image pixels, a confidence score, extras."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate an HxWx3 uint8 RGB image (numpy) and return it."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array HxWx3 uint8 (RGB), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected shape HxWx3, got {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name}: expected a non-empty image, got shape {tuple(image.shape)}")
    return image


def check_box(box: Any, name: str = "box") -> tuple[float, float, float, float]:
    """Validate an (x, y, w, h) box with finite values and positive size."""
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected 4 numbers (x, y, w, h), got {box!r}") from None
    if len(vals) != 4:
        raise ValueError(f"{name}: expected 4 numbers (x, y, w, h), got {len(vals)}")
    if not all(np.isfinite(vals)):
        raise ValueError(f"{name}: expected finite values, got {vals}")
    if vals[2] <= 0 or vals[3] <= 0:
        raise ValueError(f"{name}: expected positive width and height, got w={vals[2]}, h={vals[3]}")
    return vals[0], vals[1], vals[2], vals[3]


class Tracker(abc.ABC):
    """Base class: ``initialize(image, box, info)`` once, then ``track(image)`` per frame.

    Images are HxWx3 uint8 RGB numpy arrays; boxes are (x, y, w, h) in pixels. ``info`` may
    carry a language description under ``"language"`` for trackers that use one.
    """

    name: str = "tracker"

    def initialize(self, image: np.ndarray, box: Any, info: dict[str, Any] | None = None) -> None:
        """Start tracking the object in ``box`` on the first frame ``image``."""
        self._initialize(check_image(image), check_box(box), dict(info or {}))
        self._initialized = True

    def track(self, image: np.ndarray) -> TrackResult:
        """Locate the target in the next frame."""
        if not getattr(self, "_initialized", False):
            raise RuntimeError(f"{type(self).__name__}.track called before initialize")
        return self._track(check_image(image))

    @abc.abstractmethod
    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        """Subclass hook for :meth:`initialize` (inputs already validated)."""

    @abc.abstractmethod
    def _track(self, image: np.ndarray) -> TrackResult:
        """Subclass hook for :meth:`track` (input already validated)."""
