"""``vtrack search``: evolutionary architecture search on a trained VLT supernet."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

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
    p.add_argument("--out", required=True, help="where to write the architecture JSON")
    p.set_defaults(func=run)


def bn_batches(cfg: dict, family, count: int, batch_size: int, seed: int = 0) -> list[dict]:
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


def run(args: argparse.Namespace) -> int:
    """Load the supernet, search, write ``{"arch": [...], "reward": auc}``."""
    from vtrack.config import load_config
    from vtrack.data import load_dataset
    from vtrack.models import get_family
    from vtrack.models.vlt.model import save_arch
    from vtrack.models.vlt.pipeline import search_architecture
    from vtrack.models.vlt.search import EvolutionConfig

    cfg = load_config(args.config, args.overrides)
    family = get_family(cfg["model"]["name"])
    model = family.build_model(cfg["model"])
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    model.to(args.device)
    seqs = load_dataset(args.dataset, args.root, args.split)
    if args.max_sequences is not None:
        seqs = seqs[: args.max_sequences]
    pop = max(args.population, args.topk)
    evo = EvolutionConfig(population=pop, topk=args.topk, mutations=pop // 2, crossovers=pop // 2,
                          generations=args.generations, seed=args.seed)
    batches = bn_batches(cfg, family, args.bn_batches, args.bn_batch_size, args.seed)
    result = search_architecture(model, family, cfg, seqs, evo, bn_batches=batches, device=args.device)
    path = save_arch(model.arch, Path(args.out), reward=result.best_reward, history=result.history)
    print(f"best architecture (success AUC {result.best_reward:.4f}) written to {path}")
    return 0
