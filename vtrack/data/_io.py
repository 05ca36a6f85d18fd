"""Strict readers for the small text files that tracking datasets are made of.

Every parser names the file (and the 1-based line) it could not read: a malformed annotation is
an error, never a silently shortened sequence.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

_SEPARATORS = re.compile(r"[,\t ;]+")


class AnnotationError(ValueError):
    """A malformed annotation file; ``path`` and ``line`` (1-based, or None) say where."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


def require_file(path: str | Path, what: str = "annotation file") -> Path:
    """Return ``path`` as a Path, raising FileNotFoundError naming it (and ``what``) if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


def require_dir(path: str | Path, what: str = "directory") -> Path:
    """Return ``path`` as a Path, raising FileNotFoundError naming it if it is not a directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


def _lines(path: Path) -> list[str]:
    """Lines of a text file without trailing blank lines (interior blank lines are kept)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError as err:
        raise AnnotationError(path, None, f"not a UTF-8 text file ({err})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _parse_float(token: str) -> float:
    value = float(token)  # accepts "nan", "NaN", "1e3"
    if np.isinf(value):
        raise ValueError(f"infinite value {token!r}")
    return value


def read_numbers(
    path: str | Path,
    columns: int | tuple[int, ...] = 4,
    *,
    separators: str = "auto",
    max_rows: int | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read a text file of numeric rows into a float64 array [N, C].

    Args:
        path: the file; FileNotFoundError naming it if missing.
        columns: the number of numbers each row must have, or a tuple of accepted counts (all
            rows must then have the same count).
        separators: ``"auto"`` accepts commas, tabs, spaces and semicolons (OTB mixes them);
            ``","`` requires commas.
        max_rows: read only the first ``max_rows`` rows (GOT-10k test: the first box).
        allow_empty: return an empty [0, C] array for an empty file instead of raising.

    Raises:
        AnnotationError: naming file and line for a row with the wrong count or a non-number.
    """
    path = require_file(path)
    accepted = (columns,) if isinstance(columns, int) else tuple(columns)
    lines = _lines(path)
    if max_rows is not None:
        lines = lines[:max_rows]
    if not lines:
        if allow_empty:
            return np.zeros((0, accepted[0]), dtype=np.float64)
        raise AnnotationError(path, None, "file is empty (expected one row per frame)")
    rows: list[list[float]] = []
    width: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            raise AnnotationError(path, number, "blank line inside the annotation")
        if separators == "auto":
            tokens = [t for t in _SEPARATORS.split(stripped) if t]
        else:
            tokens = [t.strip() for t in stripped.split(separators)]
        if len(tokens) not in accepted:
            expected = " or ".join(str(c) for c in accepted)
            raise AnnotationError(path, number, f"expected {expected} numbers, got {len(tokens)}: {stripped!r}")
        if width is None:
            width = len(tokens)
        elif len(tokens) != width:
            raise AnnotationError(path, number, f"expected {width} numbers like the first row, got {len(tokens)}")
        try:
            rows.append([_parse_float(t) for t in tokens])
        except ValueError as err:
            raise AnnotationError(path, number, f"not a number in {stripped!r} ({err})") from None
    return np.asarray(rows, dtype=np.float64)


def read_boxes(path: str | Path, *, separators: str = "auto", max_rows: int | None = None) -> np.ndarray:
    """Read x,y,w,h boxes [N, 4] (NaN rows allowed, e.g. UAV123's absent frames)."""
    return read_numbers(path, 4, separators=separators, max_rows=max_rows)


def read_label_column(path: str | Path, *, expected: int | None = None, low: int = 0, high: int = 1) -> np.ndarray:
    """Read one integer per line (GOT-10k ``*.label``, VOT tag files) into an int64 array.

    ``expected`` checks the number of rows; values must lie in [low, high].
    """
    path = require_file(path, "label file")
    lines = _lines(path)
    values = np.empty(len(lines), dtype=np.int64)
    for number, line in enumerate(lines, start=1):
        token = line.strip()
        try:
            value = int(float(token))
            if value != float(token):
                raise ValueError
        except ValueError:
            raise AnnotationError(path, number, f"expected an integer label, got {token!r}") from None
        if not low <= value <= high:
            raise AnnotationError(path, number, f"label {value} outside [{low}, {high}]")
        values[number - 1] = value
    if expected is not None and len(values) != expected:
        raise AnnotationError(path, None, f"expected {expected} labels (one per frame), got {len(values)}")
    return values


