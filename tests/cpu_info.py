"""What the test machine's CPU reports, for tests that check which vector path the kernels take."""
from __future__ import annotations


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (Linux; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
