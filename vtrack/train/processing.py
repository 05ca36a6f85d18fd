"""Turn a :class:`~vtrack.train.samplers.SampleSpec` into a training sample (docs/design.md).

Per sample (all randomness from the sample's own NumPy generator, so it is reproducible):

1. read the frames (RGB uint8);
2. jitter the target box (scale in [1/(1+a), 1+a] per side, centre shifted by
   ``center_jitter * sqrt(w'h') * (U - 0.5)`` per axis, as OSTrack) and crop a square of
   ``factor`` x target size around it with :func:`vtrack.tracking.crops.sample_target`, resized
   to ``size``; the ground-truth box is mapped into crop pixels with ``box_to_crop``;
3. per image brightness jitter (x U[max(0, 1-b), 1+b]); per sample grayscale (probability
   ``grayscale_prob``) and horizontal flip (probability ``flip_prob``, all crops of the sample
   together, boxes mirrored);
4. float32 [3, H, W] in [0, 1], normalised with the ImageNet mean/std;
5. labels from the configured generators (:mod:`vtrack.train.labels`).

Pair mode returns ``template``, ``search``, ``template_box``, ``search_box`` (xywh, crop pixels),
``positive``, ``language`` and the ``label_*`` keys. Sequence mode returns ``train_images``
[S,3,H,W], ``train_boxes`` [S,4], ``test_images`` [Q,3,H,W], ``test_boxes`` [Q,4] (search crops
of every frame), ``template``/``template_box`` (template crop of the first support frame),
``positive``, ``language`` and the labels of every query frame stacked to [Q, ...].
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch

from vtrack.tracking import preprocess
from vtrack.tracking.preprocess import IMAGENET_MEAN, IMAGENET_STD
from vtrack.train.labels import LabelContext, LabelGenerator, build_label_generator
from vtrack.train.samplers import SampleSpec, TrackingSampler
from vtrack.train.schema import AugmentConfig, CropConfig, ProcessingConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Processor", "jitter_box", "normalize_image"]

_PAD_MODES = ("mean", "zero", "replicate")


def jitter_box(box: np.ndarray, crop: CropConfig, rng: np.random.Generator) -> np.ndarray:
    """Jitter an (x, y, w, h) box: per-side log-uniform scale, OSTrack centre shift."""
    x, y, w, h = (float(v) for v in box)
    if crop.scale_jitter > 0:
        lim = math.log1p(crop.scale_jitter)
        sw, sh = np.exp(rng.uniform(-lim, lim, size=2))
    else:
        sw = sh = 1.0
    w2, h2 = w * float(sw), h * float(sh)
    cx, cy = x + w / 2, y + h / 2
    if crop.center_jitter > 0:
        max_off = crop.center_jitter * math.sqrt(w2 * h2)
        dx, dy = (rng.random(2) - 0.5) * max_off
        cx, cy = cx + float(dx), cy + float(dy)
    return np.array([cx - w2 / 2, cy - h2 / 2, w2, h2], dtype=np.float64)


def normalize_image(patch: np.ndarray, normalize: bool = True) -> torch.Tensor:
    """HxWx3 uint8 RGB -> float32 [3, H, W] in [0, 1], ImageNet-normalised when ``normalize``
    (:func:`vtrack.tracking.preprocess.normalize`, the trackers' path)."""
    return torch.from_numpy(preprocess.normalize(patch, imagenet=normalize)[0])


def _brightness(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    if amount <= 0:
        return img
    factor = rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount)
    return np.clip(img.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def _grayscale(img: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


class Processor:
    """Callable ``(spec, sampler, rng) -> sample dict``; see the module docstring.

    Args:
        processing: crop sizes/factors/jitter, crop mode and label specs (usually from
            the family's ``processing_config`` merged with ``data.processing``).
        augment: flip / brightness / grayscale settings.
    """

    def __init__(self, processing: ProcessingConfig, augment: AugmentConfig | None = None) -> None:
        if not isinstance(processing, ProcessingConfig):
            raise TypeError(f"processing: expected a ProcessingConfig, got {type(processing).__name__}")
        if augment is not None and not isinstance(augment, AugmentConfig):
            raise TypeError(f"augment: expected an AugmentConfig, got {type(augment).__name__}")
        if isinstance(processing.pad, str) and processing.pad not in _PAD_MODES:
            raise ValueError(f"processing.pad: expected one of {_PAD_MODES}, got {processing.pad!r}")
        self.cfg = processing
        self.augment = augment or AugmentConfig()
        self.labels: list[LabelGenerator] = [
            build_label_generator(spec, f"processing.labels[{i}]") for i, spec in enumerate(processing.labels)
        ]

    # -- helpers ----------------------------------------------------------------------------
    def _crop(
        self, image: np.ndarray, box: np.ndarray, crop: CropConfig, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        from vtrack.tracking.crops import box_to_crop, sample_target

        jittered = jitter_box(box, crop, rng)
        patch, _, crop_box = sample_target(
            image, jittered, crop.factor, crop.size, mode=self.cfg.crop_mode, pad=self.cfg.pad
        )
        return patch, box_to_crop(box, crop_box, crop.size)

    def _finish(self, patch: np.ndarray, box: np.ndarray, size: int, flip: bool, gray: bool,
                rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        patch = _brightness(patch, self.augment.brightness_jitter, rng)
        if gray:
            patch = _grayscale(patch)
        if flip:
            patch = patch[:, ::-1]
            box = np.array([size - box[0] - box[2], box[1], box[2], box[3]], dtype=np.float64)
        return normalize_image(patch, self.cfg.normalize), box

    def make_labels(self, ctx: LabelContext) -> dict[str, torch.Tensor]:
        """Run every configured generator; keys must start with ``label_`` and be unique."""
        out: dict[str, torch.Tensor] = {}
        for gen in self.labels:
            for key, value in gen(ctx).items():
                if not key.startswith("label_"):
                    raise ValueError(f"processing.labels: generator {type(gen).__name__} returned key {key!r} "
                                     "(label keys must start with 'label_')")
                if key in out:
                    raise ValueError(f"processing.labels: two generators produce {key!r}; set a distinct 'prefix'")
                out[key] = value
        return out

    # -- entry ------------------------------------------------------------------------------
    def __call__(self, spec: SampleSpec, sampler: TrackingSampler, rng: np.random.Generator) -> dict[str, Any]:
        """Build the sample of ``spec`` (frames read through ``sampler.sequence``)."""
        seq = sampler.sequence(spec.dataset, spec.sequence)
        sseq = sampler.sequence(spec.search_dataset, spec.search_sequence)
        flip = bool(rng.random() < self.augment.flip_prob)
        gray = bool(rng.random() < self.augment.grayscale_prob)
        cache: dict[tuple[int, int, int], np.ndarray] = {}

        def frame(d: int, s: int, f: int) -> np.ndarray:
            key = (d, s, f)
            if key not in cache:
                cache[key] = sampler.sequence(d, s).frame(f)
            return cache[key]

        language = seq.language or ""
        # drawn only when enabled, so that configs without it keep their random stream
        if self.augment.language_drop_prob > 0 and rng.random() < self.augment.language_drop_prob:
            language = ""
        tcfg, scfg = self.cfg.template, self.cfg.search
        if self.cfg.sample_mode == "pair":
            tf, sf = spec.template_frames[0], spec.search_frames[0]
            t_patch, t_box = self._crop(frame(spec.dataset, spec.sequence, tf), seq.boxes[tf], tcfg, rng)
            s_patch, s_box = self._crop(frame(spec.search_dataset, spec.search_sequence, sf), sseq.boxes[sf], scfg, rng)
            template, t_box = self._finish(t_patch, t_box, tcfg.size, flip, gray, rng)
            search, s_box = self._finish(s_patch, s_box, scfg.size, flip, gray, rng)
            sample: dict[str, Any] = {
                "template": template,
                "search": search,
                "template_box": torch.from_numpy(t_box.astype(np.float32)),
                "search_box": torch.from_numpy(s_box.astype(np.float32)),
                "positive": spec.positive,
                "language": language,
            }
            sample.update(self.make_labels(LabelContext(s_box, t_box, scfg.size, tcfg.size, spec.positive)))
            return sample
        # sequence mode
        t0 = spec.template_frames[0]
        t_patch, t_box = self._crop(frame(spec.dataset, spec.sequence, t0), seq.boxes[t0], tcfg, rng)
        template, t_box = self._finish(t_patch, t_box, tcfg.size, flip, gray, rng)
        groups: dict[str, tuple[list[torch.Tensor], list[np.ndarray]]] = {}
        for name, frames in (("train", spec.template_frames), ("test", spec.search_frames)):
            imgs, boxes = [], []
            for f in frames:
                patch, box = self._crop(frame(spec.dataset, spec.sequence, f), seq.boxes[f], scfg, rng)
                img, box = self._finish(patch, box, scfg.size, flip, gray, rng)
                imgs.append(img)
                boxes.append(box)
            groups[name] = (imgs, boxes)
        sample = {
            "template": template,
            "template_box": torch.from_numpy(t_box.astype(np.float32)),
            "train_images": torch.stack(groups["train"][0]),
            "train_boxes": torch.from_numpy(np.stack(groups["train"][1]).astype(np.float32)),
            "test_images": torch.stack(groups["test"][0]),
            "test_boxes": torch.from_numpy(np.stack(groups["test"][1]).astype(np.float32)),
            "positive": True,
            "language": language,
        }
        if self.labels:
            per_query = [self.make_labels(LabelContext(b, t_box, scfg.size, tcfg.size, True)) for b in groups["test"][1]]
            for key in per_query[0]:
                sample[key] = torch.stack([q[key] for q in per_query])
        return sample
