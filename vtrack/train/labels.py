"""Training-label generators, selected by name from the processing config.

A generator is built from a spec ``{"name": "<generator>", **params}`` by
:func:`build_label_generator` and called once per sample with a :class:`LabelContext` (the target
box in crop pixels, crop sizes, whether the pair is positive). It returns a dict of tensors whose
keys start with ``label_`` (configurable per generator with ``prefix``, which must itself start
with ``label_``); the DataLoader stacks them to a leading batch dimension.

Built-in generators (shapes per sample; see docs/training.md):

``gaussian_heatmap`` (OSTrack / CenterNet)
    ``label_heatmap`` [1, F, F] float32, F = search_size // stride: a Gaussian at the rounded
    target centre in feature cells, radius from CenterNet's ``gaussian_radius`` (min_overlap 0.7),
    sigma = (2r + 1) / 6; or a fixed ``sigma`` (cells). All zero for negative pairs.
``fcos`` (SiamFC++ / SiamCAR)
    on a ``size`` x ``size`` score map whose cell (i, j) sits at pixel
    ``(offset + j*stride, offset + i*stride)`` of the search crop: ``label_cls`` [F, F] (1 inside
    the box, optionally only within ``center_radius`` strides of its centre), ``label_ltrb``
    [4, F, F] distances in pixels, ``label_centerness`` [F, F] (0 off the target).
``anchors_atss`` (SiamRPN++ anchors, ATSS assignment; DuML)
    ``label_anchor_cls`` [A, F, F] (1 positive, 0 negative), ``label_anchor_reg`` [4, A, F, F]
    (dcx, dcy, dw, dh) = ((gx-ax)/aw, (gy-ay)/ah, log(gw/aw), log(gh/ah)), ``label_anchor_iou``
    [A, F, F]. ATSS: the ``topk`` candidate anchors by ``criterion`` (``"center_distance"``:
    closest centres, the original ATSS; ``"iou"``: highest IoU, DuML's top-15/top-11 variant)
    set the IoU threshold mean + std; candidates above it whose centre lies inside the box are
    positive.
``position`` (ESAT self-supervised position labels)
    ``label_pos_abs`` [Nz + Nx] int64 and ``label_pos_pn`` [Nz + Nx] int64 over the template
    tokens then the search tokens (row-major patch order). Absolute labels: a search token's
    label is its own index in [0, Nx); a template token's label is the index of the search token
    its centre maps to when the template target box is mapped onto the search target box
    (without jitter this is the central region of the search grid), ``ignore_index`` if it falls
    outside. Positive/negative labels: 1 for every template token and for search tokens whose
    centre lies in the target box (at least the token under the box centre), 0 for the rest.
    For negative pairs the template absolute labels are ``ignore_index`` and no search token is 1.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch

__all__ = [
    "LabelContext",
    "LabelGenerator",
    "register_label",
    "build_label_generator",
    "list_labels",
    "gaussian_radius",
    "gaussian_2d",
    "generate_anchors",
    "score_map_points",
    "GaussianHeatmap",
    "FCOSLabels",
    "AnchorATSSLabels",
    "PositionLabels",
]


@dataclass(frozen=True)
class LabelContext:
    """What a label generator sees for one sample.

    Attributes:
        search_box: target (x, y, w, h) in search-crop pixels (float64 [4]).
        template_box: target (x, y, w, h) in template-crop pixels (float64 [4]).
        search_size: side of the square search crop in pixels.
        template_size: side of the square template crop in pixels.
        positive: False for negative pairs (the search crop does not hold the template target).
    """

    search_box: np.ndarray
    template_box: np.ndarray
    search_size: int
    template_size: int
    positive: bool = True


class LabelGenerator(Protocol):
    """A callable ``ctx -> {"label_...": tensor}``."""

    def __call__(self, ctx: LabelContext) -> dict[str, torch.Tensor]: ...


_LABELS: dict[str, Callable[..., LabelGenerator]] = {}


def register_label(name: str) -> Callable[[Any], Any]:
    """Decorator registering a label generator factory (a class taking keyword params)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def deco(factory: Any) -> Any:
        if name in _LABELS and _LABELS[name] is not factory:
            raise ValueError(f"name: label generator {name!r} is already registered")
        _LABELS[name] = factory
        return factory

    return deco


