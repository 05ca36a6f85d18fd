"""The tracker configs shipped inside the package (``vtrack/configs/<family>/<name>.yaml``).

The checkout keeps a top-level ``configs`` symlink to this folder, so documented paths such as
``configs/ostrack/ostrack_tiny.yaml`` work from the source tree; from an installed wheel the same
relative path is resolved here by :func:`resolve_config` (used by :func:`vtrack.config.load_yaml`).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONFIG_DIR", "resolve_config"]

#: Folder of the packaged configs.
CONFIG_DIR = Path(__file__).resolve().parent


def resolve_config(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists; else, for a relative ``configs/...`` path (or a path relative
    to the config folder, e.g. ``ostrack/ostrack_tiny.yaml``), the packaged config of that name when
    it exists; else ``path`` unchanged (the caller reports the missing file)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a config path (str or PathLike), got {type(path).__name__}")
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    parts = p.parts
    rel = Path(*parts[1:]) if parts and parts[0] == "configs" and len(parts) > 1 else p
    packaged = CONFIG_DIR / rel
    return packaged if packaged.is_file() else p
