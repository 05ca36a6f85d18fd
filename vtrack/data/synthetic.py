"""A synthetic tracking benchmark with exact ground truth, generated offline and deterministically.

Each sequence shows a textured target (disc, square, rectangle, triangle, star, hexagon, diamond,
cross; a colour and a solid/striped/dotted/checkered pattern) moving over a textured or natural
background (procedural textures or scikit-image's bundled photos), with per-sequence challenges:
smooth or fast motion, scale and aspect change, in-plane rotation, partial or full occlusion,
out-of-view, look-alike distractors (same shape, different colour or pattern), illumination
change, motion blur and camera shake. A short description ("a small red striped disc") names the
target and tells it apart from every distractor.

The benchmark is written in the GOT-10k layout (``root/{train,val,test}/list.txt``, 8-digit JPEG
frames, ``groundtruth.txt``, ``absence.label``, ``cover.label``, ``cut_by_image.label``,
``meta_info.ini``) plus ``nlp.txt`` and ``attributes.json``; unlike GOT-10k every split carries
full ground truth. ``load_dataset("synthetic", root, split)`` reads it back.

Ground truth is the tight axis-aligned box of the target's rendered silhouette (alpha > 0.5),
clipped to the frame, before occluders are drawn; fully out-of-view frames have box 0,0,0,0.
``cover`` is the visible fraction of the silhouette (occluders and the frame border removed) in
eighths; ``absence`` is 1 when less than 5 % of it is visible.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from vtrack.io import atomic_write_text

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
_PARAMS_MARKER = ".synthetic-params.json"

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 30),
    "green": (35, 165, 45),
    "blue": (35, 70, 215),
    "yellow": (240, 215, 30),
    "orange": (245, 125, 20),
    "purple": (125, 45, 175),
    "cyan": (30, 200, 215),
    "pink": (245, 130, 185),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
    "brown": (125, 75, 30),
}
_LIGHT = {"yellow", "white", "cyan", "pink", "orange"}
SHAPES = ("disc", "square", "rectangle", "triangle", "star", "hexagon", "diamond", "cross")
PATTERNS = ("plain", "striped", "dotted", "checkered")
PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera",
    "hubble_deep_field", "immunohistochemistry", "coins", "moon",
)
PROCEDURAL = ("clouds", "grating", "tiles", "blobs")
TARGET_STYLES = ("shape", "natural", "mixed")
# silhouettes of natural targets: irregular blobs and ellipses besides the geometric shapes
NATURAL_MASKS = ("blob", "blob", "ellipse", "disc", "square", "rectangle", "hexagon", "diamond")

_SPRITE = 64  # sprite side; the shape spans [_PAD, _SPRITE - _PAD]
_PAD = 2
_MARGIN = 24  # background margin around the frame for camera shake


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic benchmark; two configs with equal fields give identical files.

    Attributes:
        seed: master seed; every sequence draws from its own stream (seed, split, index).
        train, val, test: number of sequences per split.
        frames: frames per sequence, or None to draw it per sequence in [min_frames, max_frames].
        min_frames, max_frames: range used when ``frames`` is None.
        width, height: frame size in pixels.
        quality: JPEG quality of the frames.
        target_style: ``"shape"`` (geometric shapes in one colour with a synthetic pattern, the
            benchmark's look), ``"natural"`` (targets and look-alike distractors cut from natural
            photos with soft, irregular edges) or ``"mixed"`` (half of the sequences each).
    """

    seed: int = 0
    train: int = 60
    val: int = 10
    test: int = 20
    frames: int | None = None
    min_frames: int = 40
    max_frames: int = 100
    width: int = 256
    height: int = 256
    quality: int = 90
    target_style: str = "shape"

    def __post_init__(self) -> None:
        for name in ("seed", "train", "val", "test", "min_frames", "max_frames", "width", "height", "quality"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {self.seed}")
        for name in ("train", "val", "test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a non-negative sequence count, got {getattr(self, name)}")
        if self.train + self.val + self.test == 0:
            raise ValueError("train, val, test: expected at least one sequence in total, got 0")
        if self.frames is not None:
            if not isinstance(self.frames, (int, np.integer)) or isinstance(self.frames, bool):
                raise TypeError(f"frames: expected an int or None, got {type(self.frames).__name__}")
            if self.frames < 8:
                raise ValueError(f"frames: expected at least 8 frames per sequence, got {self.frames}")
        if not 8 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"min_frames, max_frames: expected 8 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}"
            )
        if not (96 <= self.width <= 2048 and 96 <= self.height <= 2048):
            raise ValueError(f"width, height: expected sizes in [96, 2048], got {self.width}x{self.height}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality: expected a JPEG quality in [1, 100], got {self.quality}")
        if self.target_style not in TARGET_STYLES:
            raise ValueError(f"target_style: expected one of {', '.join(TARGET_STYLES)}, got {self.target_style!r}")

    def counts(self) -> dict[str, int]:
        """Sequences per split."""
        return {"train": self.train, "val": self.val, "test": self.test}

    def param_hash(self) -> str:
        """A hash of every field and the generator version (the manifest records it)."""
        fields = dataclasses.asdict(self)
        if fields["target_style"] == "shape":  # the original look: same hash as before the field existed
            del fields["target_style"]
        blob = json.dumps({"version": GENERATOR_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sequence_name(split: str, index: int) -> str:
    """Directory name of sequence ``index`` (0-based) of ``split``."""
    return f"SYN_{split.capitalize()}_{index + 1:06d}"


# ---------------------------------------------------------------------------------------------
# appearance


def _shape_mask(shape: str, res: int) -> np.ndarray:
    """Binary silhouette of ``shape`` filling the [-1, 1]^2 square, at ``res`` pixels."""
    coords = (np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1
    u, v = np.meshgrid(coords, coords)
    if shape == "disc":
        return u * u + v * v <= 1.0
    if shape in ("square", "rectangle"):
        return np.ones((res, res), dtype=bool)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":
        return (np.abs(u) <= 0.34) | (np.abs(v) <= 0.34)
    if shape == "triangle":
        points = np.array([[0.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    elif shape == "hexagon":
        angles = np.deg2rad(np.arange(6) * 60.0)
        points = np.stack([np.cos(angles), np.sin(angles)], 1)
    elif shape == "star":
        angles = np.deg2rad(np.arange(10) * 36.0 - 90.0)
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        points = np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
    else:
        raise ValueError(f"shape: expected one of {', '.join(SHAPES)}, got {shape!r}")
    lo, hi = points.min(0), points.max(0)
    points = (points - lo) / (hi - lo) * res  # span the whole square so the box is tight
    canvas = np.zeros((res, res), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def _pattern(pattern: str, res: int, rng: np.random.Generator) -> np.ndarray:
    """Float mask in [0, 1] of where the secondary colour shows (0 = main colour)."""
    coords = (np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1
    u, v = np.meshgrid(coords, coords)
    if pattern == "plain":
        return np.zeros((res, res), dtype=np.float32)
    if pattern == "striped":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.45, 0.65)
        t = (u * np.cos(angle) + v * np.sin(angle)) / period + rng.uniform(0, 1)
        return ((t % 1.0) < 0.5).astype(np.float32)
    if pattern == "dotted":
        period = rng.uniform(0.5, 0.7)
        du = (u / period + 0.25) % 1.0 - 0.5
        dv = (v / period + 0.25) % 1.0 - 0.5
        return (du * du + dv * dv <= 0.3 ** 2).astype(np.float32)
    if pattern == "checkered":
        period = rng.uniform(0.45, 0.6)
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    raise ValueError(f"pattern: expected one of {', '.join(PATTERNS)}, got {pattern!r}")


def _mip_levels(rgba: np.ndarray) -> list[np.ndarray]:
    """Premultiplied RGBA sprite levels of side _SPRITE and _SPRITE / 2 from a high-resolution
    premultiplied RGBA (0-255) image of the object, padded by _PAD."""
    inner = cv2.resize(rgba, (_SPRITE - 2 * _PAD,) * 2, interpolation=cv2.INTER_AREA) / 255.0
    level0 = np.zeros((_SPRITE, _SPRITE, 4), dtype=np.float32)
    level0[_PAD:-_PAD, _PAD:-_PAD] = inner
    level0[..., :3] *= 255.0
    level1 = cv2.resize(level0, (_SPRITE // 2, _SPRITE // 2), interpolation=cv2.INTER_AREA)
    return [level0, level1]


def _make_sprite(shape: str, colour: str, pattern: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Premultiplied RGBA float32 sprites (mip levels 64 and 32 px) of a textured object."""
    hi = 4 * (_SPRITE - 2 * _PAD)
    mask = _shape_mask(shape, hi).astype(np.float32)
    main = np.asarray(COLOURS[colour], dtype=np.float32)
    second = np.asarray((30, 30, 30) if colour in _LIGHT else (245, 245, 245), dtype=np.float32)
    weight = _pattern(pattern, hi, rng)[..., None]
    rgb = main * (1 - weight) + second * weight
    coords = (np.arange(hi, dtype=np.float32) + 0.5) / hi * 2 - 1
    u, v = np.meshgrid(coords, coords)
    shading = 1.0 - 0.18 * np.clip((u - 0.3) ** 2 + (v - 0.3) ** 2, 0, 2) / 2  # soft highlight
    rgb = np.clip(rgb * shading[..., None], 0, 255)
    rgba = np.concatenate([rgb * mask[..., None], mask[..., None] * 255.0], axis=2)
    return _mip_levels(rgba)


def _natural_mask(kind: str, res: int, rng: np.random.Generator) -> np.ndarray:
    """Soft-edged float silhouette in [0, 1] for a natural target (``kind`` from NATURAL_MASKS)."""
    coords = (np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1
    u, v = np.meshgrid(coords, coords)
    if kind == "blob":  # a wobbly ellipse: radius modulated by low-frequency noise
        noise = _smooth_noise(rng, res, res, 3) * 2 - 1
        hard = (u * u + v * v) <= (0.82 + 0.22 * noise) ** 2
    elif kind == "ellipse":
        a = rng.uniform(0.75, 1.0)
        hard = (u / a) ** 2 + (v / (1.75 - a)) ** 2 <= 1.0
    else:
        hard = _shape_mask(kind, res)
    sigma = res * rng.uniform(0.01, 0.035)
    return np.clip(cv2.GaussianBlur(hard.astype(np.float32), (0, 0), sigma), 0.0, 1.0)


def _make_natural_sprite(photo: str, mask_kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Premultiplied RGBA sprites (mip levels 64 and 32 px) of a region cut from a natural photo.

    The region is a random crop of ``photo`` (natural texture, inner detail), re-coloured slightly
    and given a soft silhouette of ``mask_kind``.
    """
    img = _photo(photo)
    ph, pw = img.shape[:2]
    side = int(rng.uniform(0.1, 0.35) * min(ph, pw))
    y0, x0 = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
    hi = 4 * (_SPRITE - 2 * _PAD)
    rgb = cv2.resize(img[y0 : y0 + side, x0 : x0 + side], (hi, hi), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        rgb = rgb[:, ::-1]
    if np.ptp(img[..., 0] - img[..., 1]) < 1:  # greyscale photo: tint it
        rgb = rgb * rng.uniform(0.6, 1.3, size=3).astype(np.float32)
    rgb = np.clip(rgb * rng.uniform(0.85, 1.15, size=3).astype(np.float32), 0, 255)
    mask = _natural_mask(mask_kind, hi, rng)
    rgba = np.concatenate([rgb * mask[..., None], mask[..., None] * 255.0], axis=2)
    return _mip_levels(rgba)


def _colour_name(sprite: np.ndarray) -> str:
    """The name in COLOURS nearest to a premultiplied sprite's mean colour."""
    alpha = sprite[..., 3].sum()
    mean = sprite[..., :3].reshape(-1, 3).sum(0) / max(float(alpha), 1e-6)
    names = list(COLOURS)
    dist = [float(np.sum((mean - np.asarray(COLOURS[n], dtype=np.float32)) ** 2)) for n in names]
    return names[int(np.argmin(dist))]


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A scikit-image bundled photo as float32 RGB (greyscale photos are replicated)."""
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.float32)
    if image.max() <= 1.0:
        image *= 255.0
    return image


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random ``cells``-grid upsampled bicubically."""
    grid = rng.random((cells + 3, cells + 3)).astype(np.float32)
    up = cv2.resize(grid, (w * (cells + 3) // cells, h * (cells + 3) // cells), interpolation=cv2.INTER_CUBIC)
    oy, ox = rng.integers(0, up.shape[0] - h + 1), rng.integers(0, up.shape[1] - w + 1)
    return np.clip(up[oy : oy + h, ox : ox + w], 0, 1)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(30, 225, size=3).astype(np.float32)


def _background(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Background canvas [h, w, 3] float32 of a procedural texture or a cropped photo."""
    if kind in PHOTOS:
        photo = _photo(kind)
        ph, pw = photo.shape[:2]
        zoom = rng.uniform(0.6, 1.0)
        ch = int(min(ph, pw * h / w) * zoom)
        cw = int(ch * w / h)
        y0, x0 = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
        crop = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if np.ptp(photo[..., 0] - photo[..., 1]) < 1:  # greyscale photo: tint it
            crop = crop * rng.uniform(0.75, 1.15, size=3).astype(np.float32)
        return np.ascontiguousarray(np.clip(crop, 0, 255), dtype=np.float32)
    if kind == "clouds":
        field = sum(_smooth_noise(rng, h, w, c) / (i + 1) for i, c in enumerate((3, 8, 24, 64)))
        field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
        a, b = _random_colour(rng), _random_colour(rng)
        return a * (1 - field[..., None]) + b * field[..., None]
    if kind == "grating":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        out = np.zeros((h, w, 3), dtype=np.float32) + _random_colour(rng) * 0.5
        for _ in range(3):
            angle, period = rng.uniform(0, np.pi), rng.uniform(8, 60)
            wave = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
            out += wave[..., None] * _random_colour(rng) * 0.25
        return np.clip(out, 0, 255)
    if kind == "tiles":
        out = np.empty((h, w, 3), dtype=np.float32)
        out[:] = _random_colour(rng)
        for _ in range(int(rng.integers(25, 60))):
            x0, y0 = int(rng.integers(-20, w)), int(rng.integers(-20, h))
            cv2.rectangle(out, (x0, y0), (x0 + int(rng.integers(10, 70)), y0 + int(rng.integers(10, 70))),
                          _random_colour(rng).tolist(), -1)
        return cv2.GaussianBlur(out, (0, 0), 1.2)
    if kind == "blobs":
        out = np.empty((h, w, 3), dtype=np.float32)
        out[:] = _random_colour(rng)
        for _ in range(int(rng.integers(30, 80))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(out, centre, int(rng.integers(4, 30)), _random_colour(rng).tolist(), -1, cv2.LINE_AA)
        return cv2.GaussianBlur(out, (0, 0), 2.5)
    raise ValueError(f"kind: expected a photo ({', '.join(PHOTOS)}) or one of {', '.join(PROCEDURAL)}, got {kind!r}")


# ---------------------------------------------------------------------------------------------
# motion


def _smooth_path(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """A smooth 1-D trajectory in [lo, hi]: a sum of two slow sinusoids."""
    t = np.arange(n) / n
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    centre = mid + rng.uniform(-0.4, 0.4) * half
    amp = half - abs(centre - mid)
    a1, a2 = amp * rng.uniform(0.35, 0.75), amp * rng.uniform(0.0, 0.25)
    path = centre + a1 * np.sin(2 * np.pi * (rng.uniform(0.3, 1.2) * t + rng.random())) + a2 * np.sin(
        2 * np.pi * (rng.uniform(1.5, 3.0) * t + rng.random())
    )
    return np.clip(path, lo, hi)


def _fast_path(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """A fast, jerky trajectory: random waypoints every 4-8 frames joined linearly."""
    knots, values = [0], [rng.uniform(lo, hi)]
    while knots[-1] < n - 1:
        knots.append(min(n - 1, knots[-1] + int(rng.integers(4, 9))))
        values.append(rng.uniform(lo, hi))
    return np.interp(np.arange(n), knots, values)


def _window(rng: np.random.Generator, lo: int, hi: int, length: tuple[int, int]) -> tuple[int, int]:
    """A frame window [a, b] inside [lo, hi] with a length drawn from ``length``."""
    size = int(rng.integers(length[0], length[1] + 1))
    size = max(1, min(size, hi - lo))
    a = int(rng.integers(lo, max(lo + 1, hi - size + 1)))
    return a, a + size - 1


def _ramp(n: int, a: int, b: int, rise: int) -> np.ndarray:
    """1 inside [a, b], ramping linearly to 0 over ``rise`` frames on either side."""
    t = np.arange(n, dtype=np.float64)
    up = np.clip((t - (a - rise)) / rise, 0, 1)
    down = np.clip(((b + rise) - t) / rise, 0, 1)
    return np.minimum(up, down)


# ---------------------------------------------------------------------------------------------
# one sequence


@dataclass
class _Object:
    sprites: list[np.ndarray]
    area0: float  # alpha sum of the level-0 sprite
    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray
    angle: np.ndarray  # degrees
    blur: float = 0.0  # exposure factor for motion blur (0 = none)


def _pose_matrix(obj: _Object, t: int, level: int, cam: tuple[float, float]) -> np.ndarray:
    """Affine [2, 3] from sprite pixels (mip ``level``) to frame pixels at frame ``t``."""
    size = obj.sprites[level].shape[0]
    span = size - 2 * _PAD / (2 ** level)
    sx, sy = obj.w[t] / span, obj.h[t] / span
    rad = math.radians(obj.angle[t])
    cos, sin = math.cos(rad), math.sin(rad)
    lin = np.array([[cos * sx, -sin * sy], [sin * sx, cos * sy]])
    centre_src = np.array([size / 2 - 0.5, size / 2 - 0.5])
    centre_dst = np.array([obj.cx[t] - cam[0] - 0.5, obj.cy[t] - cam[1] - 0.5])
    return np.hstack([lin, (centre_dst - lin @ centre_src)[:, None]])


def _render(obj: _Object, t: int, cam: tuple[float, float], width: int, height: int, blur_dir: np.ndarray | None):
    """Warp object ``obj`` at frame ``t``: returns (x0, y0, premultiplied RGBA layer, sharp alpha) or None."""
    level = 1 if max(obj.w[t], obj.h[t]) < 0.5 * (_SPRITE - 2 * _PAD) else 0
    sprite = obj.sprites[level]
    matrix = _pose_matrix(obj, t, level, cam)
    size = sprite.shape[0]
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ matrix.T
    kernel = None
    pad = 1
    if blur_dir is not None:
        length = int(round(min(15.0, float(np.hypot(*blur_dir)) * obj.blur)))
        if length >= 3:
            kernel = np.zeros((length, length), dtype=np.float32)
            d = blur_dir / max(float(np.hypot(*blur_dir)), 1e-6) * (length - 1) / 2
            c = (length - 1) / 2
            cv2.line(kernel, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))), 1.0, 1)
            kernel /= kernel.sum()
            pad += length
    x0 = max(0, int(math.floor(corners[:, 0].min())) - pad)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - pad)
    x1 = min(width, int(math.ceil(corners[:, 0].max())) + pad)
    y1 = min(height, int(math.ceil(corners[:, 1].max())) + pad)
    if x1 <= x0 or y1 <= y0:
        return None
    matrix = matrix.copy()
    matrix[:, 2] -= (x0, y0)
    layer = cv2.warpAffine(sprite, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    sharp = layer[..., 3].copy()
    if kernel is not None:
        layer = cv2.filter2D(layer, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return x0, y0, layer, sharp


def _composite(frame: np.ndarray, rendered) -> None:
    """Alpha-composite a premultiplied layer into ``frame`` in place."""
    x0, y0, layer, _ = rendered
    h, w = layer.shape[:2]
    region = frame[y0 : y0 + h, x0 : x0 + w]
    region *= 1.0 - layer[..., 3:4]
    region += layer[..., :3]


def _pick_look_alike(rng: np.random.Generator, colour: str, pattern: str, taken: set[tuple[str, str]]) -> tuple[str, str]:
    """A (colour, pattern) that differs from the target's (same shape is implied)."""
    for _ in range(100):
        if rng.random() < 0.5:
            candidate = (colour, str(rng.choice([p for p in PATTERNS if p != pattern])))
        else:
            candidate = (str(rng.choice([c for c in COLOURS if c != colour])), str(rng.choice(PATTERNS)))
        if candidate not in taken:
            return candidate
    raise RuntimeError("could not draw a distinct distractor appearance")


def describe(size_word: str, colour: str, pattern: str, shape: str) -> str:
    """The target's language description, e.g. ``"a small red striped disc"``."""
    words = ["a", size_word] + (["plain", colour] if pattern == "plain" else [colour, pattern]) + [shape]
    return " ".join(w for w in words if w)


def _size_word(mean_side: float, frame_side: float) -> str:
    ratio = mean_side / frame_side
    return "small" if ratio < 0.12 else ("large" if ratio > 0.2 else "medium")


def _plan_sequence(cfg: SyntheticConfig, split: str, index: int) -> dict[str, Any]:
    """Draw everything about one sequence from its own random stream."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index, GENERATOR_VERSION])
    W, H = cfg.width, cfg.height
    n = cfg.frames if cfg.frames is not None else int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    unit = min(W, H) / 256.0  # sizes scale with the frame
    attrs: dict[str, Any] = {
        "motion": "fast" if rng.random() < 0.3 else "smooth",
        "scale_change": bool(rng.random() < 0.5),
        "aspect_change": bool(rng.random() < 0.3),
        "rotation": bool(rng.random() < 0.35),
        "occlusion": str(rng.choice(["none", "partial", "full"], p=[0.45, 0.3, 0.25])),
        "out_of_view": bool(rng.random() < 0.2),
        "distractors": int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15])),
        "illumination_change": bool(rng.random() < 0.3),
        "motion_blur": bool(rng.random() < 0.3),
        "camera_shake": bool(rng.random() < 0.25),
    }
    attrs["background"] = str(rng.choice(PHOTOS + PROCEDURAL))
    shape = str(rng.choice(SHAPES))
    colour = str(rng.choice(list(COLOURS)))
    pattern = str(rng.choice(PATTERNS))
    natural = cfg.target_style == "natural" or (cfg.target_style == "mixed" and bool(rng.random() < 0.5))
    return {"rng": rng, "n": n, "unit": unit, "attrs": attrs, "shape": shape, "colour": colour, "pattern": pattern,
            "natural": natural}


def _object_track(rng: np.random.Generator, n: int, W: int, H: int, unit: float, *, shape: str, fast: bool,
                  scale_change: bool, aspect_change: bool, rotation: bool, base: float | None = None) -> dict[str, np.ndarray]:
    """Centre, size and angle per frame for one object that stays inside the frame."""
    side = base if base is not None else rng.uniform(20, 46) * unit
    aspect = rng.uniform(1.6, 2.4) if shape == "rectangle" else rng.uniform(0.85, 1.18)
    if rng.random() < 0.5:
        aspect = 1.0 / aspect if shape == "rectangle" else aspect
    t = np.arange(n) / max(n - 1, 1)
    scale = np.ones(n)
    if scale_change:
        target = rng.uniform(0.55, 1.8)
        scale = np.exp(np.log(target) * (0.5 - 0.5 * np.cos(np.pi * t * rng.uniform(0.8, 2.0))))
    asp = np.full(n, aspect)
    if aspect_change:
        asp = aspect * np.exp(rng.uniform(0.2, 0.4) * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * t + rng.random())))
    w = side * scale * np.sqrt(asp)
    h = side * scale / np.sqrt(asp)
    limit = 72 * unit  # keep targets within ~10-72 px at 256x256
    shrink = np.minimum(1.0, limit / np.maximum(w, h))
    grow = np.maximum(1.0, 10 * unit / np.minimum(w, h))
    w, h = w * shrink * grow, h * shrink * grow
    if rotation:
        angle = rng.uniform(-20, 20) + rng.choice([-1, 1]) * rng.uniform(1.5, 6.0) * np.arange(n)
    else:
        angle = np.zeros(n)
    half = np.hypot(w, h).max() / 2 + 2
    path = _fast_path if fast else _smooth_path
    cx = path(rng, n, half, W - half)
    cy = path(rng, n, half, H - half)
    return {"cx": cx, "cy": cy, "w": w, "h": h, "angle": angle}


def _out_of_view(rng: np.random.Generator, attrs: dict[str, Any], track: dict[str, np.ndarray], n: int, quiet: int,
                 W: int, H: int, windows: dict[str, tuple[int, int]]) -> None:
    """Move the target out of the frame and back during a window (in place; the excursion falls in
    the second half of the sequence when there is also an occlusion); clears ``out_of_view`` when
    the sequence is too short for one."""
    lo, hi = (n // 2 + 2 if attrs["occlusion"] != "none" else quiet + 3, n - 4)
    if not (attrs["out_of_view"] and hi - lo >= 4):
        attrs["out_of_view"] = False
        return
    a, b = _window(rng, lo, hi, (3, max(3, n // 8)))
    rise = int(rng.integers(2, 5))
    e = _ramp(n, a, b, rise)
    e[: max(1, quiet)] = 0
    cx, cy = track["cx"], track["cy"]
    ext = np.hypot(track["w"], track["h"]).max() * 0.7 + 8
    side = rng.integers(4)
    if side == 0:
        cx[:] = (1 - e) * cx + e * (-ext)
    elif side == 1:
        cx[:] = (1 - e) * cx + e * (W + ext)
    elif side == 2:
        cy[:] = (1 - e) * cy + e * (-ext)
    else:
        cy[:] = (1 - e) * cy + e * (H + ext)
    windows["out_of_view"] = (a, b)


def _target(rng: np.random.Generator, plan: dict[str, Any], track: dict[str, np.ndarray]) -> tuple[_Object, dict[str, Any]]:
    """The target object on ``track`` and its look (``shape``, ``colour``, ``pattern``; a natural
    target adds ``natural``, ``photo`` and ``silhouette`` and is ``textured`` in its main colour)."""
    shape, colour, pattern = plan["shape"], plan["colour"], plan["pattern"]
    photo = mask_kind = ""
    if plan["natural"]:
        photo, mask_kind = str(rng.choice(PHOTOS)), str(rng.choice(NATURAL_MASKS))
        sprites = _make_natural_sprite(photo, mask_kind, rng)
        colour, pattern = _colour_name(sprites[0]), "textured"
    else:
        sprites = _make_sprite(shape, colour, pattern, rng)
    target = _Object(sprites, 0.0, blur=rng.uniform(0.6, 1.0) if plan["attrs"]["motion_blur"] else 0.0, **track)
    target.area0 = float(target.sprites[0][..., 3].sum())
    look: dict[str, Any] = {"shape": shape, "colour": colour, "pattern": pattern}
    if plan["natural"]:
        look.update({"natural": True, "photo": photo, "silhouette": mask_kind})
    return target, look


def _distractors(rng: np.random.Generator, plan: dict[str, Any], target: _Object, look: dict[str, Any], W: int,
                 H: int) -> tuple[list[_Object], list[dict[str, str]]]:
    """Look-alike distractors: the target's shape (silhouette) in another colour or pattern (another
    region of a photo); returns the objects and their looks."""
    n, unit, attrs = plan["n"], plan["unit"], plan["attrs"]
    shape = look["shape"]
    taken = {(look["colour"], look["pattern"])}
    distractors: list[_Object] = []
    looks: list[dict[str, str]] = []
    side_mean = float(np.sqrt(target.w * target.h).mean())
    for _ in range(attrs["distractors"]):
        d_colour, d_pattern = _pick_look_alike(rng, look["colour"], look["pattern"], taken)
        taken.add((d_colour, d_pattern))
        track = _object_track(rng, n, W, H, unit, shape=shape, fast=bool(rng.random() < 0.3),
                              scale_change=bool(rng.random() < 0.3), aspect_change=False,
                              rotation=attrs["rotation"] and bool(rng.random() < 0.5),
                              base=side_mean * rng.uniform(0.8, 1.2))
        if plan["natural"]:  # a look-alike: another region of the same photo (or another photo), same silhouette
            source = look["photo"] if rng.random() < 0.6 else str(rng.choice(PHOTOS))
            d_sprites = _make_natural_sprite(source, look["silhouette"], rng)
            d_colour, d_pattern = _colour_name(d_sprites[0]), "textured"
        else:
            d_sprites = _make_sprite(shape, d_colour, d_pattern, rng)
        distractors.append(_Object(d_sprites, 0.0, blur=target.blur, **track))
        looks.append({"colour": d_colour, "pattern": d_pattern, "shape": shape,
                      "description": describe("", d_colour, d_pattern, shape)})
    return distractors, looks


def _occluders(rng: np.random.Generator, attrs: dict[str, Any], target: _Object, span: tuple[int, int], unit: float,
               windows: dict[str, tuple[int, int]]) -> list[_Object]:
    """A textured bar that passes over the target (fully or partly) during a window within ``span``;
    clears ``occlusion`` when the span is too short for one."""
    n = len(target.cx)
    if attrs["occlusion"] == "none" or span[1] - span[0] < 3:
        attrs["occlusion"] = "none"
        return []
    full = attrs["occlusion"] == "full"
    a, b = _window(rng, span[0], span[1], (3, max(3, n // 7)) if full else (4, max(4, n // 5)))
    radius = float(np.hypot(target.w, target.h)[a : b + 1].max()) / 2
    if full:
        ow = np.full(n, 2 * radius * rng.uniform(1.25, 1.6) + 6)
        oh = np.full(n, 2 * radius * rng.uniform(1.25, 1.6) + 6)
    else:
        ow = np.full(n, radius * rng.uniform(1.0, 1.6))
        oh = ow * rng.uniform(0.9, 1.3)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    speed = rng.uniform(5, 10) * unit
    tt = np.arange(n, dtype=np.float64)
    travel = np.where(tt < a, tt - a, np.where(tt > b, tt - b, 0.0)) * speed
    # partial: the occluder's near edge stays between -0.15 and 0.35 radii from the target centre
    offset = 0.0 if full else float(radius * rng.uniform(-0.15, 0.35) + np.hypot(ow[0], oh[0]) / 2)
    perp = np.array([-direction[1], direction[0]])
    ocx = target.cx + direction[0] * travel + perp[0] * offset
    ocy = target.cy + direction[1] * travel + perp[1] * offset
    texture = _background(str(rng.choice(PROCEDURAL)), rng, _SPRITE - 2 * _PAD, _SPRITE - 2 * _PAD)
    sprite = np.zeros((_SPRITE, _SPRITE, 4), dtype=np.float32)
    sprite[_PAD:-_PAD, _PAD:-_PAD, :3] = texture
    sprite[_PAD:-_PAD, _PAD:-_PAD, 3] = 1.0
    windows["occlusion"] = (a, b)
    return [_Object([sprite, cv2.resize(sprite, (_SPRITE // 2,) * 2, interpolation=cv2.INTER_AREA)],
                    float(sprite[..., 3].sum()), ocx, ocy, ow, oh, np.full(n, rng.uniform(-30, 30)))]


def _camera_and_light(rng: np.random.Generator, attrs: dict[str, Any], n: int, unit: float, quiet: int, W: int,
                      H: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Camera offsets [n, 2] (shake), per-frame RGB gains [n, 3] (illumination) and three sensor
    noise images that the frames cycle through."""
    cam = np.zeros((n, 2))
    if attrs["camera_shake"]:
        cam = np.clip(rng.normal(0, rng.uniform(2.0, 5.0) * unit, size=(n, 2)), -_MARGIN + 1, _MARGIN - 1)
        cam[0] = 0
        cam = np.round(cam)
    gain = np.ones((n, 3), dtype=np.float32)
    if attrs["illumination_change"]:
        tt = np.arange(n) / n
        level = 1 + rng.uniform(0.25, 0.45) * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * tt + rng.random()))
        if rng.random() < 0.4:  # a sudden drop (lights dimmed) for a while
            a, b = _window(rng, quiet + 1, n - 2, (5, max(5, n // 4)))
            level[a : b + 1] *= rng.uniform(0.45, 0.65)
        level[0] = 1.0
        gain = (level[:, None] * rng.uniform(0.9, 1.1, size=(1, 3))).astype(np.float32)
        gain[0] = 1.0
    noise_sigma = rng.uniform(1.5, 4.0)
    noise_bank = [rng.normal(0, noise_sigma, size=(H, W, 3)).astype(np.float32) for _ in range(3)]
    return cam, gain, noise_bank


def _draw(frame: np.ndarray, objects: list[_Object], t: int, cam: tuple[float, float]) -> None:
    """Composite ``objects`` at frame ``t`` into ``frame`` (motion-blurred where they have blur)."""
    for obj in objects:
        rendered = _render(obj, t, cam, frame.shape[1], frame.shape[0], _velocity(obj, t) if obj.blur else None)
        if rendered is not None:
            _composite(frame, rendered)


def _draw_target(frame: np.ndarray, target: _Object, occluders: list[_Object], t: int,
                 cam: tuple[float, float]) -> tuple[tuple[int, int, int, int] | None, float, int]:
    """Composite the target, then the occluders, at frame ``t``; returns the box of its sharp
    pixels (None when there are none), the visible fraction of its area and whether the image
    border cuts it (1) or not (0)."""
    W, H = frame.shape[1], frame.shape[0]
    rendered = _render(target, t, cam, W, H, _velocity(target, t) if target.blur else None)
    if rendered is None:
        _draw(frame, occluders, t, cam)
        return None, 0.0, 0
    _composite(frame, rendered)
    x0, y0, _, sharp = rendered
    ys, xs = np.nonzero(sharp > 0.5)
    box = (x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) if len(xs) else None
    hidden = np.zeros_like(sharp)
    for occ in occluders:
        occ_r = _render(occ, t, cam, W, H, None)
        if occ_r is None:
            continue
        _composite(frame, occ_r)
        _paste_max(hidden, x0, y0, occ_r)
    area = target.area0 * (target.w[t] / (_SPRITE - 2 * _PAD)) * (target.h[t] / (_SPRITE - 2 * _PAD))
    visible = float((sharp * (1 - hidden)).sum()) / max(area, 1e-6)
    return box, visible, int(float(sharp.sum()) / max(area, 1e-6) < 0.97)


def _render_frames(canvas: np.ndarray, target: _Object, distractors: list[_Object], occluders: list[_Object],
                   cam: np.ndarray, gain: np.ndarray, noise_bank: list[np.ndarray], W: int,
                   H: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Every frame (distractors, target, occluders over the camera's view of ``canvas``, then light
    and noise); returns the uint8 frames, the boxes [n, 4] xywh, ``cover`` (0-8) and ``cut_by_image``."""
    n = len(cam)
    frames: list[np.ndarray] = []
    boxes = np.zeros((n, 4), dtype=np.float64)
    cover = np.zeros(n, dtype=np.int64)
    cut = np.zeros(n, dtype=np.int64)
    for t in range(n):
        view = (float(cam[t, 0]), float(cam[t, 1]))
        oy, ox = _MARGIN + int(view[1]), _MARGIN + int(view[0])
        frame = canvas[oy : oy + H, ox : ox + W].copy()
        _draw(frame, distractors, t, view)
        box, visible, cut[t] = _draw_target(frame, target, occluders, t, view)
        if box is not None:
            boxes[t] = box
        visible = min(visible, 1.0)
        cover[t] = 0 if visible < 0.05 else int(np.clip(round(visible * 8), 1, 8))
        frame = frame * gain[t] + noise_bank[t % 3]
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames, boxes, cover, cut


def render_sequence(cfg: SyntheticConfig, split: str, index: int) -> dict[str, Any]:
    """Render sequence ``index`` of ``split`` in memory.

    Returns a dict with ``frames`` (list of HxWx3 uint8 RGB), ``boxes`` [T, 4] float64 xywh,
    ``absence``/``cover``/``cut_by_image`` per-frame int arrays, ``language`` and ``attributes``.
    Every random draw comes from the sequence's own stream, in a fixed order (background, target
    path, out-of-view excursion, target, distractors, occluder, camera and light).
    """
    plan = _plan_sequence(cfg, split, index)
    rng: np.random.Generator = plan["rng"]
    n, unit, attrs = plan["n"], plan["unit"], plan["attrs"]
    W, H = cfg.width, cfg.height
    canvas = _background(attrs["background"], rng, H + 2 * _MARGIN, W + 2 * _MARGIN)
    track = _object_track(rng, n, W, H, unit, shape=plan["shape"], fast=attrs["motion"] == "fast",
                          scale_change=attrs["scale_change"], aspect_change=attrs["aspect_change"],
                          rotation=attrs["rotation"])
    quiet = min(5, n // 4)  # the first frames stay clean: the target is fully visible at init
    windows: dict[str, tuple[int, int]] = {}
    occlusion_span = (quiet + 3, n // 2 if attrs["out_of_view"] else n - 4)
    _out_of_view(rng, attrs, track, n, quiet, W, H, windows)
    target, look = _target(rng, plan, track)
    distractors, looks = _distractors(rng, plan, target, look, W, H)
    occluders = _occluders(rng, attrs, target, occlusion_span, unit, windows)
    cam, gain, noise_bank = _camera_and_light(rng, attrs, n, unit, quiet, W, H)
    frames, boxes, cover, cut = _render_frames(canvas, target, distractors, occluders, cam, gain, noise_bank, W, H)
    absence = (cover == 0).astype(np.int64)
    if absence[0]:
        raise RuntimeError(f"internal error: target absent in the first frame of {sequence_name(split, index)}")

    valid_sides = np.sqrt(boxes[cover > 0, 2] * boxes[cover > 0, 3])
    size_word = _size_word(float(valid_sides.mean()), float(min(W, H)))
    attrs.update({
        "target": look,
        "distractor_appearance": looks,
        "windows": {k: list(v) for k, v in windows.items()},
        "absent_frames": int(absence.sum()),
    })
    return {
        "frames": frames,
        "boxes": boxes,
        "absence": absence,
        "cover": cover,
        "cut_by_image": cut,
        "language": describe(size_word, look["colour"], look["pattern"], "object" if plan["natural"] else look["shape"]),
        "attributes": attrs,
    }


def _velocity(obj: _Object, t: int) -> np.ndarray:
    """Centre displacement at frame ``t`` (towards the next frame where there is one)."""
    a, b = (t, t + 1) if t + 1 < len(obj.cx) else (t - 1, t)
    return np.array([obj.cx[b] - obj.cx[a], obj.cy[b] - obj.cy[a]])


def _paste_max(hidden: np.ndarray, x0: int, y0: int, rendered) -> None:
    """Accumulate an occluder's alpha into ``hidden`` (target ROI at x0, y0) with max()."""
    ox, oy, _, alpha = rendered
    h, w = hidden.shape
    ah, aw = alpha.shape
    ix0, iy0 = max(x0, ox), max(y0, oy)
    ix1, iy1 = min(x0 + w, ox + aw), min(y0 + h, oy + ah)
    if ix1 <= ix0 or iy1 <= iy0:
        return
    dst = hidden[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    np.maximum(dst, alpha[iy0 - oy : iy1 - oy, ix0 - ox : ix1 - ox], out=dst)


# ---------------------------------------------------------------------------------------------
# writing


def _write_sequence(cfg: SyntheticConfig, split: str, index: int, split_dir: Path) -> dict[str, Any]:
    """Render and write one sequence directory atomically; returns its summary."""
    name = sequence_name(split, index)
    final = split_dir / name
    if final.is_dir():
        return _summary_from_disk(final)
    seq = render_sequence(cfg, split, index)
    tmp = split_dir / f".tmp_{name}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.quality]
    for t, frame in enumerate(seq["frames"]):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise IOError(f"could not encode frame {t} of {name}")
        (tmp / f"{t + 1:08d}.jpg").write_bytes(buf.tobytes())
    (tmp / "groundtruth.txt").write_text(
        "".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in seq["boxes"]), encoding="utf-8")
    for key in ("absence", "cover", "cut_by_image"):
        (tmp / f"{key}.label").write_text("".join(f"{int(v)}\n" for v in seq[key]), encoding="utf-8")
    attrs = seq["attributes"]
    target = attrs["target"]
    meta = [
        "[METAINFO]",
        "url: synthetic",
        "begin frame: 1",
        f"end frame: {len(seq['frames'])}",
        "anno fps: 30",
        f"object_class: {target['shape']}",
        f"motion_class: {attrs['motion']}",
        "major_class: synthetic",
        "root_class: object",
        f"motion_adverb: {'fast' if attrs['motion'] == 'fast' else 'slowly'}",
        f"resolution: ({cfg.width}, {cfg.height})",
    ]
    (tmp / "meta_info.ini").write_text("\n".join(meta) + "\n", encoding="utf-8")
    (tmp / "nlp.txt").write_text(seq["language"] + "\n", encoding="utf-8")
    (tmp / "attributes.json").write_text(json.dumps(attrs, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, final)
    return {"name": name, "frames": len(seq["frames"]), "absent": int(seq["absence"].sum()), "attributes": attrs}


def _summary_from_disk(seq_dir: Path) -> dict[str, Any]:
    attrs = json.loads((seq_dir / "attributes.json").read_text(encoding="utf-8"))
    frames = sum(1 for p in seq_dir.iterdir() if p.suffix == ".jpg")
    return {"name": seq_dir.name, "frames": frames, "absent": int(attrs.get("absent_frames", 0)), "attributes": attrs}


def _job(args: tuple[SyntheticConfig, str, int, str]) -> dict[str, Any]:
    cfg, split, index, split_dir = args
    cv2.setNumThreads(1)
    return _write_sequence(cfg, split, index, Path(split_dir))


def _stats(summaries: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-split counts: sequences, frames, absent frames and how many sequences have each attribute."""
    out: dict[str, Any] = {}
    for split, items in summaries.items():
        counts: dict[str, int] = {}
        for item in items:
            a = item["attributes"]
            for key in ("scale_change", "aspect_change", "rotation", "out_of_view", "illumination_change",
                        "motion_blur", "camera_shake"):
                counts[key] = counts.get(key, 0) + int(bool(a[key]))
            counts[f"motion_{a['motion']}"] = counts.get(f"motion_{a['motion']}", 0) + 1
            counts[f"occlusion_{a['occlusion']}"] = counts.get(f"occlusion_{a['occlusion']}", 0) + 1
            counts["with_distractors"] = counts.get("with_distractors", 0) + int(a["distractors"] > 0)
        out[split] = {
            "sequences": len(items),
            "frames": int(sum(i["frames"] for i in items)),
            "absent_frames": int(sum(i["absent"] for i in items)),
            "attributes": dict(sorted(counts.items())),
        }
    return out


def generate_synthetic(root: str | Path, config: SyntheticConfig | None = None, *, workers: int = 1,
                       progress: bool = True, **params: Any) -> dict[str, Any]:
    """Write the synthetic benchmark under ``root`` and return its manifest.

    Args:
        root: output folder; created if needed. It must be empty, or hold a partial benchmark
            with the same parameters (finished sequences are kept: generation resumes).
        config: a :class:`SyntheticConfig`; or pass its fields as keyword ``params``.
        workers: processes used to render (1 = in this process).
        progress: show a tqdm bar.

    Returns:
        The manifest (also written to ``root/manifest.json``): parameters, their hash, the
        sequence names per split and statistics.
    """
    from tqdm.auto import tqdm

    cfg = _config(config, params)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive int, got {workers!r}")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    marker = root / _PARAMS_MARKER
    existing = [p.name for p in root.iterdir() if p.name not in (_PARAMS_MARKER,)]
    if marker.is_file():
        previous = json.loads(marker.read_text(encoding="utf-8"))
        if previous.get("hash") != cfg.param_hash():
            raise ValueError(
                f"root: {root} holds a synthetic benchmark generated with other parameters "
                f"({previous.get('params')}); requested {dataclasses.asdict(cfg)}. Use another folder or remove it."
            )
    elif existing:
        raise ValueError(f"root: expected an empty folder or a synthetic benchmark, got a non-empty {root}")
    atomic_write_text(marker, json.dumps({"hash": cfg.param_hash(), "params": dataclasses.asdict(cfg)}, sort_keys=True))

    jobs = []
    for split, count in cfg.counts().items():
        split_dir = root / split
        split_dir.mkdir(exist_ok=True)
        jobs.extend((cfg, split, i, str(split_dir)) for i in range(count))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    bar = tqdm(total=len(jobs), desc="vtrack synth", unit="seq", disable=not progress)
    if workers == 1:
        for job in jobs:
            results[(job[1], job[2])] = _write_sequence(job[0], job[1], job[2], Path(job[3]))
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for job, summary in zip(jobs, pool.map(_job, jobs, chunksize=1)):
                results[(job[1], job[2])] = summary
                bar.update(1)
    bar.close()

    summaries = {split: [results[(split, i)] for i in range(count)] for split, count in cfg.counts().items()}
    for split, items in summaries.items():
        atomic_write_text(root / split / "list.txt", "".join(f"{item['name']}\n" for item in items))
    manifest = {
        "generator": "vtrack.data.synthetic",
        "version": GENERATOR_VERSION,
        "hash": cfg.param_hash(),
        "params": dataclasses.asdict(cfg),
        "splits": {split: [item["name"] for item in items] for split, items in summaries.items()},
        "stats": _stats(summaries),
    }
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _config(config: SyntheticConfig | None, params: dict[str, Any]) -> SyntheticConfig:
    if config is not None and params:
        raise TypeError(f"config: pass either a SyntheticConfig or keyword parameters, got both ({sorted(params)})")
    if config is None:
        fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise TypeError(f"params: unknown synthetic parameter(s) {unknown}; expected some of {sorted(fields)}")
        return SyntheticConfig(**params)
    if not isinstance(config, SyntheticConfig):
        raise TypeError(f"config: expected a SyntheticConfig, got {type(config).__name__}")
    return config


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The manifest of a finished benchmark under ``root``, or None if there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid manifest JSON ({err.msg})") from None


def ensure_synthetic(root: str | Path, config: SyntheticConfig | None = None, *, workers: int = 1,
                     progress: bool = True, **params: Any) -> Path:
    """Generate the benchmark under ``root`` unless an identical one is already there.

    A finished benchmark whose manifest hash matches the parameters is reused as is; one with
    different parameters raises ValueError saying which (use another folder); a partial one with
    the same parameters is completed. Returns ``root`` as a Path.
    """
    cfg = _config(config, params)
    root = Path(root).expanduser()
    manifest = read_manifest(root)
    if manifest is not None:
        if manifest.get("hash") != cfg.param_hash():
            raise ValueError(
                f"root: {root} holds a synthetic benchmark with parameters {manifest.get('params')}, "
                f"requested {dataclasses.asdict(cfg)}; use another folder or remove it"
            )
        missing = [f"{split}/{name}" for split, names in manifest["splits"].items() for name in names
                   if not (root / split / name).is_dir()]
        if not missing:
            return root
        raise ValueError(f"root: synthetic benchmark at {root} is incomplete (missing {missing[:3]}...); remove it")
    generate_synthetic(root, cfg, workers=workers, progress=progress)
    return root
