"""Config-driven training of any registered tracker family.

:func:`train` validates the whole config, the datasets and the resume checkpoint before the
first step, then runs AdamW (backbone parameters at ``backbone_lr_mult`` x lr) with a step or
cosine schedule with warm-up, gradient clipping, AMP (bf16/fp16 on CUDA, off on CPU), optional
EMA and torch.compile, under DDP when launched by torchrun. Checkpoints are written atomically
(temporary file, then ``os.replace``) and hold everything needed for an exact resume: model,
optimizer, scheduler, grad scaler, EMA, RNG states (torch/CUDA/NumPy/Python), epoch, step and
the config. Samples are pure functions of (seed, epoch, index), so a resumed run draws the very
same batches: on CPU with ``data.num_workers=0`` an interrupted and resumed run ends with the same
weights, bit for bit, as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from vtrack.config import check_sections, deep_merge, from_dict, to_dict
from vtrack.data.sequence import Sequence
from vtrack.models.layers.backend import SupportsBackend, check_backend
from vtrack.models.registry import TrackerFamily, get_family
from vtrack.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    init_distributed,
    scaled_lr,
)
from vtrack.train.processing import Processor
from vtrack.train.samplers import ShardedSampler, TrackingDataset, TrackingSampler, seed_worker
from vtrack.train.schema import DataConfig, ProcessingConfig, SamplerConfig, ScheduleConfig, TrainConfig
from vtrack.io import AtomicPath, atomic_write_text, load_torch_file, remove_stale_temp_files
from vtrack.provenance import session_provenance

__all__ = [
    "train",
    "LrSchedule",
    "ModelEMA",
    "build_param_groups",
    "save_checkpoint",
    "load_checkpoint",
    "export_weights",
    "CHECKPOINT_KEYS",
]

log = logging.getLogger(__name__)

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "ema", "rng", "epoch", "step", "config")
CHECKPOINT_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# schedule, EMA, param groups
# ---------------------------------------------------------------------------------------------
class LrSchedule:
    """Multiplicative lr factor per optimizer step (for ``LambdaLR``): warm-up x (step | cosine | constant)."""

    def __init__(self, cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> None:
        if steps_per_epoch < 1 or total_steps < 1:
            raise ValueError(f"steps_per_epoch/total_steps: expected positive ints, got {steps_per_epoch}/{total_steps}")
        self.name = cfg.name
        self.milestones = sorted(int(m) * steps_per_epoch for m in cfg.milestones)
        self.gamma = float(cfg.gamma)
        self.min_lr_ratio = float(cfg.min_lr_ratio)
        self.warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.warmup_start = float(cfg.warmup_start)
        self.total_steps = int(total_steps)

    def __call__(self, step: int) -> float:
        """Factor applied to the base lr at optimizer step ``step`` (0-based)."""
        if self.name == "step":
            factor = self.gamma ** sum(step >= m for m in self.milestones)
        elif self.name == "cosine":
            t = min(step, self.total_steps) / self.total_steps
            factor = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        else:
            factor = 1.0
        if self.warmup_steps > 0 and step < self.warmup_steps:
            factor *= self.warmup_start + (1 - self.warmup_start) * step / self.warmup_steps
        return factor


class ModelEMA:
    """Exponential moving average of a model's floating-point state (integer buffers copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not (0.0 < decay < 1.0):
            raise ValueError(f"decay: expected a number in (0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``shadow = decay * shadow + (1 - decay) * current``."""
        for key, value in model.state_dict().items():
            ref = self.shadow[key]
            if ref.dtype.is_floating_point:
                ref.mul_(self.decay).add_(value.detach().to(ref.dtype), alpha=1.0 - self.decay)
            else:
                ref.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights (loadable into the model)."""
        return self.shadow

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the averaged weights."""
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"ema: checkpoint EMA keys do not match the model: {sorted(missing)[:5]}")
        for key, value in state.items():
            self.shadow[key].copy_(value)


