"""The one preprocessing path from a frame to a network input, shared by training
(:mod:`vtrack.train.processing`), every PyTorch tracker and exported (onnxruntime) trackers.

1. :func:`sample_target` (from :mod:`vtrack.tracking.crops`): square crop around a box, resized
   by exact bilinear interpolation, HxWx3 float32 RGB in [0, 255] (unrounded: a continuous
   function of the box, so a tracking loop does not amplify tiny box differences);
2. :func:`normalize`: RGB HxWx3 (or a stack NxHxWx3), uint8 or float32 -> float32 NumPy ``[N, 3, H, W]``,
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
    """RGB ``HxWx3`` (or ``NxHxWx3``) in [0, 255] -> float32 ``[N, 3, H, W]`` (N = 1 for one patch).

    ``patch`` is uint8, or float32 as :func:`sample_target` returns it (unrounded). Values are
    ``x / 255`` in [0, 1], then ImageNet-normalised when ``imagenet`` (the default; every tracker
    and training use it).
    """
    if not isinstance(patch, np.ndarray):
        raise TypeError(f"patch: expected a uint8 or float32 numpy array HxWx3 or NxHxWx3, got {type(patch).__name__}")
    if patch.dtype not in (np.uint8, np.float32) or patch.ndim not in (3, 4) or patch.shape[-1] != 3:
        raise ValueError(f"patch: expected a uint8 or float32 array HxWx3 or NxHxWx3, got {patch.dtype} "
                         f"{tuple(patch.shape)}")
    x = patch.astype(np.float32) / np.float32(255.0)
    if imagenet:
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
    if x.ndim == 3:
        x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_tensor(patch: np.ndarray, device: torch.device | str = "cpu", *, imagenet: bool = True) -> torch.Tensor:
    """:func:`normalize` as a torch float32 tensor ``[N, 3, H, W]`` on ``device``."""
    return torch.from_numpy(normalize(patch, imagenet=imagenet)).to(device)
