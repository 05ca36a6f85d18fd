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

    def frame(self, index: int) -> np.ndarray:
        """Read frame ``index`` as an HxWx3 uint8 RGB array; raises IOError if it fails to decode."""
        import cv2

        path = self.frames[index]
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise IOError(f"{self.name}: frame {index} could not be decoded: {path}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
