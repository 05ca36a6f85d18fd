"""Template/search crops shared by every tracker.

Coordinate convention: boxes are ``(x, y, w, h)`` in continuous pixel coordinates where pixel
``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``; a crop box ``(x0, y0, s, s)`` resized to
``output_size`` maps an image point ``p`` to ``(p - x0) * output_size / s`` exactly (sub-pixel
accurate, no rounding of the crop corner as in OSTrack's slicing version).

Crops are exact bilinear interpolation, separable (a column pass, then a row pass), computed in
float32 with float64 coordinates and returned as float32 ``[0, 255]`` without rounding: only the
``output_size**2`` destination pixels are computed, whatever the crop side (in the C++ op
``vtrack::bilinear_crop`` when ``vtrack._C`` has it, else in NumPy; bit-identical), and the part of the
crop that leaves the image is filled with the padding colour (the image mean colour by default,
as SiamFC/SiamRPN/OSTrack-style trackers). The patch is therefore a continuous function of the
crop box. ``cv2.warpAffine`` is not: it quantises source coordinates to 1/32 pixel (fixed point)
and rounds the result to uint8, so two boxes 1e-6 pixel apart can give patches that differ by one
grey level in hundreds of pixels. In a tracking loop, which feeds each box into the next crop,
that step amplified a 1e-7 difference between two float implementations of one network (PyTorch
and onnxruntime, or two attention kernels) about 200-fold per frame (docs/deploy.md, "Agreement").

A tracking loop still feeds each box into the next crop, so a difference of 1e-6 pixel between two
runs (two runtimes or kernels) moves the next patch a little, and near-ties in the network (a top-K
or candidate-elimination keep set, the score map's argmax) can grow it into another trajectory.
``align="pixel"`` (:class:`CropConfig`) rounds the crop window to whole pixels as OSTrack's
(pytracking's) ``sample_target`` and SiamFC's ``get_subwindow`` do: the side is rounded up and the
corner to the nearest pixel, so two boxes closer than the grid give the *same* patch and the
difference cannot enter the next frame (SparseTT-CPU: onnxruntime vs PyTorch mean IoU 0.96 -> 1.0
on the tuning set, docs/deploy.md). The box is still mapped back with the exact crop geometry.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence as Seq, get_args

import cv2
import numpy as np

from vtrack.tracking.base import check_image

__all__ = ["CropConfig", "crop_side", "sample_target", "box_to_crop", "box_from_crop", "clip_box"]

_CROP_MODES = ("area", "siamfc")
_PAD_MODES = ("mean", "zero", "replicate")
Align = Literal["exact", "pixel"]
_ALIGNS = get_args(Align)


@dataclass
class CropConfig:
    """The ``tracker.crop`` section: how a tracker's crop window is placed.

    Attributes:
        align: ``"exact"`` (the window exactly around the box, sub-pixel) or ``"pixel"`` (its side
            rounded up and its corner rounded to whole pixels, as OSTrack's and SiamFC's trackers
            crop; tiny box differences then give identical patches, see the module docstring).
    """

    align: Align = "exact"

    def __post_init__(self) -> None:
        if self.align not in _ALIGNS:
            raise ValueError(f"crop.align: expected one of {_ALIGNS}, got {self.align!r}")


def _as_box(box: Any, name: str, *, positive: bool = True) -> np.ndarray:
    """Validate one (x, y, w, h) box and return it as float64 [4]."""
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected 4 numbers (x, y, w, h), got {box!r}") from None
    if arr.shape != (4,):
        raise ValueError(f"{name}: expected 4 numbers (x, y, w, h), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {arr.tolist()}")
    if positive and (arr[2] <= 0 or arr[3] <= 0):
        raise ValueError(f"{name}: expected positive width and height, got w={arr[2]}, h={arr[3]}")
    return arr


def _as_boxes(box: Any, name: str) -> np.ndarray:
    """Validate a box [4] or a batch of boxes [..., 4]; returns float64 of the same shape."""
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected boxes (x, y, w, h) of shape [4] or [N, 4], got {box!r}") from None
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"{name}: expected shape [4] or [N, 4], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values")
    return arr


def _positive(value: Any, name: str) -> float:
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a positive number, got {value!r}") from None
    if not math.isfinite(val) or val <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return val


def _output_size(output_size: Any) -> int:
    if isinstance(output_size, bool) or not isinstance(output_size, (int, np.integer)):
        raise TypeError(f"output_size: expected a positive int, got {output_size!r}")
    if output_size < 1:
        raise ValueError(f"output_size: expected a positive int, got {output_size}")
    return int(output_size)


def crop_side(box_xywh: Seq[float] | np.ndarray, factor: float, mode: str = "area") -> float:
    """Side length (image pixels) of the square crop around ``box_xywh``.

    ``"area"`` (OSTrack, STARK): ``sqrt(w * h) * factor``.
    ``"siamfc"`` (SiamFC, SiamRPN++, SparseTT): ``sqrt((w + p) * (h + p)) * factor`` with context
    ``p = (w + h) / 2``; the exemplar uses ``factor = 1`` and the search region
    ``factor = search_size / template_size``.
    """
    box = _as_box(box_xywh, "box_xywh")
    fac = _positive(factor, "factor")
    w, h = box[2], box[3]
    if mode == "area":
        return float(math.sqrt(w * h) * fac)
    if mode == "siamfc":
        p = (w + h) / 2.0
        return float(math.sqrt((w + p) * (h + p)) * fac)
    raise ValueError(f"mode: expected one of {_CROP_MODES}, got {mode!r}")


def _pad_value(image: np.ndarray, pad: Any) -> tuple[bool, tuple[float, ...]]:
    """``(replicate, colour)`` for ``pad``: replicate the edge pixels, or fill with ``colour``."""
    if isinstance(pad, str):
        if pad == "mean":
            return False, tuple(float(v) for v in cv2.mean(image)[:3])
        if pad == "zero":
            return False, (0.0, 0.0, 0.0)
        if pad == "replicate":
            return True, (0.0, 0.0, 0.0)
        raise ValueError(f"pad: expected one of {_PAD_MODES} or an RGB colour, got {pad!r}")
    try:
        colour = tuple(float(v) for v in pad)
    except TypeError:
        raise TypeError(f"pad: expected one of {_PAD_MODES} or 3 numbers (RGB), got {pad!r}") from None
    if len(colour) != 3 or not all(math.isfinite(c) for c in colour):
        raise ValueError(f"pad: expected 3 finite numbers (RGB), got {pad!r}")
    return False, colour


def sample_target(
    image: np.ndarray,
    box_xywh: Seq[float] | np.ndarray,
    factor: float,
    output_size: int,
    *,
    mode: str = "area",
    center: tuple[float, float] | None = None,
    pad: Any = "mean",
    align: str = "exact",
) -> tuple[np.ndarray, float, np.ndarray]:
    """Square crop around a box, resized to ``output_size x output_size``.

    Args:
        image: HxWx3 uint8 RGB frame.
        box_xywh: target box in image pixels; its size sets the crop side (:func:`crop_side`).
        factor: context factor (crop side relative to the target size, see ``mode``).
        output_size: side of the returned patch in pixels.
        mode: ``"area"`` or ``"siamfc"`` (see :func:`crop_side`).
        center: crop centre ``(cx, cy)``; default the box centre.
        pad: fill for the part of the crop outside the image: ``"mean"`` (image mean colour),
            ``"zero"``, ``"replicate"`` (edge pixels), or an RGB colour (e.g. a cached mean).
        align: ``"exact"`` (the crop window exactly centred, of the exact side) or ``"pixel"``
            (side ``ceil(side)``, corner ``floor(c - side / 2 + 0.5)``: whole pixels, OSTrack style).

    Returns:
        ``(patch, resize_factor, crop_box)``: the float32 RGB patch [output_size, output_size, 3]
        with values in [0, 255] (not rounded: a continuous function of the crop box),
        ``resize_factor = output_size / crop_side`` and the crop box ``(x0, y0, side, side)`` in
        image coordinates (float64).
    """
    img = check_image(image)
    box = _as_box(box_xywh, "box_xywh")
    out = _output_size(output_size)
    side = crop_side(box, factor, mode)
    if center is None:
        cx, cy = box[0] + box[2] / 2.0, box[1] + box[3] / 2.0
    else:
        try:
            cx, cy = (float(v) for v in center)
        except (TypeError, ValueError):
            raise TypeError(f"center: expected (cx, cy), got {center!r}") from None
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise ValueError(f"center: expected finite values, got {center!r}")
    replicate, value = _pad_value(img, pad)
    if align == "pixel":
        side = float(max(math.ceil(side), 1))
        x0, y0 = float(math.floor(cx - side / 2.0 + 0.5)), float(math.floor(cy - side / 2.0 + 0.5))
    elif align == "exact":
        x0, y0 = cx - side / 2.0, cy - side / 2.0
    else:
        raise ValueError(f"align: expected one of {_ALIGNS}, got {align!r}")
    r = out / side
    patch = _bilinear_crop(img, x0, y0, r, out, replicate, value)
    return patch, float(r), np.array([x0, y0, side, side], dtype=np.float64)


def _taps(n_out: int, start: float, r: float, size: int, replicate: bool) -> tuple[np.ndarray, ...]:
    """Bilinear taps along one axis: source indices ``i0, i1 = i0 + 1`` and float32 weights of the
    ``n_out`` output pixels of a crop starting at ``start`` with scale ``r`` (output px per image px).

    Pixel centres: output pixel ``u`` samples the image at ``(u + 0.5) / r + start - 0.5``. A tap
    outside ``[0, size)`` is clamped to the edge (``replicate``) or gets weight 0 (the padding
    colour fills the rest, see :func:`_bilinear_crop`).
    """
    x = (np.arange(n_out, dtype=np.float64) + 0.5) / r + (start - 0.5)
    base = np.floor(x)
    frac = x - base
    i0 = base.astype(np.int64)
    i1 = i0 + 1
    w0, w1 = 1.0 - frac, frac
    if not replicate:
        w0 = np.where((i0 >= 0) & (i0 < size), w0, 0.0)
        w1 = np.where((i1 >= 0) & (i1 < size), w1, 0.0)
    return np.clip(i0, 0, size - 1), np.clip(i1, 0, size - 1), w0.astype(np.float32), w1.astype(np.float32)


def _bilinear_crop(img: np.ndarray, x0: float, y0: float, r: float, out: int, replicate: bool,
                   value: tuple[float, float, float]) -> np.ndarray:
    """The ``out x out`` float32 patch of the square crop at ``(x0, y0)`` with scale ``r``:
    bilinear interpolation of the pixel centres (as ``cv2.warpAffine`` with ``INTER_LINEAR``, but in
    float, without its 1/32-pixel coordinate grid and without rounding to uint8).

    Out-of-image taps have weight 0 and the padding colour takes the missing weight,
    ``(1 - wy * wx) * value``; with ``replicate`` the taps are clamped to the edge instead.
    The weighted sums run in the C++ op ``vtrack::bilinear_crop`` (csrc/cpu/crop_cpu.cpp) when
    vtrack._C provides it, else in NumPy (:func:`_weighted_sums_numpy`): both compute every product
    and sum in float32 in the same order and give bit-identical patches.
    """
    H, W = img.shape[:2]
    ry0, ry1, wy0, wy1 = _taps(out, y0, r, H, replicate)
    cx0, cx1, wx0, wx1 = _taps(out, x0, r, W, replicate)
    fill = None
    if not replicate and (np.any(wy0 + wy1 != 1) or np.any(wx0 + wx1 != 1)):
        fill = np.asarray(value, dtype=np.float32)  # some taps leave the image
    op = _crop_op()
    if op is None:
        return _weighted_sums_numpy(img, (ry0, ry1, wy0, wy1), (cx0, cx1, wx0, wx1), fill)
    import torch

    t = torch.from_numpy
    res = op(t(np.ascontiguousarray(img)), t(ry0), t(ry1), t(wy0), t(wy1), t(cx0), t(cx1), t(wx0), t(wx1),
             None if fill is None else t(fill))
    return res.numpy()


@functools.lru_cache(maxsize=1)
def _crop_op() -> Any:
    """``torch.ops.vtrack.bilinear_crop`` when the loaded vtrack._C has it, else None (not built, or
    built from sources older than the op: the NumPy path gives the same patch, only slower). Looked
    up once per process: every crop of the tracking loop calls it."""
    import torch

    import vtrack.kernels  # noqa: F401  (imports vtrack._C when it is built: vtrack.kernels._ext.fast_load)

    try:
        return torch.ops.vtrack.bilinear_crop
    except (AttributeError, RuntimeError):  # not registered (torch raises either, by version)
        return None


def _weighted_sums_numpy(img: np.ndarray, rows: tuple[np.ndarray, ...], cols: tuple[np.ndarray, ...],
                         fill: np.ndarray | None) -> np.ndarray:
    """NumPy twin of ``vtrack::bilinear_crop``: the taps' weighted sums, float32, in its order.

    The source pixels the taps read are gathered once as uint8 ``[2 * oh (row taps), 2 * ow (column
    taps) * 3]`` (rows first, then 3-byte pixels along each row), so both passes run along the
    contiguous last axis: the column pass ``[2 * oh, ow * 3]``, then the row pass ``[oh, ow * 3]``.
    """
    ry0, ry1, wy0, wy1 = rows
    cx0, cx1, wx0, wx1 = cols
    oh, ow = len(ry0), len(cx0)
    lo, hi = int(cx0[0]), int(cx1[-1]) + 1  # taps are non-decreasing: only these columns are read
    band = img[np.concatenate([ry0, ry1]), lo:hi]  # [2 * oh, hi - lo, 3], a contiguous copy
    pixels = band.view(np.dtype((np.void, 3))).reshape(2 * oh, hi - lo)
    grid = np.take(pixels, np.concatenate([cx0, cx1]) - lo, axis=1).view(np.uint8).reshape(2 * oh, 6 * ow)
    n = 3 * ow
    cols_pass = np.multiply(grid[:, :n], np.repeat(wx0, 3))
    cols_pass += np.multiply(grid[:, n:], np.repeat(wx1, 3))
    patch = np.multiply(cols_pass[:oh], wy0[:, None])
    patch += np.multiply(cols_pass[oh:], wy1[:, None])
    if fill is not None:
        missing = 1.0 - (wy0 + wy1)[:, None] * np.repeat(wx0 + wx1, 3)[None, :]
        missing *= np.tile(fill, ow)
        patch += missing
    return patch.reshape(oh, ow, 3)


def _crop_scale(crop_box_xywh: Any, output_size: Any) -> tuple[np.ndarray, float, float]:
    crop = _as_box(crop_box_xywh, "crop_box_xywh")
    out = _output_size(output_size)
    return crop, out / crop[2], out / crop[3]


def box_to_crop(box_xywh: Any, crop_box_xywh: Any, output_size: int) -> np.ndarray:
    """Map box(es) ``[..., 4]`` from image coordinates to the pixel coordinates of a crop.

    ``crop_box_xywh`` and ``output_size`` are what :func:`sample_target` used/returned.
    """
    box = _as_boxes(box_xywh, "box_xywh")
    crop, rx, ry = _crop_scale(crop_box_xywh, output_size)
    res = np.empty_like(box)
    res[..., 0] = (box[..., 0] - crop[0]) * rx
    res[..., 1] = (box[..., 1] - crop[1]) * ry
    res[..., 2] = box[..., 2] * rx
    res[..., 3] = box[..., 3] * ry
    return res


def box_from_crop(box_xywh: Any, crop_box_xywh: Any, output_size: int) -> np.ndarray:
    """Map box(es) ``[..., 4]`` from crop pixel coordinates back to image coordinates
    (inverse of :func:`box_to_crop`)."""
    box = _as_boxes(box_xywh, "box_xywh")
    crop, rx, ry = _crop_scale(crop_box_xywh, output_size)
    res = np.empty_like(box)
    res[..., 0] = box[..., 0] / rx + crop[0]
    res[..., 1] = box[..., 1] / ry + crop[1]
    res[..., 2] = box[..., 2] / rx
    res[..., 3] = box[..., 3] / ry
    return res


def clip_box(box_xywh: Any, width: int, height: int, min_size: float = 1.0) -> np.ndarray:
    """Clip a box to the image ``[0, width] x [0, height]``, keeping at least ``min_size`` per side.

    The left/top edge is clipped to ``[0, width - min_size]``, the right/bottom edge to
    ``[left + min_size, width]`` (OSTrack's ``clip_box`` with ``margin = min_size``).
    """
    box = _as_box(box_xywh, "box_xywh", positive=False)
    W = _positive(width, "width")
    H = _positive(height, "height")
    try:
        m = float(min_size)
    except (TypeError, ValueError):
        raise TypeError(f"min_size: expected a number, got {min_size!r}") from None
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"min_size: expected a finite number >= 0, got {min_size!r}")
    if m > W or m > H:
        raise ValueError(f"min_size: expected at most the image size {W:g}x{H:g}, got {m:g}")
    x1 = min(max(box[0], 0.0), W - m)
    y1 = min(max(box[1], 0.0), H - m)
    x2 = min(max(box[0] + box[2], x1 + m), W)
    y2 = min(max(box[1] + box[3], y1 + m), H)
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)