def build_param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_prefix: str,
                       backbone_lr_mult: float) -> list[dict[str, Any]]:
    """AdamW groups: parameters named ``backbone_prefix*`` at ``lr * backbone_lr_mult``, the rest at ``lr``."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (backbone if backbone_prefix and name.startswith(backbone_prefix) else rest).append(p)
    if not backbone and backbone_lr_mult != 1.0:
        log.warning("train.backbone_prefix %r matches no parameter: every parameter trains at lr", backbone_prefix)
    groups = []
    if rest:
        groups.append({"params": rest, "lr": lr, "weight_decay": weight_decay, "name": "default"})
    if backbone:
        groups.append({"params": backbone, "lr": lr * backbone_lr_mult, "weight_decay": weight_decay, "name": "backbone"})
    if not groups:
        raise ValueError("model: has no trainable parameter")
    return groups


# ---------------------------------------------------------------------------------------------
# checkpoints and RNG
# ---------------------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` to a temporary file next to ``path``, then rename it."""
    target = AtomicPath(path)
    with target as tmp, open(tmp, "wb") as fh:
        torch.save(dict(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    return target.path


def latest_checkpoint(folder: Path) -> Path:
    """The newest ``checkpoint_*.pth`` in ``folder`` (ValueError when there is none)."""
    found = sorted(folder.glob("checkpoint_*.pth"), key=lambda p: (p.stat().st_mtime, p.name))
    if not found:
        raise ValueError(f"resume: no checkpoint_*.pth in folder {folder}")
    return found[-1]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a vtrack training checkpoint (``weights_only=True``).

    ``path`` may be a folder: its newest ``checkpoint_*.pth`` is used.

    Raises:
        ValueError: missing file, unreadable/corrupt file, or not a vtrack training checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        p = latest_checkpoint(p)
    if not p.exists():
        raise ValueError(f"resume: no such checkpoint file: {p}")
    ckpt = load_torch_file(p, what="resume", map_location=map_location)
    if not isinstance(ckpt, dict):
        raise ValueError(f"resume: {p} does not hold a vtrack training checkpoint (got {type(ckpt).__name__})")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"resume: {p} is not a vtrack training checkpoint: missing {missing}")
    ckpt["_path"] = str(p)
    return ckpt


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike, *, ema: bool = False) -> Path:
    """Write the model weights of a training checkpoint as a plain state dict (atomically).

    ``ema=True`` exports the EMA weights (an error if the run had no EMA). The result loads with
    ``model.load_state_dict(torch.load(out, weights_only=True))`` and with ``vtrack track/eval
    --checkpoint``.
    """
    ckpt = load_checkpoint(checkpoint)
    key = "ema" if ema else "model"
    state = ckpt.get(key)
    if not isinstance(state, dict) or not state:
        raise ValueError(f"checkpoint: {ckpt['_path']} holds no {key!r} weights"
                         + (" (train.ema.enabled was false)" if ema else ""))
    return save_checkpoint(out, state)


# ---------------------------------------------------------------------------------------------
# config and data preparation
# ---------------------------------------------------------------------------------------------
def _load_dataset(name: str, root: str, split: str | None) -> list[Sequence]:
    """Read one dataset with :func:`vtrack.data.load_dataset` (a module-level hook for tests)."""
    from vtrack.data import load_dataset

    return load_dataset(name, root, split)


def load_datasets(data: DataConfig) -> list[list[Sequence]]:
    """Load every dataset of ``data.datasets``; errors name the entry."""
    out = []
    for i, spec in enumerate(data.datasets):
        where = f"data.datasets[{i}]"
        root = Path(spec.root).expanduser()
        if not root.exists():
            raise ValueError(f"{where}.root: dataset path does not exist: {root}")
        try:
            seqs = _load_dataset(spec.name, str(root), spec.split)
        except (ValueError, TypeError, FileNotFoundError, OSError) as err:
            raise ValueError(f"{where} ({spec.name} at {root}): {err}") from None
        if not seqs:
            raise ValueError(f"{where} ({spec.name} at {root}, split {spec.split!r}): the dataset is empty")
        out.append(list(seqs))
    return out


def _sampler_config(data_raw: Mapping[str, Any], data: DataConfig, family_defaults: Mapping[str, Any]) -> SamplerConfig:
    """``data.sampler`` with the family's defaults for the keys the user did not set."""
    user = dict((data_raw or {}).get("sampler") or {})
    merged = {**dict(family_defaults), **user}
    return from_dict(SamplerConfig, merged, "data.sampler") if family_defaults else data.sampler