def list_labels() -> list[str]:
    """Names of all registered label generators."""
    return sorted(_LABELS)


def build_label_generator(spec: dict[str, Any], path: str = "labels") -> LabelGenerator:
    """Build a generator from ``{"name": ..., **params}``; errors name ``path``."""
    if not isinstance(spec, dict):
        raise TypeError(f"{path}: expected a mapping with a 'name' key, got {spec!r}")
    if "name" not in spec:
        raise ValueError(f"{path}.name: missing required key (one of {list_labels()})")
    name = spec["name"]
    if name not in _LABELS:
        raise ValueError(f"{path}.name: unknown label generator {name!r}; known: {list_labels()}")
    params = {k: v for k, v in spec.items() if k != "name"}
    factory = _LABELS[name]
    if dataclasses.is_dataclass(factory):
        known = {f.name for f in dataclasses.fields(factory)}
        for key in params:
            if key not in known:
                raise ValueError(f"{path}.{key}: unknown parameter of label generator {name!r}; known: {sorted(known)}")
    try:
        return factory(**params)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{path} ({name}): {err}") from None


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _check_pos_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _check_pos_float(value: Any, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return v


def _check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("label_"):
        raise ValueError(f"prefix: expected a string starting with 'label_', got {prefix!r}")
    return prefix


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's Gaussian radius for a box of ``height`` x ``width`` (as used by OSTrack).

    The smallest of the three radii from CenterNet's quadratic cases (corner displacements keeping
    IoU >= ``min_overlap``), with CenterNet's ``(b + sqrt(b^2 - 4ac)) / 2`` convention.
    """
    a1 = 1.0
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(max(b1 * b1 - 4 * a1 * c1, 0.0))) / 2
    a2 = 4.0
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(max(b2 * b2 - 4 * a2 * c2, 0.0))) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(max(b3 * b3 - 4 * a3 * c3, 0.0))) / 2
    return min(r1, r2, r3)


def gaussian_2d(radius: int, sigma: float) -> np.ndarray:
    """(2r+1)x(2r+1) Gaussian peaking at 1 in the centre; values below eps*max are zeroed."""
    ys, xs = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2.0 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def _draw_gaussian(heatmap: np.ndarray, center: tuple[int, int], radius: int, sigma: float) -> None:
    """Max-paste a Gaussian of ``radius`` at integer ``center`` (x, y), clipped to the map."""
    g = gaussian_2d(radius, sigma)
    x, y = center
    h, w = heatmap.shape
    x0, x1 = max(0, x - radius), min(w, x + radius + 1)
    y0, y1 = max(0, y - radius), min(h, y + radius + 1)
    if x0 >= x1 or y0 >= y1:
        return
    gx0, gy0 = x0 - (x - radius), y0 - (y - radius)
    patch = g[gy0 : gy0 + (y1 - y0), gx0 : gx0 + (x1 - x0)]
    np.maximum(heatmap[y0:y1, x0:x1], patch, out=heatmap[y0:y1, x0:x1])


def score_map_points(size: int, stride: int, offset: float) -> np.ndarray:
    """Pixel coordinates [size, size, 2] (x, y) of the score-map cells in the search crop."""
    coords = offset + stride * np.arange(size, dtype=np.float64)
    xs, ys = np.meshgrid(coords, coords)
    return np.stack([xs, ys], axis=-1)


def generate_anchors(stride: int, ratios: list[float], scales: list[float]) -> np.ndarray:
    """SiamRPN/pysot base anchors [A, 2] (w, h): per ratio r and scale s,
    ``w = int(sqrt(stride^2 / r)) * s``, ``h = int(w0 * r) * s`` (ratio-major order)."""
    out = []
    area = stride * stride
    for r in ratios:
        w0 = int(math.sqrt(area / r))
        h0 = int(w0 * r)
        for s in scales:
            out.append((w0 * s, h0 * s))
    return np.asarray(out, dtype=np.float64)


def _default_offset(search_size: int, size: int, stride: int) -> float:
    """pysot/SiamCAR convention: the centre cell sits at the centre pixel ``search_size // 2``."""
    return float(search_size // 2 - (size // 2) * stride)


def _iou_xyxy(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[..., :2], gt[:2])
    rb = np.minimum(boxes[..., 2:], gt[2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area_g = (gt[2] - gt[0]) * (gt[3] - gt[1])
    return inter / np.maximum(area_a + area_g - inter, 1e-12)


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------
@register_label("gaussian_heatmap")
@dataclass
class GaussianHeatmap:
    """OSTrack/CenterNet centre heatmap ``label_heatmap`` [1, F, F] (F = search_size // stride)."""

    stride: int = 16
    min_overlap: float = 0.7
    sigma: float | None = None
    prefix: str = "label_"

    def __post_init__(self) -> None:
        self.stride = _check_pos_int(self.stride, "stride")
        if not (0 < float(self.min_overlap) < 1):
            raise ValueError(f"min_overlap: expected a number in (0, 1), got {self.min_overlap!r}")
        if self.sigma is not None:
            self.sigma = _check_pos_float(self.sigma, "sigma")
        self.prefix = _check_prefix(self.prefix)

    def __call__(self, ctx: LabelContext) -> dict[str, torch.Tensor]:
        """Heatmap for one sample."""
        if ctx.search_size % self.stride:
            raise ValueError(f"stride: search_size {ctx.search_size} is not a multiple of stride {self.stride}")
        size = ctx.search_size // self.stride
        heat = np.zeros((size, size), dtype=np.float64)
        if ctx.positive:
            x, y, w, h = (float(v) / self.stride for v in ctx.search_box)
            cx, cy = int(np.round(x + w / 2)), int(np.round(y + h / 2))
            if self.sigma is None:
                radius = max(0, int(gaussian_radius(h, w, self.min_overlap)))
                sigma = (2 * radius + 1) / 6.0
            else:
                sigma = self.sigma
                radius = max(1, int(math.ceil(3 * sigma)))
            _draw_gaussian(heat, (cx, cy), radius, sigma)
        return {f"{self.prefix}heatmap": torch.from_numpy(heat.astype(np.float32))[None]}


@register_label("fcos")
@dataclass
class FCOSLabels:
    """SiamFC++/SiamCAR labels: ``label_cls`` [F, F], ``label_ltrb`` [4, F, F], ``label_centerness`` [F, F]."""

    size: int = 25
    stride: int = 8
    offset: float | None = None
    center_radius: float | None = None
    prefix: str = "label_"

    def __post_init__(self) -> None:
        self.size = _check_pos_int(self.size, "size")
        self.stride = _check_pos_int(self.stride, "stride")
        if self.offset is not None and (isinstance(self.offset, bool) or not isinstance(self.offset, (int, float))):
            raise TypeError(f"offset: expected a number or null, got {self.offset!r}")
        if self.center_radius is not None:
            self.center_radius = _check_pos_float(self.center_radius, "center_radius")
        self.prefix = _check_prefix(self.prefix)

    def __call__(self, ctx: LabelContext) -> dict[str, torch.Tensor]:
        """FCOS targets for one sample."""
        off = _default_offset(ctx.search_size, self.size, self.stride) if self.offset is None else float(self.offset)
        pts = score_map_points(self.size, self.stride, off)
        x, y, w, h = (float(v) for v in ctx.search_box)
        l = pts[..., 0] - x
        t = pts[..., 1] - y
        r = x + w - pts[..., 0]
        b = y + h - pts[..., 1]
        ltrb = np.stack([l, t, r, b], axis=0)
        inside = ltrb.min(axis=0) > 0
        if self.center_radius is not None:
            cx, cy = x + w / 2, y + h / 2
            rad = self.center_radius * self.stride
            inside &= (np.abs(pts[..., 0] - cx) <= rad) & (np.abs(pts[..., 1] - cy) <= rad)
        if not ctx.positive:
            inside[:] = False
        lr = np.clip(ltrb[[0, 2]], 1e-6, None)
        tb = np.clip(ltrb[[1, 3]], 1e-6, None)
        ctr = np.sqrt((lr.min(0) / lr.max(0)) * (tb.min(0) / tb.max(0)))
        ctr = np.where(inside, ctr, 0.0)
        p = self.prefix
        return {
            f"{p}cls": torch.from_numpy(inside.astype(np.float32)),
            f"{p}ltrb": torch.from_numpy(ltrb.astype(np.float32)),
            f"{p}centerness": torch.from_numpy(ctr.astype(np.float32)),
        }


@register_label("anchors_atss")
@dataclass
class AnchorATSSLabels:
    """SiamRPN-style anchors with ATSS assignment (see the module docstring for outputs)."""

    size: int = 25
    stride: int = 8
    ratios: list[float] = dataclasses.field(default_factory=lambda: [0.33, 0.5, 1.0, 2.0, 3.0])
    scales: list[float] = dataclasses.field(default_factory=lambda: [8.0])
    offset: float | None = None
    topk: int = 9
    criterion: str = "center_distance"
    ensure_positive: bool = True
    prefix: str = "label_"

    def __post_init__(self) -> None:
        self.size = _check_pos_int(self.size, "size")
        self.stride = _check_pos_int(self.stride, "stride")
        self.topk = _check_pos_int(self.topk, "topk")
        if self.criterion not in ("center_distance", "iou"):
            raise ValueError(f"criterion: expected 'center_distance' or 'iou', got {self.criterion!r}")
        for name in ("ratios", "scales"):
            vals = getattr(self, name)
            if not isinstance(vals, (list, tuple)) or not vals:
                raise TypeError(f"{name}: expected a non-empty list of positive numbers, got {vals!r}")
            setattr(self, name, [_check_pos_float(v, f"{name}[{i}]") for i, v in enumerate(vals)])
        self.prefix = _check_prefix(self.prefix)
        self._base = generate_anchors(self.stride, self.ratios, self.scales)  # [A, 2]

    @property
    def num_anchors(self) -> int:
        """Anchors per location (len(ratios) * len(scales))."""
        return len(self._base)

    def anchors(self, search_size: int) -> np.ndarray:
        """Anchors [A, F, F, 4] as (cx, cy, w, h) in search-crop pixels."""
        off = _default_offset(search_size, self.size, self.stride) if self.offset is None else float(self.offset)
        pts = score_map_points(self.size, self.stride, off)  # [F, F, 2]
        a = self.num_anchors
        out = np.empty((a, self.size, self.size, 4), dtype=np.float64)
        out[..., 0] = pts[None, ..., 0]
        out[..., 1] = pts[None, ..., 1]
        out[..., 2] = self._base[:, 0, None, None]
        out[..., 3] = self._base[:, 1, None, None]
        return out

    def __call__(self, ctx: LabelContext) -> dict[str, torch.Tensor]:
        """ATSS-assigned anchor targets for one sample."""
        anc = self.anchors(ctx.search_size)
        x, y, w, h = (float(v) for v in ctx.search_box)
        gx, gy = x + w / 2, y + h / 2
        gt_xyxy = np.array([x, y, x + w, y + h])
        anc_xyxy = np.concatenate([anc[..., :2] - anc[..., 2:] / 2, anc[..., :2] + anc[..., 2:] / 2], axis=-1)
        iou = _iou_xyxy(anc_xyxy, gt_xyxy)  # [A, F, F]
        reg = np.stack(
            [
                (gx - anc[..., 0]) / anc[..., 2],
                (gy - anc[..., 1]) / anc[..., 3],
                np.log(w / anc[..., 2]),
                np.log(h / anc[..., 3]),
            ],
            axis=0,
        )
        cls = np.zeros(iou.shape, dtype=np.float32)
        if ctx.positive:
            flat_iou = iou.reshape(-1)
            k = min(self.topk, flat_iou.size)
            if self.criterion == "center_distance":
                dist = np.hypot(anc[..., 0] - gx, anc[..., 1] - gy).reshape(-1)
                cand = np.argsort(dist, kind="stable")[:k]
            else:
                cand = np.argsort(-flat_iou, kind="stable")[:k]
            cand_iou = flat_iou[cand]
            thr = cand_iou.mean() + (cand_iou.std(ddof=1) if k > 1 else 0.0)
            acx = anc[..., 0].reshape(-1)[cand]
            acy = anc[..., 1].reshape(-1)[cand]
            inside = (acx > x) & (acx < x + w) & (acy > y) & (acy < y + h)
            pos = cand[(cand_iou >= thr) & inside]
            if pos.size == 0 and self.ensure_positive:
                pos = np.array([int(np.argmax(flat_iou))])
            cls.reshape(-1)[pos] = 1.0
        p = self.prefix
        return {
            f"{p}anchor_cls": torch.from_numpy(cls),
            f"{p}anchor_reg": torch.from_numpy(reg.astype(np.float32)),
            f"{p}anchor_iou": torch.from_numpy(iou.astype(np.float32)),
        }


@register_label("position")
@dataclass
class PositionLabels:
    """ESAT absolute and positive/negative position labels over template+search tokens."""

    stride: int = 16
    ignore_index: int = -100
    prefix: str = "label_"

    def __post_init__(self) -> None:
        self.stride = _check_pos_int(self.stride, "stride")
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int) or self.ignore_index >= 0:
            raise ValueError(f"ignore_index: expected a negative int, got {self.ignore_index!r}")
        self.prefix = _check_prefix(self.prefix)

    def __call__(self, ctx: LabelContext) -> dict[str, torch.Tensor]:
        """Position labels for one sample."""
        for name, size in (("search_size", ctx.search_size), ("template_size", ctx.template_size)):
            if size % self.stride:
                raise ValueError(f"stride: {name} {size} is not a multiple of stride {self.stride}")
        fz, fx = ctx.template_size // self.stride, ctx.search_size // self.stride
        s = self.stride
        # search tokens: own index; pn = centre inside the box
        search_abs = np.arange(fx * fx, dtype=np.int64)
        centres_x = (np.arange(fx) + 0.5) * s
        sx, sy, sw, sh = (float(v) for v in ctx.search_box)
        in_x = (centres_x >= sx) & (centres_x < sx + sw)
        in_y = (centres_x >= sy) & (centres_x < sy + sh)
        search_pn = (in_y[:, None] & in_x[None, :]).astype(np.int64).reshape(-1)
        # template tokens: mapped onto the search grid through the two target boxes
        tx, ty, tw, th = (float(v) for v in ctx.template_box)
        centres_z = (np.arange(fz) + 0.5) * s
        if ctx.positive:
            k = math.sqrt(sw * sh) / math.sqrt(tw * th)
            mx = sx + sw / 2 + (centres_z - (tx + tw / 2)) * k
            my = sy + sh / 2 + (centres_z - (ty + th / 2)) * k
            col = np.floor(mx / s).astype(np.int64)
            row = np.floor(my / s).astype(np.int64)
            ok = (row[:, None] >= 0) & (row[:, None] < fx) & (col[None, :] >= 0) & (col[None, :] < fx)
            template_abs = np.where(ok, row[:, None] * fx + col[None, :], self.ignore_index).reshape(-1)
            if not search_pn.any():
                r = min(max(int((sy + sh / 2) // s), 0), fx - 1)
                c = min(max(int((sx + sw / 2) // s), 0), fx - 1)
                search_pn[r * fx + c] = 1
        else:
            template_abs = np.full(fz * fz, self.ignore_index, dtype=np.int64)
            search_pn[:] = 0
        template_pn = np.ones(fz * fz, dtype=np.int64)
        p = self.prefix
        return {
            f"{p}pos_abs": torch.from_numpy(np.concatenate([template_abs, search_abs])),
            f"{p}pos_pn": torch.from_numpy(np.concatenate([template_pn, search_pn])),
        }
