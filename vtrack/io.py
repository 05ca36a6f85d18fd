"""File helpers shared by every part of vtrack: a crash never leaves a half-written file.

One writer: :class:`AtomicPath` (a temporary file next to the target, renamed onto it when
complete, removed on failure); :func:`atomic_write_text` / :func:`atomic_write_bytes` for
in-memory content, ``with AtomicPath(path) as tmp:`` for writers that need a path (matplotlib,
``torch.save``, an OpenCV video writer).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType


class AtomicPath:
    """A temporary file in ``path``'s folder: :meth:`commit` renames it onto ``path``,
    :meth:`discard` removes it. As a context manager: commit on success, discard on an error.

    Args:
        path: the final file (its folder is created).
        keep_suffix: end the temporary name with ``path``'s suffix (writers that pick the format
            from the name, e.g. ``savefig``); else ``.tmp``.
    """

    def __init__(self, path: str | os.PathLike, *, keep_suffix: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        suffix = self.path.suffix if keep_suffix else ".tmp"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=suffix)
        os.close(fd)
        self.tmp: Path | None = Path(tmp)

    def commit(self) -> Path:
        """Move the temporary file onto ``path``; returns ``path``."""
        if self.tmp is None:
            raise RuntimeError(f"AtomicPath({self.path}): already committed or discarded")
        os.replace(self.tmp, self.path)
        self.tmp = None
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (nothing happens to ``path``)."""
        if self.tmp is not None and self.tmp.exists():
            self.tmp.unlink()
        self.tmp = None

    def __enter__(self) -> Path:
        assert self.tmp is not None
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a
    rename; creates the parent folder; the temporary file is removed if writing fails."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename;
    creates the parent folder; the temporary file is removed if writing fails."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    target = AtomicPath(path)
    with target as tmp:
        tmp.write_bytes(data)
    return target.path
