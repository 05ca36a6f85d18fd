"""DuML online tracker: fused OFC/ONR localization, score voting, DiMP-style online updates."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from vtrack.models.duml.anchors import cxcywh_to_xyxy, decode
from vtrack.deploy.engine import Engine, TorchEngine
from vtrack.models.duml.branches import duml_branches, flatten_kernels
from vtrack.models.duml.config import DuMLTrackerConfig
from vtrack.models.duml.model import DuML, pixel_to_cell
from vtrack.models.duml.onr import apply_filter
from vtrack.models.layers.score_voting import score_voting
from vtrack.tracking.base import Tracker, TrackResult
from vtrack.tracking.postprocess import TrackState, update_state
from vtrack.tracking.preprocess import sample_target, to_tensor
from vtrack.tracking.windows import cosine_window

log = logging.getLogger(__name__)



def crop_rotated(
    image: np.ndarray,
    center: tuple[float, float],
    side: float,
    out_size: int,
    pad_value: tuple[float, float, float],
    angle_deg: float,
) -> np.ndarray:
    """SiamFC crop rotated by ``angle_deg`` about ``center`` (first-frame augmentation).

    Same continuous coordinates as :func:`vtrack.tracking.crops.sample_target`: the image point
    ``p`` goes to ``R (p - center) * out_size / side + out_size / 2``.
    """
    r = out_size / side
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * r
    # pixel centres: (u + 0.5) = rot (x + 0.5 - c) + N/2
    t = rot @ (np.full(2, 0.5) - np.asarray(center, dtype=np.float64)) + out_size / 2.0 - 0.5
    mat = np.concatenate([rot, t[:, None]], axis=1)
    return cv2.warpAffine(
        image, mat, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=pad_value
    )


@dataclass
class SampleMemory:
    """ONR support set with DiMP's sample-weight scheme (``update_sample_weights``).

    Holds up to ``size`` feature maps with target centres (cells) and weights summing to 1; the
    initial (augmented first-frame) samples keep at least ``init_min_weight`` of the total.
    """

    feats: torch.Tensor  # [M,D,W,W]
    centers: torch.Tensor  # [M,2]
    weights: torch.Tensor  # [M]
    count: int
    num_init: int
    init_min_weight: float
    last: int | None = None  # index of the newest sample

    @classmethod
    def create(cls, init_feats: torch.Tensor, init_centers: torch.Tensor, size: int, init_min_weight: float) -> "SampleMemory":
        """Memory of capacity ``size`` holding the initial samples with equal weights."""
        n = init_feats.shape[0]
        if n > size:
            raise ValueError(f"memory_size: expected >= the {n} initial samples, got {size}")
        feats = init_feats.new_zeros((size, *init_feats.shape[1:]))
        feats[:n] = init_feats
        centers = init_centers.new_zeros((size, 2))
        centers[:n] = init_centers
        weights = init_feats.new_zeros(size)
        weights[:n] = 1.0 / n
        return cls(feats, centers, weights, n, n, init_min_weight)

    def add(self, feat: torch.Tensor, center: torch.Tensor, lr: float) -> int:
        """Insert a sample with learning rate ``lr`` (replacing the lightest non-initial one when full)."""
        size = self.weights.shape[0]
        if self.count < size:
            idx = self.count
            self.count += 1
        elif self.num_init < size:
            idx = int(torch.argmin(self.weights[self.num_init :])) + self.num_init
        else:
            idx = int(torch.argmin(self.weights))
        w = self.weights
        if self.last is None:
            w /= 1.0 - lr
            w[idx] = lr
        else:  # each new sample weighs 1/(1-lr) times the previous newest: old ones decay
            w[idx] = w[self.last] / (1.0 - lr)
        w /= w.sum()
        init_sum = float(w[: self.num_init].sum())
        if self.num_init and init_sum < self.init_min_weight:
            # DiMP's intent (its own formula leaves the sum slightly off 1): the initial samples
            # share exactly init_min_weight, the others the rest in their proportions.
            w[self.num_init :] *= (1.0 - self.init_min_weight) / w[self.num_init :].sum()
            w[: self.num_init] = self.init_min_weight / self.num_init
        self.feats[idx] = feat
        self.centers[idx] = center
        self.last = idx
        return idx


class DuMLTracker(Tracker):
    """Tracker for a :class:`~vtrack.models.duml.model.DuML` model.

    Per frame: crop the search region (SiamRPN++ geometry, ``search = template * search_size /
    template_size`` around the previous box with context ``context_amount``), fuse
    ``s = mu * s_r + (1 - mu) * s_a`` (ONR broadcast over the anchors), apply SiamRPN++'s scale/
    ratio penalty and cosine window, take the best anchor, vote the box (eq. 4-5) or take its
    direct regression, hand it to the shared state update (``tracker.update``: score-smoothed,
    bounded size, box kept in the image, wider search while lost), and update the ONR filter
    DiMP-style: every sample not judged lost enters the memory (rate ``update_lr`` or ``hard_negative_lr``); the filter is
    optimised ``hard_negative_iters`` steps at once when a distractor is detected, otherwise
    ``update_iters`` steps every ``update_interval`` frames.
    """

    name = "duml"

    def __init__(self, model: DuML, cfg: DuMLTrackerConfig, device: str | torch.device = "cpu") -> None:
        if not isinstance(model, DuML):
            raise TypeError(f"model: expected a DuML model, got {type(model).__name__}")
        if not isinstance(cfg, DuMLTrackerConfig):
            raise TypeError(f"cfg: expected DuMLTrackerConfig, got {type(cfg).__name__}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            # Channels-last convolutions: the ResNet's block4 on a 3x3 map takes a third of the time
            # (one thread: the tracking step ~1.6x faster), outputs equal up to float rounding.
            self.model.to(memory_format=torch.channels_last)
        self.cfg = cfg
        mc = model.cfg
        mu = cfg.mu if cfg.mu is not None else {"dual": 0.8, "onr": 1.0, "ofc": 0.0}[mc.mode]
        if mu > 0 and not model.use_onr:
            raise ValueError(f"tracker.mu: model mode {mc.mode!r} has no ONR branch, so mu must be 0, got {mu}")
        if mu < 1 and not model.use_ofc:
            raise ValueError(f"tracker.mu: model mode {mc.mode!r} has no OFC scores, so mu must be 1, got {mu}")
        self.mu = float(mu)
        self.search_size = cfg.search_size or mc.search_size
        self.template_size = mc.template_size  # fixes the target's size in the crop
        #: runs the per-frame network branch (``search``); swapped for the onnxruntime engine
        self.engine: Engine = TorchEngine(duml_branches(self.model, self.search_size))

    # ------------------------------------------------------------------ helpers
    @property
    def center(self) -> tuple[float, float]:
        """Centre of the current box (image pixels)."""
        b = self._state.box
        return (float(b[0] + b[2] / 2.0), float(b[1] + b[3] / 2.0))

    @property
    def size(self) -> tuple[float, float]:
        """Width and height of the current box (image pixels)."""
        return (float(self._state.box[2]), float(self._state.box[3]))

    def _search_side(self) -> float:
        w, h = self.size
        ctx = self.cfg.context_amount * (w + h)
        s_z = math.sqrt((w + ctx) * (h + ctx))
        return s_z * self.search_size / self.template_size * self._state.search_growth(self.cfg.update)

    def _crop(self, image: np.ndarray, side: float, center: tuple[float, float]) -> np.ndarray:
        """Search crop of ``side`` image pixels centred at ``center`` (shared crop code)."""
        box = (center[0] - side / 2, center[1] - side / 2, side, side)
        patch, _, _ = sample_target(image, box, 1.0, self.search_size, mode="area", center=center, pad=self.pad_value)
        return patch

    @torch.no_grad()
    def _init_samples(self, image: np.ndarray, side: float) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
        n = self.search_size
        c = n / 2.0
        base = self._crop(image, side, self.center)
        patches, centers = [base], [(c, c)]
        for aug in self.cfg.init_augment:
            if aug == "fliplr":
                patches.append(np.ascontiguousarray(base[:, ::-1]))
                centers.append((n - c, c))
            elif aug == "blur":
                for sigma in (1.0, 2.0):
                    patches.append(cv2.GaussianBlur(base, (0, 0), sigma))
                    centers.append((c, c))
            elif aug == "rotate":
                for angle in (10.0, -10.0):
                    patches.append(crop_rotated(image, self.center, side, n, self.pad_value, angle))
                    centers.append((c, c))
            elif aug == "shift":
                # move the crop by a fraction of its side: the target moves the other way
                d = 0.15 * n
                for sx, sy in ((d, d), (-d, d), (d, -d), (-d, -d)):
                    shifted = (self.center[0] + sx / n * side, self.center[1] + sy / n * side)
                    patches.append(self._crop(image, side, shifted))
                    centers.append((c - sx, c - sy))
        return patches, centers

    # ------------------------------------------------------------------ Tracker API
    @torch.no_grad()
    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        self._state = TrackState.start(box)
        self.image_hw = image.shape[:2]
        self.pad_value = tuple(float(v) for v in image.reshape(-1, 3).mean(0))
        self.frame = 0
        model = self.model
        side = self._search_side()
        n = self.search_size
        if model.use_onr:
            patches, centers_px = self._init_samples(image, side)
        else:
            patches, centers_px = [self._crop(image, side, self.center)], [(n / 2.0, n / 2.0)]
        feats = model.features(to_tensor(np.stack(patches), self.device))
        cpx = torch.tensor(centers_px, dtype=feats[0].dtype, device=self.device)
        kernels = model.template_kernels([f[:1] for f in feats], cpx[:1], n)
        self.kernels = flatten_kernels(model.embed_kernels(kernels))
        self.feat_size = feats[0].shape[-1]
        self.score_size = self.feat_size - model.cfg.template_window + 1
        self.anchors = model.anchors(self.score_size, n)
        self.window = torch.from_numpy(cosine_window(self.score_size, self.score_size)).to(self.device, feats[0].dtype)
        self.filter = None
        if model.use_onr:
            onr = model.onr_features(feats)
            init = model.initial_filter(onr[:1], cpx[:1], n)
            cells = pixel_to_cell(cpx, n, self.feat_size, model.stride)
            self.memory = SampleMemory.create(onr, cells, self.cfg.memory_size, self.cfg.init_samples_minimum_weight)
            self.filter = self._optimize(init, self.cfg.init_iters)

    def _optimize(self, filt: torch.Tensor, num_iter: int) -> torch.Tensor:
        m = self.memory
        k = m.count
        feats = m.feats[:k, None]
        centers = m.centers[:k, None]
        weights = m.weights[:k]
        out, _, _ = self.model.optimizer(filt, feats, centers, sample_weight=weights / weights.sum(), num_iter=num_iter)
        return out

    def _flag(self, scores: torch.Tensor, target_cells: tuple[float, float]) -> str:
        """DiMP's localisation flag from the full ONR map ``[W,W]``: not_found, hard_negative or normal."""
        cfg = self.cfg
        w = scores.shape[-1]
        max1, idx = scores.flatten().max(0)
        if float(max1) < cfg.target_not_found_threshold:
            return "not_found"
        iy, ix = divmod(int(idx), w)
        ry = max(int(round(cfg.target_neighborhood_scale * target_cells[1] / 2)), 1)
        rx = max(int(round(cfg.target_neighborhood_scale * target_cells[0] / 2)), 1)
        masked = scores.clone()
        masked[max(iy - ry, 0) : iy + ry + 1, max(ix - rx, 0) : ix + rx + 1] = -float("inf")
        max2 = float(masked.max())
        if max2 > cfg.hard_negative_threshold * float(max1) and max2 > cfg.target_not_found_threshold:
            return "hard_negative"
        return "normal"

    @torch.no_grad()
    def _track(self, image: np.ndarray) -> TrackResult:
        cfg, model = self.cfg, self.model
        self.frame += 1
        n = self.search_size
        side = self._search_side()
        scale = n / side
        patch = self._crop(image, side, self.center)
        out = self.engine.run("search", search=to_tensor(patch, self.device), **self.kernels)
        a, p = model.num_anchors, self.score_size
        fused = torch.zeros(a, p, p, device=self.device, dtype=out["box"].dtype)
        if self.mu < 1:
            fused += (1 - self.mu) * torch.sigmoid(out["cls"][0])
        onr_full = None
        if model.use_onr:
            onr = out["onr"]
            onr_full = apply_filter(onr[None], self.filter)[0, 0]
            if self.mu > 0:
                fused += self.mu * model.resample_onr(onr_full[None], p)[0][None]
        boxes = decode(out["box"][0].permute(0, 2, 3, 1), self.anchors)  # [A,P,P,4] cxcywh crop px
        w0, h0 = self.size[0] * scale, self.size[1] * scale

        def sz(w: torch.Tensor | float, h: torch.Tensor | float) -> torch.Tensor | float:
            pad = (w + h) * 0.5
            return (w + pad) * (h + pad)

        bw, bh = boxes[..., 2].clamp(min=1e-3), boxes[..., 3].clamp(min=1e-3)
        s_c = torch.sqrt(sz(bw, bh) / sz(w0, h0))
        s_c = torch.maximum(s_c, 1.0 / s_c)
        r_c = (w0 / h0) / (bw / bh)
        r_c = torch.maximum(r_c, 1.0 / r_c)
        penalty = torch.exp(-(r_c * s_c - 1) * cfg.penalty_k)
        pscore = penalty * fused * (1 - cfg.window_influence) + self.window[None] * cfg.window_influence
        best = int(pscore.flatten().argmax())
        flat_boxes = boxes.reshape(-1, 4)
        if cfg.score_voting:
            voted = score_voting(
                cxcywh_to_xyxy(flat_boxes), fused.flatten(), torch.sigmoid(out["iou"][0]).flatten(), best,
                eps=cfg.voting_eps, sigma=cfg.voting_sigma,
            )
            bcx, bcy = float(voted[0] + voted[2]) / 2, float(voted[1] + voted[3]) / 2
            bw_, bh_ = float(voted[2] - voted[0]), float(voted[3] - voted[1])
        else:
            bcx, bcy, bw_, bh_ = (float(v) for v in flat_boxes[best])
        c = n / 2.0
        score = float(fused.flatten()[best])
        conf = float(penalty.flatten()[best]) * score
        pcx, pcy = self.center[0] + (bcx - c) / scale, self.center[1] + (bcy - c) / scale
        pw, ph = bw_ / scale, bh_ / scale
        img_h, img_w = self.image_hw
        prev_center = self.center
        self._state = update_state(self._state, [pcx - pw / 2, pcy - ph / 2, pw, ph], conf, cfg.update, (img_w, img_h))
        (cx, cy), (width, height) = self.center, self.size
        flag = "offline"
        if onr_full is not None and cfg.online:
            tcells = (width * scale / model.stride, height * scale / model.stride)
            flag = self._flag(onr_full, tcells)
            if flag != "normal":
                log.debug("frame %d: online module says %s", self.frame, flag)
            if flag != "not_found":
                px = torch.tensor(
                    [[c + (cx - prev_center[0]) * scale, c + (cy - prev_center[1]) * scale]], dtype=onr_full.dtype, device=self.device
                )
                cell = pixel_to_cell(px, n, self.feat_size, model.stride)[0]
                hard = flag == "hard_negative"
                self.memory.add(onr[0], cell, cfg.hard_negative_lr if hard else cfg.update_lr)
                if hard:
                    self.filter = self._optimize(self.filter, cfg.hard_negative_iters)
                elif self.frame % cfg.update_interval == 0:
                    self.filter = self._optimize(self.filter, cfg.update_iters)
        return TrackResult(box=tuple(float(v) for v in self._state.box), score=score, extra={"flag": flag})
