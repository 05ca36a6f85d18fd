"""Whether the compiled extension must be present (CI sets VTRACK_REQUIRE_EXT=1).

With VTRACK_REQUIRE_EXT=1 the C++ tests never skip: a missing or stale vtrack._C fails them (and
conftest turns the JIT fallback off). Without it (a developer's machine) they skip with the reason.
"""
from __future__ import annotations

import os

import pytest

REQUIRE_EXT = os.environ.get("VTRACK_REQUIRE_EXT", "0") == "1"


def needs_cpp() -> pytest.MarkDecorator:
    """Marker for tests of the cpp backend: skip only when the extension is optional and absent."""
    from vtrack.kernels import _ext, cpp_ops

    loaded = cpp_ops.register_meta()
    return pytest.mark.skipif(not loaded and not REQUIRE_EXT, reason=f"vtrack._C unavailable: {_ext.unavailable_reason()} "
                              "(VTRACK_REQUIRE_EXT=1 makes this a failure)")