def _resolve_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank)
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"train.device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device: {name!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", info.local_rank)
    return dev


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "auto":
            return None
        raise ValueError(f"train.amp: {amp!r} needs a CUDA device, got device {device}; use 'auto' or 'off'")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class _CsvLog:
    """Append-only CSV log with a header fixed at the first row (rank 0 only).

    ``resume_step``: the run continues from a checkpoint of that step, so the rows logged after
    it by the run that stopped (and a row cut short by a kill) are dropped first: the log of a
    resumed run holds each step once, like an uninterrupted run's.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.exists() and path.stat().st_size > 0:
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines(keepends=True)
            if lines and not lines[-1].endswith("\n"):
                lines = lines[:-1]  # a row cut short by a kill
            self.fields = next(csv.reader(lines[:1]), None)
            if resume_step is not None and self.fields and "step" in self.fields:
                col = self.fields.index("step")
                lines = lines[:1] + [ln for ln, row in zip(lines[1:], csv.reader(lines[1:]))
                                     if len(row) > col and row[col].isdigit() and int(row[col]) <= resume_step]
            if "".join(lines) != text:
                atomic_write_text(path, "".join(lines))
            if not lines:
                self.fields = None

    def write(self, row: Mapping[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def train(
    cfg: Mapping[str, Any],
    *,
    resume: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    max_steps: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Train the tracker described by ``cfg`` and return the path of the last checkpoint written.

    Args:
        cfg: config with sections ``model`` (``name`` + family options), ``data``
            (:class:`~vtrack.train.schema.DataConfig`), ``train``
            (:class:`~vtrack.train.schema.TrainConfig`) and optionally ``tracker``.
        resume: a checkpoint written by this function (or a folder: its newest checkpoint);
            training continues exactly where it stopped.
        out_dir: folder for checkpoints, ``log.csv``, ``config.yaml`` and TensorBoard events
            (default ``runs/<model.name>``).
        max_steps: stop after this many optimizer steps in total (a checkpoint is written), e.g.
            to fit a job's time limit; the schedule still follows ``train.epochs``.
        overwrite: start a new run in an ``out_dir`` that holds another run, removing that
            run's checkpoints, log and config first. Without it (and without ``resume``) a
            non-empty ``out_dir`` is refused, so a run never destroys another.

    Raises:
        ValueError / TypeError: an invalid config (naming the key), a missing or empty dataset,
            an unreadable or mismatching checkpoint: all before the first training step.
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"cfg: expected a config mapping, got {type(cfg).__name__}")
    cfg = to_dict(copy.deepcopy(dict(cfg)))
    check_sections(cfg)
    model_sec = cfg.get("model")
    if not isinstance(model_sec, dict) or not isinstance(model_sec.get("name"), str):
        raise ValueError("model.name: missing required key (the tracker family, e.g. 'ostrack')")
    data_cfg = from_dict(DataConfig, cfg.get("data"), "data")
    train_cfg = from_dict(TrainConfig, cfg.get("train"), "train")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps: expected a positive int or None, got {max_steps!r}")

    family = get_family(model_sec["name"])
    proc_raw = family.processing_config(cfg)
    if not isinstance(proc_raw, Mapping):
        raise TypeError(f"model.name: {model_sec['name']}.processing_config returned {type(proc_raw).__name__}, not a mapping")
    proc_cfg = from_dict(ProcessingConfig, deep_merge(dict(proc_raw), data_cfg.processing), "data.processing")
    sampler_cfg = _sampler_config(cfg.get("data") or {}, data_cfg, proc_cfg.sampler)
    processor = Processor(proc_cfg, data_cfg.augment)

    ckpt = load_checkpoint(resume) if resume is not None else None
    if ckpt is not None and isinstance(ckpt.get("config"), dict):
        changed = sorted(k for k in set(ckpt["config"]) | set(cfg) if ckpt["config"].get(k) != cfg.get(k))
        if changed:
            log.warning("resume: the config differs from the checkpoint's in section(s) %s", changed)
    out = Path(out_dir) if out_dir is not None else Path("runs") / model_sec["name"]
    claim_out_dir(out, resume=ckpt is not None, overwrite=overwrite)

    datasets = load_datasets(data_cfg)
    sampler = TrackingSampler(
        datasets,
        [d.weight for d in data_cfg.datasets],
        mode=proc_cfg.sample_mode,
        samples_per_epoch=sampler_cfg.samples_per_epoch,
        max_gap=sampler_cfg.max_gap,
        negative_ratio=sampler_cfg.negative_ratio,
        num_support=sampler_cfg.num_support,
        num_query=sampler_cfg.num_query,
        seed=train_cfg.seed,
        names=[f"data.datasets[{i}] ({d.name})" for i, d in enumerate(data_cfg.datasets)],
    )

    _preflight(sampler, processor)

    info = init_distributed(train_cfg.device)
    try:
        return _run(cfg, family, train_cfg, data_cfg, sampler, processor, ckpt, out, max_steps, info)
    finally:
        cleanup_distributed(info)


def _preflight(sampler: TrackingSampler, processor: Processor) -> None:
    """Build sample 0 of epoch 0 once, so unreadable frames or bad label settings fail before training."""
    try:
        rng = sampler.rng(0, 0)
        processor(sampler.sample(0, 0, rng), sampler, rng)
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"data: building the first training sample failed: {err}") from None


def _run(
    cfg: dict[str, Any],
    family: TrackerFamily,
    tc: TrainConfig,
    dc: DataConfig,
    sampler: TrackingSampler,
    processor: Processor,
    ckpt: dict[str, Any] | None,
    out: Path,
    max_steps: int | None,
    info: DistInfo,
) -> Path:
    run = _Run(cfg, tc, dc, sampler, ckpt, out, max_steps, info)
    run.build(family)
    run.open_logs()
    return run.loop(TrackingDataset(sampler, processor))


def _seed_and_configure(tc: TrainConfig, device: torch.device) -> None:
    """Determinism / cuDNN settings and the global seeds (before the model is built)."""
    if tc.numerics == "portable":
        if device.type != "cpu":
            raise ValueError(f"train.numerics: 'portable' pins CPU numerics; expected train.device cpu, got {device}")
        from vtrack.train.numerics import PORTABLE_THREADS, check_portable

        check_portable()
        torch.set_num_threads(PORTABLE_THREADS)
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick the fastest kernels
    random.seed(tc.seed)
    np.random.seed(tc.seed & 0xFFFFFFFF)
    torch.manual_seed(tc.seed)


def _build_model_and_criterion(family: TrackerFamily, cfg: dict[str, Any], tc: TrainConfig) -> tuple[nn.Module, Any]:
    """The family's model (on ``train.backend`` when set) and criterion."""
    model = family.build_model(cfg["model"])
    if not isinstance(model, nn.Module):
        raise TypeError(f"model.name: build_model returned {type(model).__name__}, not an nn.Module")
    if tc.backend is not None:
        check_backend(tc.backend, "train.backend")
        if not isinstance(model, SupportsBackend):
            raise ValueError(f"train.backend: model {type(model).__name__} has no set_backend(); "
                             "set the kernel backend in the model section instead")
        model.set_backend(tc.backend)
    criterion = family.build_criterion(cfg)
    if not callable(criterion):
        raise TypeError(f"model.name: build_criterion returned {type(criterion).__name__}, not a callable")
    return model, criterion


