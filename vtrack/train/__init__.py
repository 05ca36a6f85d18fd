"""vtrack.train: samplers, processing, label generators, losses and the trainer.

``from vtrack.train import train`` runs a config-driven training (see docs/training.md); the
submodules ``losses`` and ``labels`` are light and importable on their own.
"""
from __future__ import annotations

from typing import Any

__all__ = ["train"]


def train(*args: Any, **kwargs: Any) -> Any:
    """Run a training from a config dict; see :func:`vtrack.train.trainer.train`."""
    from vtrack.train.trainer import train as _train

    return _train(*args, **kwargs)
