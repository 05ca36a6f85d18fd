"""``load_dataset``: one entry point for every supported dataset layout."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from vtrack.data.sequence import Sequence

# dataset name -> "module:function" of its reader ``(root, split) -> list[Sequence]``
DATASETS: dict[str, str] = {
    "got10k": "vtrack.data.got10k:load_got10k",
    "synthetic": "vtrack.data.got10k:load_synthetic",
    "lasot": "vtrack.data.benchmarks:load_lasot",
    "trackingnet": "vtrack.data.benchmarks:load_trackingnet",
    "otb": "vtrack.data.benchmarks:load_otb",
    "uav123": "vtrack.data.benchmarks:load_uav123",
    "nfs": "vtrack.data.benchmarks:load_nfs",
    "tnl2k": "vtrack.data.benchmarks:load_tnl2k",
    "vot": "vtrack.data.benchmarks:load_vot",
}


def get_reader(name: str) -> Callable[[Path, str | None], list[Sequence]]:
    """Return the reader function registered for dataset ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a dataset name (str), got {type(name).__name__}")
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"name: expected one of {', '.join(sorted(DATASETS))}, got {name!r}")
    module, function = DATASETS[key].split(":")
    return getattr(importlib.import_module(module), function)


def load_dataset(name: str, root: str | Path, split: str | None = None) -> list[Sequence]:
    """Load every sequence of a dataset split from its official folder layout.

    Args:
        name: one of :data:`DATASETS` (got10k, lasot, trackingnet, otb, uav123, nfs, tnl2k, vot,
            synthetic).
        root: the dataset's root folder as distributed (see docs/datasets.md for each layout).
        split: the split, where the dataset has them (e.g. ``"train"``/``"val"``/``"test"`` for
            GOT-10k and the synthetic benchmark); the accepted values are listed in the error.

    Returns:
        Sequences whose frames are file paths read lazily by :meth:`Sequence.frame`.

    Raises:
        ValueError: unknown name or split, or a malformed annotation (the message names file and line).
        FileNotFoundError: a missing root, sequence folder or annotation file (named).
    """
    reader = get_reader(name)
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root: expected a path (str or Path), got {type(root).__name__}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"root: dataset folder does not exist: {root}")
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split: expected a str or None, got {type(split).__name__}")
    return reader(root, split)