class _Run:
    """One training run: the objects :func:`train` builds and the epoch loop over them."""

    def __init__(self, cfg: dict[str, Any], tc: TrainConfig, dc: DataConfig, sampler: TrackingSampler,
                 ckpt: dict[str, Any] | None, out: Path, max_steps: int | None, info: DistInfo) -> None:
        self.cfg, self.tc, self.dc, self.sampler, self.ckpt = cfg, tc, dc, sampler, ckpt
        self.out, self.max_steps, self.info = out, max_steps, info
        self.device = _resolve_device(tc.device, info)
        self.amp_dtype = _amp_dtype(tc.amp, self.device)
        self.writer: Any = None
        self.csv_log: _CsvLog | None = None
        self.last_path: Path | None = None

    def build(self, family: TrackerFamily) -> None:
        """Model, criterion, optimizer, schedule, scaler, EMA; restore a checkpoint; wrap for DDP/compile."""
        tc, info, device = self.tc, self.info, self.device
        _seed_and_configure(tc, device)
        model, criterion = _build_model_and_criterion(family, self.cfg, tc)
        model.to(device)
        if isinstance(criterion, nn.Module):
            criterion.to(device)
        torch.manual_seed(tc.seed + info.rank)  # per-rank dropout streams; same init everywhere
        self.model, self.criterion = model, criterion
        self.world = world = info.world_size
        self.accum = accum = tc.accum_steps
        self.global_batch = tc.batch_size * world * accum
        self.lr = scaled_lr(tc.lr, self.global_batch, tc.lr_scaling.rule, tc.lr_scaling.reference_batch)
        per_rank = math.ceil(len(self.sampler) / world)
        self.steps_per_epoch = per_rank // (tc.batch_size * accum)
        if self.steps_per_epoch < 1:
            raise ValueError(f"data.sampler.samples_per_epoch: {len(self.sampler)} samples over {world} rank(s) give "
                             f"less than one step of train.batch_size={tc.batch_size} x train.accum_steps={accum}")
        self.total_steps = self.steps_per_epoch * tc.epochs
        groups = build_param_groups(model, self.lr, tc.weight_decay, tc.backbone_prefix, tc.backbone_lr_mult)
        # portable numerics: the fused update is ATen's own vector code (the default one calls torch.sqrt, MKL's VML)
        fused = True if tc.numerics == "portable" else None
        self.optimizer = torch.optim.AdamW(groups, lr=self.lr, betas=tc.betas, weight_decay=tc.weight_decay, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, LrSchedule(tc.schedule, self.steps_per_epoch, self.total_steps))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = ModelEMA(model, tc.ema.decay) if tc.ema.enabled else None
        step = 0
        if self.ckpt is not None:
            step = _restore(self.ckpt, model, self.optimizer, self.scheduler, self.scaler, self.ema, self.steps_per_epoch)
        self.start_epoch, self.skip = divmod(step, self.steps_per_epoch)
        self.state = _LoopState(step=step, accum=accum)
        # one record per training session (a resumed run keeps the earlier sessions')
        earlier = self.ckpt.get("provenance") if self.ckpt is not None else None
        self.provenance = [*(earlier if isinstance(earlier, list) else []), session_provenance(step)]
        self.own = _RunCheckpoints(self.out, self.ckpt)
        if self.ckpt is not None and info.is_main:
            self.own.prune(tc.keep_checkpoints)  # a run killed between a checkpoint and its pruning
        self.train_model: nn.Module = model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                           find_unused_parameters=tc.find_unused_parameters)
            self.train_model = self.ddp
        if tc.compile:
            self.train_model = torch.compile(self.train_model)

    def open_logs(self) -> None:
        """Rank 0: the output folder, ``config.yaml``, ``log.csv`` and TensorBoard."""
        out, tc = self.out, self.tc
        if not self.info.is_main:
            return
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(self.cfg, sort_keys=False))
        self.csv_log = _CsvLog(out / "log.csv", self.state.step if self.ckpt is not None else None)
        if tc.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        step = self.state.step
        log.info("training %s on %s: %d rank(s), batch %d/rank (global %d), lr %.3g, %d steps/epoch, %d epochs%s",
                 self.cfg["model"]["name"], self.device, self.world, tc.batch_size, self.global_batch, self.lr,
                 self.steps_per_epoch, tc.epochs, f", resuming at step {step}" if step else "")
        if tc.numerics == "portable":
            log.info("portable numerics: %d threads, MKL_CBWR=COMPATIBLE, AVX2 kernels, fused AdamW", torch.get_num_threads())

    def checkpoint(self, epoch: int, name: str) -> None:
        """Rank 0: write checkpoint ``name`` (everything an exact resume needs) and prune old ones."""
        if not self.info.is_main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": _rng_state(),
            "epoch": epoch,
            "step": self.state.step,
            "steps_per_epoch": self.steps_per_epoch,
            "config": self.cfg,
            "provenance": self.provenance,
            "checkpoints": [n for n in self.own.names if n != name] + [name],
        }
        path = save_checkpoint(self.out / name, payload)
        self.own.written(name, self.tc.keep_checkpoints)
        log.info("checkpoint %s (epoch %d, step %d)", path, epoch, self.state.step)
        self.last_path = path

    def loader(self, dataset: TrackingDataset, epoch: int, first: int) -> DataLoader:
        """The epoch's loader: this rank's shard from step ``first`` on, seeded per epoch."""
        tc, dc = self.tc, self.dc
        gen = torch.Generator()
        gen.manual_seed((tc.seed & 0xFFFFFFFF) * 100_003 + epoch)  # keeps the global RNG untouched
        return DataLoader(
            dataset,
            generator=gen,
            batch_size=tc.batch_size,
            sampler=ShardedSampler(len(self.sampler), self.info.rank, self.world,
                                   start=first * tc.batch_size * self.accum),
            num_workers=dc.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=seed_worker if dc.num_workers > 0 else None,
        )

    def _reached_max(self) -> bool:
        return self.max_steps is not None and self.state.step >= self.max_steps

    def train_epoch(self, dataset: TrackingDataset, epoch: int) -> None:
        """The optimizer steps of one epoch (from the resumed step), logging and step checkpoints."""
        from tqdm.auto import tqdm

        tc, state = self.tc, self.state
        first = self.skip if epoch == self.start_epoch else 0
        loader = self.loader(dataset, epoch, first)
        self.train_model.train()
        bar = tqdm(total=self.steps_per_epoch - first, desc=f"epoch {epoch + 1}/{tc.epochs}",
                   disable=not self.info.is_main or None, leave=False, dynamic_ncols=True)
        micro = iter(loader)
        for _ in range(self.steps_per_epoch - first):
            for k in range(self.accum):
                sync = self.ddp is None or k == self.accum - 1
                with contextlib.nullcontext() if sync else self.ddp.no_sync():
                    _micro_step(next(micro), self.train_model, self.criterion, self.scaler, tc, self.device,
                                self.amp_dtype, state, k == 0, self.optimizer)
            _optimizer_step(self.optimizer, self.scheduler, self.scaler, self.ema, self.model, tc, state)
            bar.update(1)
            if state.step % tc.log_interval == 0 or state.step == self.total_steps:
                _log(state, epoch, self.optimizer, self.info, self.csv_log, self.writer, bar, self.device)
            if tc.checkpoint_steps and state.step % tc.checkpoint_steps == 0 and state.step % self.steps_per_epoch:
                self.checkpoint(epoch, f"checkpoint_s{state.step:08d}.pth")
            if self._reached_max():
                break
        bar.close()

    def loop(self, dataset: TrackingDataset) -> Path:
        """Every epoch from the resumed one; returns the last checkpoint written."""
        tc, state = self.tc, self.state
        try:
            for epoch in range(self.start_epoch, tc.epochs):
                set_epoch = getattr(self.model, "set_epoch", None)
                if callable(set_epoch):
                    set_epoch(epoch)
                dataset.set_epoch(epoch)
                self.train_epoch(dataset, epoch)
                done_epoch = state.step % self.steps_per_epoch == 0 and state.step > 0
                if self._reached_max() and not done_epoch:
                    self.checkpoint(epoch, f"checkpoint_s{state.step:08d}.pth")
                    break
                if (epoch + 1) % tc.checkpoint_interval == 0 or epoch + 1 == tc.epochs or self._reached_max():
                    self.checkpoint(epoch + 1, f"checkpoint_e{epoch + 1:04d}.pth")
                if self._reached_max():
                    break
            barrier(self.info)
        finally:
            if self.writer is not None:
                self.writer.close()
        if self.last_path is None:
            if self.ckpt is not None:  # resumed a run that had already finished
                return Path(self.ckpt["_path"])
            self.last_path = self.out / f"checkpoint_e{tc.epochs:04d}.pth"
        return self.last_path