def read_flag_line(path: str | Path, *, expected: int | None = None) -> np.ndarray:
    """Read a single line of comma-separated 0/1 flags (LaSOT ``full_occlusion.txt``) as bool."""
    path = require_file(path, "flag file")
    lines = _lines(path)
    if not lines:
        raise AnnotationError(path, None, "file is empty (expected one line of comma-separated 0/1 flags)")
    if len(lines) != 1:
        raise AnnotationError(path, 2, f"expected one line of comma-separated flags, got {len(lines)} lines")
    tokens = [t.strip() for t in lines[0].strip().split(",")]
    if tokens and tokens[-1] == "":
        tokens.pop()
    flags = np.empty(len(tokens), dtype=bool)
    for i, token in enumerate(tokens):
        if token not in ("0", "1"):
            raise AnnotationError(path, 1, f"flag {i + 1} is {token!r}, expected 0 or 1")
        flags[i] = token == "1"
    if expected is not None and len(flags) != expected:
        raise AnnotationError(path, 1, f"expected {expected} flags (one per frame), got {len(flags)}")
    return flags


def read_sentence(path: str | Path) -> str:
    """Read a one-sentence description (LaSOT ``nlp.txt``, TNL2K ``language.txt``), whitespace-normalised."""
    path = require_file(path, "language file")
    text = " ".join(_lines(path)).strip()
    if not text:
        raise AnnotationError(path, None, "language description is empty")
    return " ".join(text.split())


def read_list(path: str | Path) -> list[str]:
    """Read a list file (one name per line, blank lines ignored, duplicates rejected).

    Entries are names inside the dataset folder: an absolute path or a ``..`` component (an entry
    that leaves the dataset root) is an error naming the file and line.
    """
    path = require_file(path, "list file")
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_lines(path), start=1):
        name = line.strip()
        if not name:
            continue
        parts = re.split(r"[\\/]", name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\0" in name:
            raise AnnotationError(path, number, f"entry {name!r} leaves the dataset folder (expected a sequence name)")
        if name in seen:
            raise AnnotationError(path, number, f"duplicate entry {name!r} (first on line {seen[name]})")
        seen[name] = number
        names.append(name)
    return names


def _jpeg_complete(data: bytes) -> bool:
    """True when a JPEG's byte stream ends with its EOI marker after the last scan (SOS); bytes
    after EOI (camera trailers) are allowed, a stream cut inside the scan data is not."""
    sos = data.rfind(b"\xff\xda")
    return sos >= 0 and data.find(b"\xff\xd9", sos + 2) >= 0


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 **RGB** array, strictly.

    A missing file, an undecodable file, a JPEG cut short (no end-of-image marker after its last
    scan: OpenCV would decode it silently with grey or repeated rows) or a PNG without its IEND
    chunk raises ``OSError`` naming the file.
    """
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file is missing: {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"image path is a directory: {path}") from None
    if not data:
        raise OSError(f"image file is empty (0 bytes): {path}")
    if data[:2] == b"\xff\xd8" and not _jpeg_complete(data):
        raise OSError(f"JPEG file is truncated (no end-of-image marker after its last scan): {path}")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        raise OSError(f"PNG file is truncated (no IEND chunk): {path}")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"image file could not be decoded: {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def list_images(directory: str | Path, *, numeric: bool = False) -> list[str]:
    """Image files in ``directory`` (jpg/jpeg/png/bmp), sorted by name or by their numeric stem."""
    directory = require_dir(directory, "frame directory")
    files = [e.name for e in os.scandir(directory) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]
    if numeric:
        bad = [f for f in files if not Path(f).stem.isdigit()]
        if bad:
            raise AnnotationError(directory, None, f"frame names must be numbers, got {bad[0]!r}")
        files.sort(key=lambda f: int(Path(f).stem))
    else:
        files.sort()
    return [str(directory / f) for f in files]


def check_length(path: str | Path, boxes: np.ndarray, n_frames: int, what: str = "frames") -> None:
    """Raise naming the annotation ``path`` when the box count differs from the frame count."""
    if len(boxes) != n_frames:
        raise AnnotationError(path, None, f"has {len(boxes)} boxes but the sequence has {n_frames} {what}")


def valid_from_boxes(boxes: np.ndarray) -> np.ndarray:
    """Frames whose box is finite with positive width and height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
