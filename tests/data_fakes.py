"""Helpers that write tiny fake dataset folders in the official layouts (for the reader tests) and
make tiny moving-box sequences (for the tracker tests)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_frames(folder: Path, names: list[str], size: tuple[int, int] = (24, 32)) -> list[Path]:
    """Write small distinct JPEG/PNG frames with the given file names; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(names):
        img = np.full((size[0], size[1], 3), (i * 37) % 255, np.uint8)
        path = folder / name
        cv2.imwrite(str(path), img)
        out.append(path)
    return out


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating parents)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def box_lines(n: int, sep: str = ",", start: float = 1.0) -> str:
    """``n`` lines of distinct x,y,w,h boxes."""
    return "".join(sep.join(str(v) for v in (start + i, 2 + i, 5, 6)) + "\n" for i in range(n))


def moving_box(background: np.ndarray, n: int, start: tuple[int, int], wh: tuple[int, int],
               colour: tuple[int, int, int]) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """``n`` RGB frames of ``background`` with a ``wh`` box of ``colour`` that starts at ``start``
    (x, y) and moves by (2, 1) pixels a frame; returns the frames and the x, y, w, h boxes."""
    frames, boxes = [], []
    for t in range(n):
        img = background.copy()
        x, y = start[0] + 2 * t, start[1] + t
        img[y : y + wh[1], x : x + wh[0]] = colour
        frames.append(img)
        boxes.append((x, y, *wh))
    return frames, boxes