class _LoopState:
    """Mutable counters of the training loop."""

    def __init__(self, step: int, accum: int = 1) -> None:
        self.step = step
        self.accum = accum
        self.loss_sum = 0.0
        self.count = 0
        self.stats: dict[str, float] = {}
        self.t0 = time.perf_counter()


def _micro_step(batch: dict[str, Any], train_model: nn.Module, criterion: Any, scaler: torch.amp.GradScaler,
                tc: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None, state: _LoopState,
                first: bool, optimizer: torch.optim.Optimizer) -> None:
    """Forward, loss and backward of one micro-batch (gradients accumulate over ``train.accum_steps``)."""
    batch = _to_device(batch, device)
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with ctx:
        outputs = train_model(batch)
        loss, stats = criterion(outputs, batch)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError(f"criterion: expected a scalar loss tensor, got {type(loss).__name__}")
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"training diverged: loss is {value} at step {state.step + 1} (stats {stats})")
    if first:
        optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss / tc.accum_steps if tc.accum_steps > 1 else loss).backward()
    state.loss_sum += value
    state.count += 1
    for key, val in (stats or {}).items():
        state.stats[key] = state.stats.get(key, 0.0) + float(val)


def _optimizer_step(optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                    ema: ModelEMA | None, model: nn.Module, tc: TrainConfig, state: _LoopState) -> None:
    """Clip, step the optimizer/scaler/schedule, update the EMA, count the step."""
    if tc.grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    if ema is not None:
        ema.update(model)
    state.step += 1


