"""Tracker base class and shared tracking helpers (crops, windows)."""
from vtrack.tracking.base import Tracker, TrackResult, check_box, check_image
from vtrack.tracking.crops import box_from_crop, box_to_crop, clip_box, crop_side, sample_target
from vtrack.tracking.windows import cosine_window, hann_window

__all__ = [
    "Tracker",
    "TrackResult",
    "check_box",
    "check_image",
    "box_from_crop",
    "box_to_crop",
    "clip_box",
    "cosine_window",
    "crop_side",
    "hann_window",
    "sample_target",
]
