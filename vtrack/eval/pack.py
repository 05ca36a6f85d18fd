"""Pack a result folder into the zip that a benchmark's evaluation server takes (``vtrack pack``).

Formats (the layouts of the servers' instructions and of pytracking's packing scripts):

- ``got10k-test``: ``<seq>/<seq>_001.txt`` (comma-separated x,y,w,h, one row per frame; also
  ``_002``, ``_003`` when the folder holds those repetitions) and ``<seq>/<seq>_time.txt``
  (seconds per frame), for every sequence of the GOT-10k test split.
- ``trackingnet``: ``<seq>.txt`` (comma-separated x,y,w,h, one row per frame) at the zip's root,
  for every sequence of the TrackingNet TEST split.

The input is a folder that ``vtrack eval`` wrote with the matching protocol (``got10k`` or
``trackingnet``). Every file is checked before anything is written: a missing sequence or file,
a row that is not four comma-separated finite numbers, or a row count that differs from the
sequence's frame count is reported, all of them at once. The zip is written atomically (a
temporary file and a rename) and its entries are in a fixed order with a fixed timestamp, so
packing the same results twice gives the same bytes.
"""
from __future__ import annotations

import argparse
import io
import logging
import math
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping

from vtrack.io import atomic_write_bytes, refuse_overwrite_input

__all__ = ["PACK_FORMATS", "IncompleteResultsError", "pack_results", "register"]

logger = logging.getLogger(__name__)

#: pack format -> (dataset reader name, default split)
PACK_FORMATS: dict[str, tuple[str, str]] = {
    "got10k-test": ("got10k", "test"),
    "trackingnet": ("trackingnet", "test"),
}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SHOWN = 10


class IncompleteResultsError(ValueError):
    """The result folder lacks files, or holds malformed or short ones; ``problems`` lists them."""

    def __init__(self, result_dir: Path, problems: list[str]) -> None:
        self.problems = problems
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        listed = "\n  ".join(problems[:_SHOWN])
        super().__init__(
            f"results: {result_dir} is incomplete, nothing was written ({len(problems)} problem(s)):\n  {listed}{more}"
        )


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _check_boxes(path: Path, frames: int | None) -> str | None:
    """A problem with a box file (x,y,w,h rows separated by commas), or None."""
    lines = _lines(path)
    for number, line in enumerate(lines, 1):
        parts = line.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            return f"{path}: row {number} is not 4 comma-separated finite numbers (x,y,w,h): {line.strip()!r}"
    if frames is not None and len(lines) != frames:
        return f"{path}: {len(lines)} boxes for {frames} frames"
    return None


def _check_times(path: Path, frames: int | None) -> str | None:
    """A problem with a time file (one non-negative number of seconds per row), or None."""
    lines = _lines(path)
    for number, line in enumerate(lines, 1):
        try:
            value = float(line)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value >= 0):
            return f"{path}: row {number} is not a time in seconds (a number >= 0): {line.strip()!r}"
    if frames is not None and len(lines) != frames:
        return f"{path}: {len(lines)} times for {frames} frames"
    return None


