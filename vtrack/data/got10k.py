"""GOT-10k reader (and the synthetic benchmark, which uses the same layout).

Layout: ``root/{train,val,test}/list.txt`` and one directory per sequence holding
``00000001.jpg...`` (8 digits, from 1), ``groundtruth.txt`` (comma x,y,w,h; the test split has the
first line only), ``absence.label`` (1 = absent), ``cover.label`` (0-8 visible eighths),
``cut_by_image.label`` and ``meta_info.ini`` (``[METAINFO]`` then ``key: value`` lines).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from vtrack.data._io import (
    AnnotationError,
    check_length,
    list_images,
    read_boxes,
    read_label_column,
    read_list,
    read_sentence,
    require_dir,
    require_file,
    valid_from_boxes,
)
from vtrack.data.sequence import Sequence

logger = logging.getLogger(__name__)

GOT10K_SPLITS = ("train", "val", "test")

_RESOLUTION = re.compile(r"^\(?\s*(\d+)\s*,\s*(\d+)\s*\)?$")


def read_meta_info(path: str | Path) -> dict[str, Any]:
    """Parse a GOT-10k ``meta_info.ini``: ``key: value`` lines after a ``[METAINFO]`` header.

    ``resolution: (W, H)`` becomes a tuple of ints; other values stay strings.
    """
    path = require_file(path, "meta_info.ini")
    meta: dict[str, Any] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith(("[", "#", ";")):
            continue
        if ":" not in text:
            raise AnnotationError(path, number, f"expected 'key: value', got {text!r}")
        key, value = (part.strip() for part in text.split(":", 1))
        if key == "resolution":
            match = _RESOLUTION.match(value)
            if not match:
                raise AnnotationError(path, number, f"resolution: expected '(W, H)', got {value!r}")
            meta[key] = (int(match.group(1)), int(match.group(2)))
        else:
            meta[key] = value
    return meta


def _split_dir(root: Path, split: str | None, dataset: str) -> tuple[Path, str]:
    """Resolve the split directory (``root/split`` or ``root`` itself when it holds list.txt)."""
    if split is None:
        if (root / "list.txt").is_file():
            return root, root.name
        raise ValueError(
            f"split: expected one of {', '.join(GOT10K_SPLITS)} for {dataset} (root {root} has no list.txt), got None"
        )
    if split not in GOT10K_SPLITS:
        raise ValueError(f"split: expected one of {', '.join(GOT10K_SPLITS)} for {dataset}, got {split!r}")
    return require_dir(root / split, f"{dataset} {split} split directory"), split


def _sequence_names(split_dir: Path) -> list[str]:
    """Names from list.txt, checked against the directories that exist."""
    list_file = split_dir / "list.txt"
    if not list_file.is_file():
        names = sorted(p.name for p in split_dir.iterdir() if (p / "groundtruth.txt").is_file())
        if not names:
            raise FileNotFoundError(f"missing list file: {list_file} (and no sequence directories in {split_dir})")
        logger.warning("%s missing: using the %d sequence directories found", list_file, len(names))
        return names
    names = read_list(list_file)
    for number, name in enumerate(names, start=1):
        if not (split_dir / name).is_dir():
            raise AnnotationError(list_file, number, f"sequence directory {split_dir / name} does not exist")
    return names


def read_got10k_sequence(seq_dir: str | Path, *, first_frame_only: bool = False, dataset: str = "got10k") -> Sequence:
    """Read one GOT-10k sequence directory.

    Args:
        seq_dir: directory with frames and ``groundtruth.txt``.
        first_frame_only: only the first box is public (the test split): the other rows are NaN,
            flagged invalid, and ``attributes["first_frame_only"]`` is True.
        dataset: name recorded in the Sequence.

    Per-frame attributes (when the label files exist): ``absence`` (bool), ``cover`` (int 0-8),
    ``cut_by_image`` (bool); ``meta`` holds meta_info.ini and ``resolution`` its (W, H).
    ``valid`` = finite positive box and not absent.
    """
    seq_dir = require_dir(seq_dir, "sequence directory")
    gt_path = seq_dir / "groundtruth.txt"
    frames = list_images(seq_dir)
    if not frames:
        raise FileNotFoundError(f"no frames (*.jpg/*.png) in {seq_dir}")
    attributes: dict[str, Any] = {}
    if first_frame_only:
        first = read_boxes(gt_path, max_rows=1)
        boxes = np.full((len(frames), 4), np.nan)
        boxes[0] = first[0]
        valid = np.zeros(len(frames), dtype=bool)
        valid[0] = bool(valid_from_boxes(first)[0])
        attributes["first_frame_only"] = True
    else:
        boxes = read_boxes(gt_path)
        check_length(gt_path, boxes, len(frames), f"frames in {seq_dir}")
        valid = valid_from_boxes(boxes)
        labels = {"absence": (0, 1), "cover": (0, 8), "cut_by_image": (0, 1)}
        for key, (low, high) in labels.items():
            label_path = seq_dir / f"{key}.label"
            if label_path.is_file():
                values = read_label_column(label_path, expected=len(frames), low=low, high=high)
                attributes[key] = values.astype(bool) if high == 1 else values
        if "absence" in attributes:
            valid &= ~attributes["absence"]
    meta_path = seq_dir / "meta_info.ini"
    if meta_path.is_file():
        meta = read_meta_info(meta_path)
        attributes["meta"] = meta
        if "resolution" in meta:
            attributes["resolution"] = meta["resolution"]
    return Sequence(
        name=seq_dir.name, frames=frames, boxes=boxes, valid=valid, attributes=attributes, dataset=dataset
    )


def load_got10k(root: str | Path, split: str | None = None) -> list[Sequence]:
    """Load a GOT-10k split (``train``, ``val`` or ``test``; test sequences carry only the first box)."""
    root = require_dir(root, "GOT-10k root")
    split_dir, split_name = _split_dir(root, split, "got10k")
    names = _sequence_names(split_dir)
    return [
        read_got10k_sequence(split_dir / name, first_frame_only=split_name == "test", dataset="got10k")
        for name in names
    ]


def load_synthetic(root: str | Path, split: str | None = None) -> list[Sequence]:
    """Load the synthetic benchmark written by :mod:`vtrack.data.synthetic`.

    GOT-10k layout with full ground truth in every split, plus ``nlp.txt`` (the target's
    description, stored as ``Sequence.language``) and ``attributes.json`` (per-sequence attributes
    such as ``occlusion``, ``motion`` or ``distractors``, merged into ``Sequence.attributes``).
    """
    root = require_dir(root, "synthetic benchmark root")
    split_dir, _ = _split_dir(root, split, "synthetic")
    sequences = []
    for name in _sequence_names(split_dir):
        seq = read_got10k_sequence(split_dir / name, dataset="synthetic")
        seq.language = read_sentence(split_dir / name / "nlp.txt")
        attr_path = split_dir / name / "attributes.json"
        if attr_path.is_file():
            try:
                extra = json.loads(attr_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise AnnotationError(attr_path, err.lineno, f"invalid JSON: {err.msg}") from None
            if not isinstance(extra, dict):
                raise AnnotationError(attr_path, None, f"expected a JSON object, got {type(extra).__name__}")
            seq.attributes.update(extra)
        sequences.append(seq)
    return sequences