def _log(state: _LoopState, epoch: int, optimizer: torch.optim.Optimizer, info: DistInfo, csv_log: _CsvLog | None,
         writer: Any, bar: Any, device: torch.device) -> None:
    n = max(state.count, 1)
    vals = torch.tensor([state.loss_sum / n] + [v / n for v in state.stats.values()], dtype=torch.float64,
                        device=device if info.backend == "nccl" else "cpu")
    vals = all_reduce_mean(vals, info).cpu().tolist()
    elapsed = time.perf_counter() - state.t0
    row = {"epoch": epoch + 1, "step": state.step, "lr": optimizer.param_groups[0]["lr"], "loss": vals[0]}
    row.update({k: v for k, v in zip(state.stats, vals[1:])})
    row["sec_per_step"] = elapsed * state.accum / n
    if csv_log is not None:
        csv_log.write(row)
    if writer is not None:
        for key, value in row.items():
            if key not in ("epoch", "step"):
                writer.add_scalar(f"train/{key}", value, state.step)
    if info.is_main and hasattr(bar, "set_postfix"):
        bar.set_postfix(loss=f"{vals[0]:.4f}", lr=f"{row['lr']:.2e}")
    state.loss_sum, state.count, state.stats, state.t0 = 0.0, 0, {}, time.perf_counter()