def _entries(fmt: str, root: Path, name: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """(zip entry, source file) pairs of one sequence, and the files that are missing."""
    if fmt == "trackingnet":
        src = root / f"{name}.txt"
        return ([(f"{name}.txt", src)], []) if src.is_file() else ([], [str(src)])
    folder = root / name
    reps = sorted(folder.glob(f"{name}_[0-9][0-9][0-9].txt")) if folder.is_dir() else []
    first = folder / f"{name}_001.txt"
    time_file = folder / f"{name}_time.txt"
    missing = [str(p) for p in (first, time_file) if not p.is_file()]
    pairs = [(f"{name}/{p.name}", p) for p in reps] + ([(f"{name}/{time_file.name}", time_file)] if time_file.is_file() else [])
    return pairs, missing


def pack_results(
    result_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str,
    sequences: Mapping[str, int | None],
    overwrite: bool = False,
) -> dict[str, Any]:
    """Zip ``result_dir`` in the evaluation server's layout ``fmt`` (see the module docstring).

    Args:
        result_dir: one tracker's result folder (``vtrack eval`` with protocol ``got10k`` for
            ``got10k-test``, ``trackingnet`` for ``trackingnet``).
        out: the zip to write (``.zip``); never one of the inputs.
        fmt: ``"got10k-test"`` or ``"trackingnet"``.
        sequences: every sequence the server expects (the split's list) -> its frame count, or
            None to skip the row-count check.
        overwrite: replace an existing ``out``.

    Returns:
        ``{"zip", "format", "sequences", "files"}`` (``files``: the zip's entry names).

    Raises:
        IncompleteResultsError (a ValueError) listing every missing or malformed file.
    """
    if fmt not in PACK_FORMATS:
        raise ValueError(f"fmt: expected one of {', '.join(PACK_FORMATS)}, got {fmt!r}")
    root = Path(result_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"result_dir: folder not found: {root}")
    if not isinstance(sequences, Mapping) or not sequences:
        raise ValueError("sequences: expected a non-empty mapping of sequence names to frame counts")
    for name, frames in sequences.items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"sequences: expected plain sequence names, got {name!r}")
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
            raise ValueError(f"sequences[{name!r}]: expected a frame count >= 1 or None, got {frames!r}")
    target = Path(out)
    if target.is_dir():
        raise ValueError(f"out: {target} is a folder; expected a .zip path")
    if target.exists() and not overwrite:
        raise FileExistsError(f"out: {target} exists (pass overwrite=True / --overwrite to replace it)")

    pairs: list[tuple[str, Path]] = []
    problems: list[str] = []
    for name, frames in sequences.items():
        entries, missing = _entries(fmt, root, name)
        problems.extend(f"{name}: missing {m}" for m in missing)
        for entry, src in entries:
            check = _check_times if entry.endswith("_time.txt") else _check_boxes
            problem = check(src, frames)
            if problem:
                problems.append(f"{name}: {problem}")
        pairs.extend(entries)
    refuse_overwrite_input(target, [root, *(src for _, src in pairs)], flag="out")
    if target.suffix.lower() != ".zip":
        raise ValueError(f"out: expected a .zip path, got {target}")
    if problems:
        raise IncompleteResultsError(root, problems)
    extra = sorted(
        p.name for p in root.iterdir()
        if not p.name.startswith(".") and p.name != "summary.json"
        and (p.name if p.is_dir() else p.name.removesuffix("_time.txt").removesuffix(".txt")) not in sequences
    )
    if extra:
        logger.warning("%d entries of %s are not in the split and are left out: %s", len(extra), root,
                       ", ".join(extra[:5]))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for entry, src in sorted(pairs):
            info = zipfile.ZipInfo(entry, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, src.read_bytes())
    atomic_write_bytes(target, buffer.getvalue())
    return {"zip": str(target), "format": fmt, "sequences": len(sequences), "files": [e for e, _ in sorted(pairs)]}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add the ``pack`` subcommand."""
    p = subparsers.add_parser(
        "pack",
        help="zip a result folder for the GOT-10k or TrackingNet evaluation server",
        description=(
            "Check that RESULTS (written by `vtrack eval` on the test split) holds a complete result "
            "for every sequence of the split, then write the server's zip: got10k-test = "
            "<seq>/<seq>_001.txt and <seq>/<seq>_time.txt; trackingnet = <seq>.txt. Incomplete "
            "folders are refused with the list of what is missing."
        ),
    )
    p.add_argument("results", metavar="RESULTS", help="result folder (vtrack eval --out)")
    p.add_argument("--format", required=True, choices=tuple(PACK_FORMATS), dest="fmt", help="server layout")
    p.add_argument("--out", required=True, help="zip file to write")
    p.add_argument("--root", required=True, help="dataset root (its split lists the sequences the server expects)")
    p.add_argument("--dataset", help="dataset reader (default: got10k or trackingnet, from --format)")
    p.add_argument("--split", help="split (default: test)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out zip")
    p.set_defaults(func=run_pack)


def run_pack(args: argparse.Namespace) -> int:
    """``vtrack pack``: read the split's sequence list, check and zip the results."""
    from vtrack.data import load_dataset

    dataset, split = PACK_FORMATS[args.fmt]
    seqs = load_dataset(args.dataset or dataset, args.root, args.split or split)
    if not seqs:
        raise ValueError(f"--root: no sequences in {args.dataset or dataset} {args.split or split} at {args.root}")
    res = pack_results(args.results, args.out, fmt=args.fmt, sequences={s.name: len(s) for s in seqs},
                       overwrite=args.overwrite)
    sys.stdout.write(f"packed {res['sequences']} sequences ({len(res['files'])} files, {args.fmt}) into {res['zip']}\n")
    return 0
