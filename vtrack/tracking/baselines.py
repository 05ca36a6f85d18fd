"""Reference trackers that anchor the numbers: a static box and OpenCV's CSRT/KCF.

OpenCV's trackers live in opencv-contrib (``opencv-contrib-python-headless``); without it
:class:`OpenCVTracker` raises :class:`TrackerUnavailableError` naming the package to install.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from vtrack.tracking.base import Tracker, TrackResult

__all__ = ["StaticTracker", "OpenCVTracker", "TrackerUnavailableError", "opencv_tracker_available"]

logger = logging.getLogger(__name__)

_OPENCV_KINDS = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF"}


class TrackerUnavailableError(ImportError):
    """A tracker needs an optional dependency that is not installed."""


class StaticTracker(Tracker):
    """Returns the initial box on every frame (the lower bound any tracker must beat)."""

    name = "static"

    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        self._box = box

    def _track(self, image: np.ndarray) -> TrackResult:
        return TrackResult(self._box, 1.0)


def _opencv_constructor(kind: str) -> Callable[[], Any] | None:
    """The ``cv2`` factory for ``kind`` across OpenCV versions (4.x ``TrackerCSRT_create``,
    ``TrackerCSRT.create``, 5.x/legacy ``cv2.legacy``), or None."""
    import cv2

    cls = _OPENCV_KINDS[kind]
    for owner in (cv2, getattr(cv2, "legacy", None)):
        if owner is None:
            continue
        fn = getattr(owner, f"{cls}_create", None)
        if callable(fn):
            return fn
        klass = getattr(owner, cls, None)
        if klass is not None and callable(getattr(klass, "create", None)):
            return klass.create
    return None


def opencv_tracker_available(kind: str) -> bool:
    """True when OpenCV provides the ``"csrt"`` or ``"kcf"`` tracker (opencv-contrib)."""
    if kind not in _OPENCV_KINDS:
        raise ValueError(f"kind: expected one of {sorted(_OPENCV_KINDS)}, got {kind!r}")
    return _opencv_constructor(kind) is not None


class OpenCVTracker(Tracker):
    """OpenCV's CSRT or KCF correlation-filter tracker behind the vtrack API.

    Frames are converted RGB -> BGR for OpenCV; the initial box is rounded and clipped to the
    image (at least 2 px per side); when OpenCV reports a lost target, or cannot initialize on
    the box, the last box is kept with score 0.
    """

    def __init__(self, kind: str = "csrt") -> None:
        if kind not in _OPENCV_KINDS:
            raise ValueError(f"kind: expected one of {sorted(_OPENCV_KINDS)}, got {kind!r}")
        ctor = _opencv_constructor(kind)
        if ctor is None:
            import cv2

            raise TrackerUnavailableError(
                f"tracker {kind!r} needs OpenCV's contrib modules (cv2.{_OPENCV_KINDS[kind]}_create), "
                f"missing from the installed OpenCV {cv2.__version__}: "
                "pip install opencv-contrib-python-headless (in place of opencv-python-headless)"
            )
        self.kind = kind
        self.name = kind
        self._ctor = ctor
        self._impl: Any = None
        self._box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)

    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        import cv2

        self._box = box
        H, W = image.shape[:2]
        # OpenCV's trackers need an integer box inside the image (a box leaving the frame makes
        # CSRT fail in its resize); clip it, keeping at least 2 px per side.
        x1 = min(max(int(round(box[0])), 0), W - 2)
        y1 = min(max(int(round(box[1])), 0), H - 2)
        x2 = max(min(int(round(box[0] + box[2])), W), x1 + 2)
        y2 = max(min(int(round(box[1] + box[3])), H), y1 + 2)
        self._impl = self._ctor()
        try:
            self._impl.init(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (x1, y1, x2 - x1, y2 - y1))
        except cv2.error as err:
            # cannot model this target (e.g. a few pixels at the border): hold the box, score 0
            logger.warning("%s could not initialize on box %s: %s", self.kind, box, str(err).strip().splitlines()[-1])
            self._impl = None

    def _track(self, image: np.ndarray) -> TrackResult:
        import cv2

        if self._impl is None:
            return TrackResult(self._box, 0.0)
        ok, box = self._impl.update(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if ok and box[2] > 0 and box[3] > 0:
            self._box = tuple(float(v) for v in box)  # type: ignore[assignment]
            return TrackResult(self._box, 1.0)
        logger.debug("%s lost the target; keeping the last box", self.kind)
        return TrackResult(self._box, 0.0)