def _restore(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             scaler: torch.amp.GradScaler, ema: ModelEMA | None, steps_per_epoch: int) -> int:
    where = f"resume: {ckpt.get('_path', 'checkpoint')}"
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"{where} does not match the model built from the config: {err}") from None
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"{where}: optimizer/scheduler state does not match this config: {err}") from None
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    if ema is not None:
        if ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        else:
            log.warning("%s has no EMA state; the EMA restarts from the current weights", where)
    step = int(ckpt["step"])
    saved_spe = ckpt.get("steps_per_epoch")
    if saved_spe is not None and int(saved_spe) != steps_per_epoch:
        raise ValueError(f"{where}: written with {saved_spe} steps per epoch, this config gives {steps_per_epoch} "
                         "(batch size, world size or samples_per_epoch changed)")
    _set_rng_state(ckpt["rng"])
    return step


#: Files a training run writes into its ``out_dir`` (removed by ``overwrite``).
RUN_FILES = ("checkpoint_*.pth", "log.csv", "config.yaml")


def claim_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready for a run: refuse a folder that holds anything (another run) unless
    resuming or ``overwrite`` (which removes the other run's files); remove temporary files a
    killed writer left there."""
    main = os.environ.get("RANK", "0") == "0"
    if main:
        remove_stale_temp_files(out)
    if not out.is_dir() or resume:
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not overwrite:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise ValueError(f"out_dir: {out} is not empty ({shown}); pass --resume {out} to continue the run "
                         "there, --overwrite to replace it, or choose another --out-dir")
    if main:
        log.warning("out_dir: --overwrite: removing the previous run in %s", out)
        import shutil

        for pattern in RUN_FILES:
            for p in out.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        shutil.rmtree(out / "tensorboard", ignore_errors=True)


class _RunCheckpoints:
    """The checkpoints this run wrote in ``out`` (carried across resumes in the checkpoints),
    oldest first: ``keep_checkpoints`` prunes only these, never another run's files."""

    def __init__(self, out: Path, ckpt: dict[str, Any] | None) -> None:
        self.out = out
        self.names: list[str] = []
        if ckpt is not None and Path(ckpt["_path"]).parent.resolve() == out.resolve():
            self.names = [str(n) for n in ckpt.get("checkpoints", []) if isinstance(n, str)]

    def written(self, name: str, keep: int) -> None:
        """Record checkpoint ``name`` and remove this run's oldest ones beyond ``keep`` (0: keep all)."""
        self.names = [n for n in self.names if n != name] + [name]
        self.prune(keep)

    def prune(self, keep: int) -> None:
        """Remove this run's oldest checkpoints beyond ``keep`` (0: keep all)."""
        if keep > 0:
            for old in self.names[:-keep]:
                with contextlib.suppress(FileNotFoundError):
                    (self.out / old).unlink()
            self.names = self.names[-keep:]
