"""File helpers shared by every part of vtrack: a crash never leaves a half-written file.

One writer: :class:`AtomicPath` (a temporary file next to the target, renamed onto it when
complete, removed on failure); :func:`atomic_write_text` / :func:`atomic_write_bytes` for
in-memory content, ``with AtomicPath(path) as tmp:`` for writers that need a path (matplotlib,
``torch.save``, an OpenCV video writer); files get the permissions the umask gives a new file.

Also: :func:`refuse_overwrite_input` (a command never overwrites its inputs), :class:`FolderLock`
(one writer per folder: a lock file holding the pid; a dead holder's lock is taken over),
:func:`safe_name` (file names from data strings), :func:`remove_stale_temp_files`,
:func:`load_torch_file` (``torch.load(weights_only=True)`` with errors that name the problem),
:func:`read_json` (a malformed file is an error naming it) and :func:`file_sha256`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Iterable, Iterator


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
        os.fchmod(fd, new_file_mode())  # mkstemp creates 0600 whatever the umask
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


#: Suffix of the temporary files of :class:`AtomicPath` (``.<name>.<random>.tmp``).
TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - non-Linux fallback (not thread-safe)
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def new_file_mode() -> int:
    """Permissions ``open()`` gives a new file under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~_umask()


def remove_stale_temp_files(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Remove the temporary files (``.<name>.<random>.tmp``) that a killed :class:`AtomicPath`
    left in ``folder`` (and its subfolders when ``recursive``); returns the removed paths. Call
    it only while holding the folder (no other writer running there)."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in (folder.rglob(f".*{TEMP_SUFFIX}") if recursive else folder.iterdir()):
            if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX) and p.is_file():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return a.resolve() == b.resolve()


def refuse_overwrite_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *,
                           flag: str = "--out") -> None:
    """Raise ValueError when ``out`` is one of ``inputs`` (same file or folder, through links and
    relative paths), so that a command never replaces what it reads. ``None`` inputs are ignored."""
    o = Path(out)
    for item in inputs:
        if item is None:
            continue
        if _same_path(o, Path(item)):
            raise ValueError(f"{flag}: {out} is one of this command's inputs ({item}); "
                             "choose another output path")


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: Any, *, what: str = "name") -> str:
    """A file name made from a string that came from data: path separators, ``..`` and other
    characters outside ``[A-Za-z0-9._+-]`` become ``_`` and leading dots are dropped, so the
    name stays inside the folder it is joined to. Raises ValueError when nothing is left."""
    name = _UNSAFE.sub("_", str(text)).lstrip(".")
    name = name.replace("..", "_")
    if not name or name.strip("_") == "":
        raise ValueError(f"{what}: cannot build a file name from {text!r}")
    return name[:200]


class FolderLockedError(OSError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """Exclusive use of a folder by one process: ``with FolderLock(folder, "eval"): ...``.

    The lock is ``folder/.vtrack-<what>.lock`` holding ``pid host``, taken with ``flock`` (the
    kernel releases it when the holder dies, so the file a killed process leaves behind is taken
    over by the next one) and removed on exit. A second process gets :class:`FolderLockedError`
    naming the holder's pid.
    """

    _held: dict[str, int] = {}  # lock path -> depth, for nested use within one process

    def __init__(self, folder: str | os.PathLike, what: str = "eval") -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / f".vtrack-{what}.lock"
        self._fd: int | None = None
        self._nested = False

    def acquire(self) -> "FolderLock":
        """Take the lock or raise :class:`FolderLockedError` (nested use in one process is fine)."""
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        if key in FolderLock._held:
            FolderLock._held[key] += 1
            self._nested = True
            return self
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = ""
                with contextlib.suppress(OSError):
                    holder = self.path.read_text(encoding="utf-8").strip()
                raise FolderLockedError(
                    f"{self.folder} is in use by another vtrack {self.what} (pid {holder.split()[0] if holder else '?'}"
                    f"{' on ' + holder.split()[1] if len(holder.split()) > 1 else ''}); wait for it to finish "
                    "or write elsewhere") from None
            try:  # the file may have been removed by the previous holder between open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            self._fd = fd
            FolderLock._held[key] = 1
            return self
        raise FolderLockedError(f"{self.folder}: could not take {self.path} (it keeps being replaced)")

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        key = str(self.path.resolve())
        if self._nested:
            FolderLock._held[key] -= 1
            self._nested = False
            return
        if self._fd is None:
            return
        FolderLock._held.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def read_json(path: str | os.PathLike, *, what: str) -> Any:
    """The JSON document in ``path`` (UTF-8); malformed JSON is a ValueError naming ``what`` and the file."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: {p} is not valid JSON: {err}") from None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(state: dict[str, Any], keys: Iterable[str] | None = None) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and bytes of the tensors ``state[keys]`` (default: all of
    ``state``, e.g. a ``state_dict``), in sorted name order."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state if keys is None else keys):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def load_torch_file(path: str | os.PathLike, *, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what is wrong with the file:
    missing, a directory, empty, not a PyTorch file, truncated, or holding Python objects that a
    weights-only load refuses (vtrack never unpickles code, so it never suggests doing so).

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything else, naming ``what`` and the file.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what}: file not found: {p}")
    if p.is_dir():
        raise ValueError(f"{what}: {p} is a directory, expected a checkpoint file")
    size = p.stat().st_size
    if size == 0:
        raise ValueError(f"{what}: {p} is empty (0 bytes): an interrupted write or copy?")
    with open(p, "rb") as f:
        head = f.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head[:2] in _PICKLE_PROTOCOLS):
        raise ValueError(f"{what}: {p} is not a PyTorch file (neither a torch.save zip archive nor a pickle; "
                         f"it starts with bytes {head.hex()})")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        detail = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), "")
        if "Weights only load failed" in text:
            raise ValueError(f"{what}: {p} holds Python objects other than tensors and plain containers"
                             f"{' (' + detail + ')' if detail else ''}; vtrack loads weights only and never "
                             "runs code from a checkpoint: re-export it as a state dict") from None
        raise ValueError(f"{what}: {p} is not a readable checkpoint: corrupt "
                         f"({text.splitlines()[0] if text else 'unpickling failed'})") from None
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else ""
        reason = "it ends early (truncated)" if isinstance(err, EOFError) else \
            f"corrupt or truncated ({type(err).__name__}: {first})"
        raise ValueError(f"{what}: {p} is not a readable checkpoint: {reason}; {size} bytes") from None
