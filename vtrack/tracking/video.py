"""Frame sources for ``vtrack track``: a video file or a folder of images, as RGB frames."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "iter_frames", "source_fps"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

    def key(p: Path) -> tuple[int, int | str]:
        return (0, int(p.stem)) if p.stem.isdigit() else (1, p.stem)

    return sorted(files, key=key)


def iter_frames(source: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield HxWx3 uint8 RGB frames from a video file (OpenCV) or a folder of images (sorted
    numerically when the names are numbers, else by name).

    Raises FileNotFoundError for a missing source, ValueError for one that holds no frames and
    IOError for an image that fails to decode (named).
    """
    import cv2

    from vtrack.data._io import read_image

    path = Path(source)
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames: expected a positive int or None, got {max_frames!r}")
    if not path.exists():
        raise FileNotFoundError(f"video: not found: {path}")
    count = 0
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise ValueError(f"video: folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            if max_frames is not None and count >= max_frames:
                return
            try:
                img = read_image(f)
            except OSError as err:
                raise type(err)(f"video: {err}") from None
            count += 1
            yield img
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"video: OpenCV cannot open {path} as a video")
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if count == 0:
        raise ValueError(f"video: no frame could be read from {path}")


def source_fps(source: str | os.PathLike, default: float = 30.0) -> float:
    """Frame rate of a video file (``default`` for folders or when unknown)."""
    import cv2

    path = Path(source)
    if path.is_dir() or not path.exists():
        return default
    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return fps if np.isfinite(fps) and 0 < fps < 1000 else default
