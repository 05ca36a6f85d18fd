"""Cosine (Hann) windows that penalise large displacements in score maps."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["hann_window", "cosine_window"]


def _size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


def _hann1d(n: int, device: Any, dtype: Any) -> torch.Tensor:
    # OSTrack/pytracking hann1d(sz, centered=True): 0.5 * (1 - cos(2 pi k / (n + 1))), k = 1..n,
    # i.e. a Hann window of length n + 2 without its two zero end points.
    k = torch.arange(1, n + 1, device=device, dtype=torch.float64)
    return (0.5 * (1.0 - torch.cos(2.0 * torch.pi * k / (n + 1)))).to(dtype)


def hann_window(h: int, w: int, device: Any = None, dtype: Any = None) -> torch.Tensor:
    """2-D Hann window of shape ``[h, w]`` (OSTrack/pytracking ``hann2d`` convention).

    The outer product of 1-D windows ``0.5 * (1 - cos(2 pi k / (n + 1)))``, ``k = 1..n``: strictly
    positive everywhere (no zero border), symmetric, peak 1 at the centre for odd sizes.
    ``dtype`` defaults to ``torch.get_default_dtype()``.
    """
    h, w = _size(h, "h"), _size(w, "w")
    dtype = dtype or torch.get_default_dtype()
    return torch.outer(_hann1d(h, device, dtype), _hann1d(w, device, dtype))


def cosine_window(h: int, w: int, dtype: Any = np.float64) -> np.ndarray:
    """2-D cosine window ``np.outer(np.hanning(h), np.hanning(w))`` (SiamFC/SiamRPN/pysot).

    Zero on the border (``np.hanning`` includes its end points); a size of 1 gives 1.
    """
    h, w = _size(h, "h"), _size(w, "w")
    return np.outer(np.hanning(h), np.hanning(w)).astype(dtype)
