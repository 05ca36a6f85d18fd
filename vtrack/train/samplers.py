"""Samplers over a weighted mixture of tracking datasets.

Every sample is a pure function of ``(seed, epoch, index)``: :meth:`TrackingSampler.rng` seeds a
NumPy generator from those three numbers and the same generator then drives the augmentation in
:mod:`vtrack.train.processing`. So an epoch can be resumed at any batch, split across
DataLoader workers or DDP ranks, and still yield exactly the same samples.

Two modes:

- ``"pair"``: a template frame and a search frame of the same sequence at most ``max_gap``
  frames apart, both with a valid target; with probability ``negative_ratio`` the search frame is
  drawn from another sequence (a negative pair, ``positive=False``).
- ``"sequence"`` (DuML / DiMP-style online training): ``num_support`` support frames followed in
  time by ``num_query`` query frames, all valid, within a window of ``max_gap`` frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence as Seq

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vtrack.data.sequence import Sequence

__all__ = ["SampleSpec", "TrackingSampler", "ShardedSampler", "TrackingDataset"]


@dataclass(frozen=True)
class SampleSpec:
    """Which frames make one sample.

    ``template_frames`` index the sequence ``(dataset, sequence)``; ``search_frames`` index
    ``(search_dataset, search_sequence)`` (the same sequence unless the pair is negative). In
    sequence mode the template frames are the support frames and the search frames the queries.
    """

    dataset: int
    sequence: int
    template_frames: tuple[int, ...]
    search_dataset: int
    search_sequence: int
    search_frames: tuple[int, ...]
    positive: bool = True


def _usable_frames(seq: Sequence) -> np.ndarray:
    boxes = np.asarray(seq.boxes, dtype=np.float64)
    ok = np.asarray(seq.valid, dtype=bool) & np.all(np.isfinite(boxes), axis=1)
    ok &= (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    ok = ok[: len(seq.frames)]
    return np.flatnonzero(ok)


class TrackingSampler:
    """Draws :class:`SampleSpec` from a weighted mixture of datasets.

    Args:
        datasets: one list of :class:`~vtrack.data.sequence.Sequence` per dataset.
        weights: relative probability of drawing from each dataset (normalised here).
        mode: ``"pair"`` or ``"sequence"``.
        samples_per_epoch: samples in an epoch (the length of :class:`TrackingDataset`).
        max_gap: maximum frame distance between template and search (pair) or window size (sequence).
        negative_ratio: probability of a negative pair (pair mode).
        num_support, num_query: frames per sample in sequence mode.
        seed: base seed.
        names: dataset names used in error messages.

    Raises:
        ValueError: a dataset with no sequence holding a valid frame, bad weights or arguments.
    """

    def __init__(
        self,
        datasets: Seq[Seq[Sequence]],
        weights: Seq[float] | None = None,
        *,
        mode: str = "pair",
        samples_per_epoch: int = 60000,
        max_gap: int = 200,
        negative_ratio: float = 0.0,
        num_support: int = 3,
        num_query: int = 2,
        seed: int = 0,
        names: Seq[str] | None = None,
    ) -> None:
        if mode not in ("pair", "sequence"):
            raise ValueError(f"mode: expected 'pair' or 'sequence', got {mode!r}")
        if not isinstance(datasets, (list, tuple)) or not datasets:
            raise ValueError("datasets: expected a non-empty list of datasets (lists of Sequence)")
        names = list(names) if names is not None else [f"datasets[{i}]" for i in range(len(datasets))]
        if len(names) != len(datasets):
            raise ValueError(f"names: expected {len(datasets)} names, got {len(names)}")
        w = np.ones(len(datasets)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(datasets),) or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"weights: expected {len(datasets)} positive numbers, got {list(np.atleast_1d(w))}")
        for name, value in (("samples_per_epoch", samples_per_epoch), ("num_support", num_support),
                            ("num_query", num_query)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0:
            raise ValueError(f"max_gap: expected an int >= 0, got {max_gap!r}")
        if not (0.0 <= float(negative_ratio) <= 1.0):
            raise ValueError(f"negative_ratio: expected a probability in [0, 1], got {negative_ratio!r}")
        self.datasets = [list(d) for d in datasets]
        self._usable: list[list[int]] = []
        self._frames: list[list[np.ndarray]] = []
        for i, (name, seqs) in enumerate(zip(names, self.datasets)):
            if not seqs:
                raise ValueError(f"{name}: the dataset is empty (no sequences)")
            usable, frames = [], []
            for j, seq in enumerate(seqs):
                if not isinstance(seq, Sequence):
                    raise TypeError(f"{name}: expected Sequence objects, got {type(seq).__name__} at {j}")
                f = _usable_frames(seq)
                if len(f):
                    usable.append(j)
                    frames.append(f)
            if not usable:
                raise ValueError(f"{name}: no sequence has a frame with a valid target box")
            self._usable.append(usable)
            self._frames.append(frames)
        self.weights = w / w.sum()
        self.mode = mode
        self.samples_per_epoch = int(samples_per_epoch)
        self.max_gap = int(max_gap)
        self.negative_ratio = float(negative_ratio)
        self.num_support = int(num_support)
        self.num_query = int(num_query)
        self.seed = int(seed)
        self._total_usable = sum(len(u) for u in self._usable)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator of sample ``index`` of ``epoch`` (also used for its augmentation)."""
        return np.random.default_rng([self.seed & 0xFFFFFFFF, int(epoch), int(index)])

    def sequence(self, dataset: int, sequence: int) -> Sequence:
        """The :class:`Sequence` a spec refers to."""
        return self.datasets[dataset][sequence]

    def _draw_sequence(self, rng: np.random.Generator) -> tuple[int, int]:
        d = int(rng.choice(len(self.datasets), p=self.weights))
        k = int(rng.integers(len(self._usable[d])))
        return d, k

    def sample(self, epoch: int, index: int, rng: np.random.Generator | None = None) -> SampleSpec:
        """Draw the spec of sample ``index`` of ``epoch`` (with ``rng`` when given, else its own)."""
        if not (0 <= index < self.samples_per_epoch):
            raise ValueError(f"index: expected 0 <= index < {self.samples_per_epoch}, got {index}")
        rng = self.rng(epoch, index) if rng is None else rng
        d, k = self._draw_sequence(rng)
        frames = self._frames[d][k]
        seq_idx = self._usable[d][k]
        if self.mode == "sequence":
            return self._sample_sequence(rng, d, seq_idx, frames)
        t = int(rng.choice(frames))
        near = frames[np.abs(frames - t) <= self.max_gap]
        if len(near) > 1:
            near = near[near != t]
        if self.negative_ratio > 0 and rng.random() < self.negative_ratio:
            d2, k2 = self._draw_sequence(rng)
            if self._total_usable > 1:
                while (d2, k2) == (d, k):
                    d2, k2 = self._draw_sequence(rng)
            s = int(rng.choice(self._frames[d2][k2]))
            return SampleSpec(d, seq_idx, (t,), d2, self._usable[d2][k2], (s,), positive=False)
        s = int(rng.choice(near))
        return SampleSpec(d, seq_idx, (t,), d, seq_idx, (s,), positive=True)

    def _sample_sequence(self, rng: np.random.Generator, d: int, seq_idx: int, frames: np.ndarray) -> SampleSpec:
        need = self.num_support + self.num_query
        a = int(rng.choice(frames))
        lo = int(rng.integers(a - self.max_gap, a + 1))  # a window of max_gap frames holding a
        window = frames[(frames >= lo) & (frames <= lo + self.max_gap)]
        chosen = np.sort(rng.choice(window, size=need, replace=len(window) < need))
        support = tuple(int(f) for f in chosen[: self.num_support])
        query = tuple(int(f) for f in chosen[self.num_support :])
        return SampleSpec(d, seq_idx, support, d, seq_idx, query, positive=True)


