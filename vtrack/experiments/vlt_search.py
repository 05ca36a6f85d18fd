"""``vtrack search``: VLT's asymmetric architecture search (ASS, Alg. 1 of the paper's appendix)
on a trained supernet: evolutionary search whose reward is the success AUC of tracking a
validation split, with SPOS's batch-norm recalibration of each candidate path.

Registered by the VLT family (``VLTFamily.commands()``), so :mod:`vtrack.cli` does not reach into
the model package; tracking goes through :func:`vtrack.eval.runner.track_sequence` and the OPE
metrics of :mod:`vtrack.eval.metrics`. ``--arch FILE --random N`` skips the search and scores a
found architecture next to ``N`` random ones on the same supernet weights (the ``arch`` ablation).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vtrack.data.sequence import Sequence as TrackSequence
from vtrack.eval.metrics import got10k_metrics, ope_sequence, ope_summary
from vtrack.eval.runner import track_sequence
from vtrack.models.vlt.model import VLTModel, recalibrate_bn, save_arch
from vtrack.models.vlt.search import EvolutionConfig, SearchResult, evolutionary_search
from vtrack.models.vlt.supernet import NUM_CHOICES, Architecture

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand."""
    p = sub.add_parser("search", help="VLT asymmetric architecture search on a trained supernet")
    p.add_argument("config", help="VLT config (YAML) of the supernet")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. data.datasets.0.root=data/synthetic (BN recalibration data)")
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint from `vtrack train`")
    p.add_argument("--root", required=True, help="validation dataset root (e.g. the synthetic benchmark)")
    p.add_argument("--dataset", default="synthetic", help="dataset name for vtrack.data.load_dataset")
    p.add_argument("--split", default="val", help="validation split whose success AUC is the reward")
    p.add_argument("--max-sequences", type=int, default=None, help="use only the first N validation sequences")
    p.add_argument("--population", type=int, default=50)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--generations", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn-batches", type=int, default=4,
                   help="training batches for SPOS batch-norm recalibration of each candidate (0 = off)")
    p.add_argument("--bn-batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default=None, help="no search: score this architecture JSON (from a search)")
    p.add_argument("--random", type=int, default=0, help="with --arch: also score N random architectures")
    p.add_argument("--out", required=True, help="where to write the architecture (or comparison) JSON")
    p.set_defaults(func=run)


def bn_batches(cfg: dict, family: Any, count: int, batch_size: int, seed: int = 0) -> list[dict]:
    """``count`` training batches drawn exactly as the trainer draws them (config ``data`` section)."""
    from torch.utils.data import DataLoader

    from vtrack.config import from_dict
    from vtrack.train.processing import Processor
    from vtrack.train.samplers import TrackingDataset, TrackingSampler
    from vtrack.train.schema import DataConfig, ProcessingConfig
    from vtrack.train.trainer import load_datasets

    if count <= 0:
        return []
    data = from_dict(DataConfig, cfg.get("data"), "data")
    proc = from_dict(ProcessingConfig, {**family.processing_config(cfg), **data.processing}, "data.processing")
    sampler = TrackingSampler(load_datasets(data), [d.weight for d in data.datasets], mode=proc.sample_mode,
                              samples_per_epoch=count * batch_size, max_gap=data.sampler.max_gap, seed=seed)
    loader = DataLoader(TrackingDataset(sampler, Processor(proc, data.augment)), batch_size=batch_size)
    return list(loader)


def success_auc(tracker_factory: Callable[[], Any], sequences: Sequence[TrackSequence]) -> float:
    """Success AUC (OPE, pytracking conventions) of a tracker over ``sequences``."""
    curves = [ope_sequence(track_sequence(tracker_factory(), s).boxes, s.boxes, s.valid, name=s.name)
              for s in sequences]
    return ope_summary(curves).auc


def sequence_scores(tracker_factory: Callable[[], Any], sequences: Sequence[TrackSequence]) -> dict[str, float]:
    """Success AUC (OPE) and GOT-10k AO / SR0.5 of a tracker over ``sequences``."""
    preds = {s.name: track_sequence(tracker_factory(), s).boxes for s in sequences}
    curves = [ope_sequence(preds[s.name], s.boxes, s.valid, name=s.name) for s in sequences]
    covers = {s.name: s.attributes["cover"] for s in sequences if "cover" in s.attributes} or None
    got = got10k_metrics(preds, {s.name: s.boxes for s in sequences}, covers=covers)
    return {"auc": ope_summary(curves).auc, "ao": got.ao, "sr50": got.sr50}


def search_architecture(
    model: VLTModel,
    family: Any,
    cfg: dict[str, Any],
    val_sequences: Sequence[TrackSequence],
    evo: EvolutionConfig | None = None,
    *,
    bn_batches: Sequence[dict[str, Any]] = (),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> SearchResult:
    """Evolutionary search for the best path of a trained supernet ``model``.

    Args:
        model: the supernet (weights from supernet training).
        family: the registered VLT family (builds trackers).
        cfg: full config (``model``/``tracker`` sections).
        val_sequences: validation split; the reward is their success AUC.
        evo: evolution hyper-parameters.
        bn_batches: training batches for BN recalibration of each candidate (skipped if empty).
    """
    if not val_sequences:
        raise ValueError("val_sequences: expected at least one validation sequence, got none")
    base_state = copy.deepcopy(model.state_dict())
    n = 2 * model.spec.num_layers + 4 * model.spec.num_stages

    def reward(genes: list[int]) -> float:
        arch = Architecture.from_list(genes, model.spec)
        model.load_state_dict(base_state)
        if bn_batches:
            recalibrate_bn(model, arch, bn_batches, device)
        model.set_arch(arch)
        auc = success_auc(lambda: family.build_tracker(model, cfg, device), val_sequences)
        log.debug("arch %s: AUC %.4f", genes, auc)
        return auc

    result = evolutionary_search([NUM_CHOICES] * n, reward, evo, progress=progress)
    model.load_state_dict(base_state)
    model.set_arch(Architecture.from_list(result.best, model.spec))
    return result


def compare_architectures(model: VLTModel, family: Any, cfg: dict[str, Any], best: list[int], n_random: int,
                          bn: Sequence[dict], sequences: Sequence[TrackSequence], *, seed: int = 0,
                          device: torch.device | str = "cpu") -> dict[str, Any]:
    """The searched architecture vs ``n_random`` uniformly drawn ones on the same supernet weights,
    each after BN recalibration: ``{name: {"arch": [...], "auc", "ao", "sr50"}}``."""
    base = copy.deepcopy(model.state_dict())
    rng = random.Random(seed)
    archs = {"searched": Architecture.from_list(best, model.spec)}
    for i in range(n_random):
        archs[f"random {i + 1}"] = Architecture.random(model.spec, rng)
    rows = {}
    for name, arch in archs.items():
        model.load_state_dict(base)
        if bn:
            recalibrate_bn(model, arch, bn, device)
        model.set_arch(arch)
        rows[name] = {"arch": arch.to_list(), **sequence_scores(lambda: family.build_tracker(model, cfg, device), sequences)}
    return rows


def run(args: argparse.Namespace) -> int:
    """Load the supernet; search (write ``{"arch": [...], "reward": auc}``) or, with ``--arch``,
    compare that architecture with random ones (write the comparison)."""
    from vtrack.config import load_config
    from vtrack.data import load_dataset
    from vtrack.io import atomic_write_text
    from vtrack.models import get_family

    cfg = load_config(args.config, args.overrides)
    family = get_family(cfg["model"]["name"])
    model = family.build_model(cfg["model"])
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    model.to(args.device)
    seqs = load_dataset(args.dataset, args.root, args.split)
    if args.max_sequences is not None:
        seqs = seqs[: args.max_sequences]
    batches = bn_batches(cfg, family, args.bn_batches, args.bn_batch_size, args.seed)
    if args.arch is not None:
        best = json.loads(Path(args.arch).read_text())["arch"]
        rows = compare_architectures(model, family, cfg, best, args.random, batches, seqs, seed=args.seed,
                                     device=args.device)
        path = atomic_write_text(args.out, json.dumps(rows, indent=1) + "\n")
        print(f"architecture comparison written to {path}")
        return 0
    pop = max(args.population, args.topk)
    evo = EvolutionConfig(population=pop, topk=args.topk, mutations=pop // 2, crossovers=pop // 2,
                          generations=args.generations, seed=args.seed)
    result = search_architecture(model, family, cfg, seqs, evo, bn_batches=batches, device=args.device)
    path = save_arch(model.arch, Path(args.out), reward=result.best_reward, history=result.history)
    print(f"best architecture (success AUC {result.best_reward:.4f}) written to {path}")
    return 0
