"""VLT's asymmetric architecture search (ASS, Alg. 1 of the paper's appendix) on a trained supernet:
evolutionary search whose reward is the success AUC of tracking a validation split, with SPOS's
batch-norm recalibration of each candidate path before it is evaluated."""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vtrack.data.sequence import Sequence as TrackSequence
from vtrack.eval.metrics import ope_sequence, ope_summary
from vtrack.models.vlt.model import VLTModel
from vtrack.models.vlt.search import EvolutionConfig, SearchResult, evolutionary_search
from vtrack.models.vlt.supernet import NUM_CHOICES, Architecture

log = logging.getLogger(__name__)


@torch.no_grad()
def recalibrate_bn(model: VLTModel, arch: Architecture, batches: Iterable[dict[str, Any]], device: torch.device | str) -> None:
    """Re-estimate BatchNorm statistics for path ``arch`` on a few training batches (SPOS):
    a cumulative average over ``batches``; the layers' momentum is restored afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.set_arch(arch)
    model.train()
    try:
        for batch in batches:
            model({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        model.eval()


def track_sequence(tracker: Any, seq: TrackSequence, use_language: bool = True) -> np.ndarray:
    """Run a tracker over one sequence (OPE: initialised on frame 0 with the ground truth)."""
    boxes = np.zeros((len(seq), 4))
    boxes[0] = seq.boxes[0]
    tracker.initialize(seq.frame(0), seq.boxes[0], {"language": seq.language or ""} if use_language else {})
    for i in range(1, len(seq)):
        boxes[i] = tracker.track(seq.frame(i)).box
    return boxes


def success_auc(tracker_factory: Callable[[], Any], sequences: Sequence[TrackSequence], use_language: bool = True) -> float:
    """Success AUC (OPE, pytracking conventions) of a tracker over ``sequences``."""
    curves = [
        ope_sequence(track_sequence(tracker_factory(), s, use_language), s.boxes, s.valid, name=s.name) for s in sequences
    ]
    return ope_summary(curves).auc


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
