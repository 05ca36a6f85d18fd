"""Tracker base class and shared tracking helpers (crops, windows)."""
from vtrack.tracking.base import Tracker, TrackResult

__all__ = ["Tracker", "TrackResult"]
