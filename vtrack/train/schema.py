"""Dataclass schemas of the ``data`` and ``train`` config sections and of processing configs.

Validated with :func:`vtrack.config.from_dict`: an unknown key, a missing required key or a
wrong type is an error naming the key path. Range checks run in ``__post_init__``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from vtrack.train.numerics import NUMERICS

__all__ = [
    "DatasetSpec",
    "SamplerConfig",
    "AugmentConfig",
    "DataConfig",
    "CropConfig",
    "ProcessingConfig",
    "ScheduleConfig",
    "LrScalingConfig",
    "EMAConfig",
    "TrainConfig",
]


def _positive(value: float, name: str, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


def _prob(value: float, name: str) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")


@dataclass
class DatasetSpec:
    """One dataset of the training mixture, read by ``vtrack.data.load_dataset(name, root, split)``."""

    name: str
    root: str
    split: str | None = "train"
    weight: float = 1.0

    def __post_init__(self) -> None:
        _positive(self.weight, "weight")


@dataclass
class SamplerConfig:
    """How samples are drawn: ``samples_per_epoch`` samples, each deterministic from (seed, epoch, index).

    Pair mode: template and search frames at most ``max_gap`` frames apart (valid frames only);
    with probability ``negative_ratio`` the search frame comes from another sequence.
    Sequence mode (DuML): ``num_support`` support and ``num_query`` query frames within a window
    of ``max_gap`` frames, in time order (repeated when the window holds too few valid frames).
    """

    samples_per_epoch: int = 60000
    max_gap: int = 200
    negative_ratio: float = 0.0
    num_support: int = 3
    num_query: int = 2

    def __post_init__(self) -> None:
        if self.samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch: expected a positive int, got {self.samples_per_epoch}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap: expected an int >= 0, got {self.max_gap}")
        _prob(self.negative_ratio, "negative_ratio")
        if self.num_support < 1 or self.num_query < 1:
            raise ValueError(f"num_support/num_query: expected positive ints, got {self.num_support}/{self.num_query}")


@dataclass
class AugmentConfig:
    """Photometric/geometric augmentation (OSTrack defaults)."""

    flip_prob: float = 0.5
    brightness_jitter: float = 0.2
    grayscale_prob: float = 0.05
    #: probability that a sample's description is dropped (""), so that a tracker with language (VLT)
    #: also learns its missing-language path: most tracking data (GOT-10k, OTB, VOT) has no description
    language_drop_prob: float = 0.0

    def __post_init__(self) -> None:
        _prob(self.flip_prob, "flip_prob")
        _prob(self.grayscale_prob, "grayscale_prob")
        _prob(self.language_drop_prob, "language_drop_prob")
        _positive(self.brightness_jitter, "brightness_jitter", allow_zero=True)


@dataclass
class DataConfig:
    """The ``data`` section."""

    datasets: list[DatasetSpec]
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    processing: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 2

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("datasets: expected at least one dataset")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: expected an int >= 0, got {self.num_workers}")


@dataclass
class CropConfig:
    """One crop: ``size`` pixels square, side = ``factor`` x target size, with jitter.

    Scale jitter draws each of w and h times ``exp(U(-log(1+a), log(1+a)))`` (so within
    [1/(1+a), 1+a]); centre jitter shifts the centre by ``center_jitter * sqrt(w'h') * (U - 0.5)``
    per axis (OSTrack).
    """

    size: int
    factor: float
    scale_jitter: float = 0.0
    center_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size: expected a positive int, got {self.size}")
        _positive(self.factor, "factor")
        _positive(self.scale_jitter, "scale_jitter", allow_zero=True)
        _positive(self.center_jitter, "center_jitter", allow_zero=True)


@dataclass
class ProcessingConfig:
    """What a family's ``processing_config(cfg)`` returns (merged with ``data.processing``)."""

    template: CropConfig
    search: CropConfig
    sample_mode: Literal["pair", "sequence"] = "pair"
    crop_mode: Literal["area", "siamfc"] = "area"
    pad: str = "mean"
    labels: list[dict[str, Any]] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=dict)
    normalize: bool = True


