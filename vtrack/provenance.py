"""Where a result came from: the source commit and the CPU model, recorded by training
checkpoints, the model zoo's manifest and the benchmarks' JSON (one copy for all of them)."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["git_commit", "cpu_model", "session_provenance"]


def git_commit(path: str | os.PathLike | None = None) -> str:
    """The HEAD commit of the checkout holding ``path`` (default: vtrack's own source), with
    ``+dirty`` when tracked files changed, or ``"unknown"`` outside a git checkout."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if head and dirty else "")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def session_provenance(step: int) -> dict[str, object]:
    """One training session's record (source commit, CPU, torch version, first optimizer step)."""
    import torch

    return {"commit": git_commit(), "cpu": cpu_model(), "torch": str(torch.__version__), "from_step": int(step)}
