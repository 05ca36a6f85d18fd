"""Tracker base class, shared tracking helpers (crops, windows), baselines and the tracker factory."""
from vtrack.tracking.base import Tracker, TrackResult, check_box, check_image
from vtrack.tracking.baselines import OpenCVTracker, StaticTracker, TrackerUnavailableError
from vtrack.tracking.crops import box_from_crop, box_to_crop, clip_box, crop_side, sample_target
from vtrack.tracking.loader import BASELINES, TrackerFactory, build_tracker
from vtrack.tracking.windows import cosine_window, hann_window

__all__ = [
    "Tracker",
    "TrackResult",
    "check_box",
    "check_image",
    "OpenCVTracker",
    "StaticTracker",
    "TrackerUnavailableError",
    "BASELINES",
    "TrackerFactory",
    "build_tracker",
    "box_from_crop",
    "box_to_crop",
    "clip_box",
    "cosine_window",
    "crop_side",
    "hann_window",
    "sample_target",
]