@dataclass
class ScheduleConfig:
    """Learning-rate schedule per optimizer step.

    ``step``: times ``gamma`` at each epoch in ``milestones``; ``cosine``: from 1 to
    ``min_lr_ratio`` over the run; ``constant``. A linear warm-up from ``warmup_start`` over
    ``warmup_epochs`` (may be fractional) multiplies any of them.
    """

    name: Literal["step", "cosine", "constant"] = "step"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0
    warmup_epochs: float = 0.0
    warmup_start: float = 0.001

    def __post_init__(self) -> None:
        _positive(self.gamma, "gamma")
        _prob(self.min_lr_ratio, "min_lr_ratio")
        _positive(self.warmup_epochs, "warmup_epochs", allow_zero=True)
        _prob(self.warmup_start, "warmup_start")
        if any(m < 1 for m in self.milestones):
            raise ValueError(f"milestones: expected epochs >= 1, got {self.milestones}")


@dataclass
class LrScalingConfig:
    """Learning rates are scaled with the global batch (batch_size x world size).

    ``linear``: lr x global / reference_batch (Goyal et al.); ``sqrt``: x sqrt(global / reference);
    ``none``: as configured.
    """

    rule: Literal["none", "linear", "sqrt"] = "none"
    reference_batch: int = 128

    def __post_init__(self) -> None:
        if self.reference_batch < 1:
            raise ValueError(f"reference_batch: expected a positive int, got {self.reference_batch}")


@dataclass
class EMAConfig:
    """Exponential moving average of the weights (``ema = decay * ema + (1 - decay) * w`` per step)."""

    enabled: bool = False
    decay: float = 0.9998

    def __post_init__(self) -> None:
        if not (0.0 < self.decay < 1.0):
            raise ValueError(f"decay: expected a number in (0, 1), got {self.decay}")


@dataclass
class TrainConfig:
    """The ``train`` section."""

    epochs: int
    batch_size: int
    accum_steps: int = 1
    lr: float = 4e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_prefix: str = "backbone."
    backbone_lr_mult: float = 0.1
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    lr_scaling: LrScalingConfig = field(default_factory=LrScalingConfig)
    grad_clip: float | None = 0.1
    amp: Literal["auto", "off", "bf16", "fp16"] | bool = "auto"
    compile: bool = False
    backend: str | None = None
    device: str = "auto"
    seed: int = 42
    ema: EMAConfig = field(default_factory=EMAConfig)
    log_interval: int = 50
    tensorboard: bool = False
    checkpoint_interval: int = 1
    checkpoint_steps: int = 0
    keep_checkpoints: int = 0
    find_unused_parameters: bool = False
    deterministic: bool = False
    numerics: Literal["native", "portable"] = "native"

    def __post_init__(self) -> None:
        if self.numerics not in NUMERICS:
            raise ValueError(f"numerics: expected {' or '.join(map(repr, NUMERICS))}, got {self.numerics!r}")
        if isinstance(self.amp, bool):  # YAML 1.1 reads a bare `off`/`on` as a boolean
            self.amp = "auto" if self.amp else "off"
        if self.epochs < 1:
            raise ValueError(f"epochs: expected a positive int, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {self.batch_size}")
        if self.accum_steps < 1:
            raise ValueError(f"accum_steps: expected a positive int, got {self.accum_steps}")
        _positive(self.lr, "lr")
        _positive(self.weight_decay, "weight_decay", allow_zero=True)
        _positive(self.backbone_lr_mult, "backbone_lr_mult", allow_zero=True)
        if self.grad_clip is not None:
            _positive(self.grad_clip, "grad_clip")
        for name in ("log_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        for name in ("checkpoint_steps", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an int >= 0 (0 = off), got {getattr(self, name)}")
        if any(not (0.0 <= b < 1.0) for b in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas}")
