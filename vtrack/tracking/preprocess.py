"""The one preprocessing path from a frame to a network input, shared by training
(:mod:`vtrack.train.processing`), every PyTorch tracker and exported (onnxruntime) trackers.

1. :func:`sample_target` (from :mod:`vtrack.tracking.crops`): square crop around a box, resized,
   HxWx3 uint8 RGB;
2. :func:`normalize`: uint8 RGB HxWx3 (or a stack NxHxWx3) -> float32 NumPy ``[N, 3, H, W]``,
   ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD`` (NumPy only, so a runtime without torch uses it);
3. :func:`to_tensor`: the same as a torch tensor on a device.

>>> patch, resize_factor, crop_box = sample_target(image, box, 4.0, 256)   # doctest: +SKIP
>>> x = normalize(patch)                       # float32 [1, 3, 256, 256]   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import torch

from vtrack.tracking.crops import sample_target

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "sample_target", "to_tensor"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalize(patch: np.ndarray, *, imagenet: bool = True) -> np.ndarray:
    """uint8 RGB ``HxWx3`` (or ``NxHxWx3``) -> float32 ``[N, 3, H, W]`` (N = 1 for one patch).

    Values are ``x / 255`` in [0, 1], then ImageNet-normalised when ``imagenet`` (the default;
    every tracker and training use it).
    """
    if not isinstance(patch, np.ndarray):
        raise TypeError(f"patch: expected a uint8 numpy array HxWx3 or NxHxWx3, got {type(patch).__name__}")
    if patch.dtype != np.uint8 or patch.ndim not in (3, 4) or patch.shape[-1] != 3:
        raise ValueError(f"patch: expected a uint8 array HxWx3 or NxHxWx3, got {patch.dtype} {tuple(patch.shape)}")
    x = patch.astype(np.float32) / 255.0
    if imagenet:
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
    if x.ndim == 3:
        x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_tensor(patch: np.ndarray, device: torch.device | str = "cpu", *, imagenet: bool = True) -> torch.Tensor:
    """:func:`normalize` as a torch float32 tensor ``[N, 3, H, W]`` on ``device``."""
    return torch.from_numpy(normalize(patch, imagenet=imagenet)).to(device)