class ShardedSampler(Sampler[int]):
    """Indices ``0..num_samples-1`` split across ranks (DistributedSampler-style, no shuffling:
    each index is already a random draw).

    Rank ``r`` of ``world_size`` gets ``r, r + W, r + 2W, ...`` (padded by wrapping around so every
    rank has ``ceil(num_samples / W)``); ``start`` skips that many of this rank's indices (resume).
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples: expected a positive int, got {num_samples}")
        if world_size < 1 or not (0 <= rank < world_size):
            raise ValueError(f"rank/world_size: expected 0 <= rank < world_size, got {rank}/{world_size}")
        self.num_samples = int(num_samples)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.per_rank = math.ceil(self.num_samples / self.world_size)
        if not (0 <= start <= self.per_rank):
            raise ValueError(f"start: expected 0 <= start <= {self.per_rank}, got {start}")
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        for i in range(self.start, self.per_rank):
            yield (self.rank + i * self.world_size) % self.num_samples

    def __len__(self) -> int:
        return self.per_rank - self.start


class TrackingDataset(Dataset):
    """Map-style dataset: item ``i`` of the current epoch = ``process(spec, sampler, rng)``.

    ``process`` is a callable such as :class:`vtrack.train.processing.Processor`. Call
    :meth:`set_epoch` before iterating an epoch (before the DataLoader iterator is created, so
    worker processes see it).
    """

    def __init__(self, sampler: TrackingSampler, process: Callable[[SampleSpec, TrackingSampler, np.random.Generator], dict[str, Any]]) -> None:
        if not isinstance(sampler, TrackingSampler):
            raise TypeError(f"sampler: expected a TrackingSampler, got {type(sampler).__name__}")
        if not callable(process):
            raise TypeError(f"process: expected a callable, got {type(process).__name__}")
        self.sampler = sampler
        self.process = process
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples are produced."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = self.sampler.rng(self.epoch, index)
        spec = self.sampler.sample(self.epoch, index, rng)
        return self.process(spec, self.sampler, rng)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: single-threaded OpenCV/torch inside workers."""
    import cv2

    cv2.setNumThreads(0)
    torch.set_num_threads(1)
