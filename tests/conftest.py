"""Test configuration: Triton runs as its interpreter on CPU-only machines; with
VTRACK_REQUIRE_EXT=1 (CI) the JIT fallback of the C++ extension is off (tests/ext_required.py).

TRITON_INTERPRET must be set before any Triton kernel is defined, so it is set here at
import time, before vtrack is imported by any test module.
"""
import os

import pytest

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover - torch missing is a broken install
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# CI (make test, .ci/run) sets VTRACK_REQUIRE_EXT=1: the built vtrack._C must load; no JIT fallback
if os.environ.get("VTRACK_REQUIRE_EXT", "0") == "1":
    os.environ["VTRACK_NO_JIT"] = "1"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "gpu" in item.keywords and not _HAS_CUDA:
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
