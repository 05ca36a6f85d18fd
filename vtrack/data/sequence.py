"""The one sequence type every dataset reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sequence:
    """A video with ground truth.

    Attributes:
        name: sequence name, unique within its dataset.
        frames: image file paths, one per frame (read lazily with :meth:`frame`).
        boxes: float64 array [T, 4] of (x, y, w, h); rows for absent targets may be NaN.
        valid: bool array [T]; False where the target is absent/invalid (not scored).
        language: optional natural-language description of the target.
        attributes: free-form per-sequence attributes (e.g. {"occlusion": True}) and
            per-frame arrays (e.g. {"cover": np.ndarray}).
        dataset: name of the dataset the sequence comes from.
    """

    name: str
    frames: list[str]
    boxes: np.ndarray
    valid: np.ndarray | None = None
    language: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if self.valid is None:
            self.valid = np.all(np.isfinite(self.boxes), axis=1) & (self.boxes[:, 2] > 0) & (self.boxes[:, 3] > 0)
        self.valid = np.asarray(self.valid, dtype=bool)
        if len(self.valid) != len(self.boxes):
            raise ValueError(f"valid: expected {len(self.boxes)} flags (one per box), got {len(self.valid)}")

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        lang = f", language={self.language!r}" if self.language else ""
        return (
            f"Sequence(name={self.name!r}, dataset={self.dataset!r}, frames={len(self.frames)}, "
            f"boxes={len(self.boxes)}, valid={int(self.valid.sum())}{lang})"
        )

    @property
    def init_box(self) -> np.ndarray:
        """The first-frame box (x, y, w, h) that initialises a tracker."""
        if len(self.boxes) == 0:
            raise ValueError(f"{self.name}: sequence has no boxes")
        return self.boxes[0].copy()

    @property
    def first_frame_only(self) -> bool:
        """True when only the first box is public (GOT-10k test, TrackingNet test)."""
        return bool(self.attributes.get("first_frame_only", False))

    def frame(self, index: int) -> np.ndarray:
        """Read frame ``index`` as an HxWx3 uint8 RGB array.

        Raises:
            IndexError: ``index`` outside the sequence.
            IOError: the file is missing, truncated or fails to decode (the message names it).
        """
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"index: expected an int, got {type(index).__name__}")
        if not -len(self.frames) <= index < len(self.frames):
            raise IndexError(f"{self.name}: frame index {index} out of range for {len(self.frames)} frames")
        from vtrack.data._io import read_image

        try:
            return read_image(self.frames[index])
        except OSError as err:
            raise type(err)(f"{self.name}: frame {index}: {err}") from None
