"""The extension loader: without vtrack._C and without a JIT build, one warning and a clean fallback."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from vtrack.kernels import _ext

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, warnings
sys.modules['vtrack._C'] = None  # as if the compiled module were missing
import torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    import vtrack.kernels as K  # the failed import of vtrack._C warns here, once
    q = torch.randn(1, 2, 5, 8)
    chosen = K.select_backend(K.build_inputs(q, q, q, topk=2)).name
    K.topk_attention(q, q, q, 2)
    reasons = K.not_supported_reasons('cpp', K.build_inputs(q, q, q, topk=2))
msgs = [str(w.message) for w in caught if 'C++ kernels unavailable' in str(w.message)]
print(chosen, len(msgs), reasons[0])
"""


def test_missing_extension_falls_back_with_one_warning():
    env = dict(os.environ, VTRACK_NO_JIT="1", PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert res.returncode == 0, res.stderr
    chosen, n_warn, reason = res.stdout.strip().split(" ", 2)
    assert chosen == "reference" and n_warn == "1"
    assert "VTRACK_NO_JIT=1" in reason and "import vtrack._C failed" in reason


def test_build_flags_are_probed():
    flags = _ext.cpu_compile_flags()
    assert "-O3" in flags and any(f.startswith("-std=c++") for f in flags)
    assert not any(f.startswith(("-march", "-mtune", "-mavx")) for f in flags)  # portable: ISA chosen at run time
    assert _ext.source_files()[0].endswith("ops.cpp")
    assert all(p.endswith(".cu") for p in _ext.source_files(with_cuda=True)[len(_ext.source_files()):])
    if torch.version.cuda is None:  # CPU torch: the CUDA kernels are only compile-checked, never built
        assert not _ext.cuda_build_possible()


def _schemas() -> set[str]:
    """Operator names declared in csrc (m.def("name(...")."""
    import re

    names = set()
    for src in (ROOT / "csrc").rglob("*.c*"):
        names |= set(re.findall(r'\.def\(\s*"(\w+)\(', src.read_text(encoding="utf-8", errors="replace")))
    return names


def test_extension_is_present_and_current():
    """A stale vtrack._C (built from older sources: an operator of csrc missing, or older than a
    source file) fails; a missing one fails under VTRACK_REQUIRE_EXT=1 (CI) and skips otherwise."""
    import pytest

    from ext_required import REQUIRE_EXT

    if not _ext.load():
        if REQUIRE_EXT:
            pytest.fail(f"VTRACK_REQUIRE_EXT=1 but vtrack._C does not load: {_ext.unavailable_reason()}")
        pytest.skip(f"vtrack._C unavailable: {_ext.unavailable_reason()}")
    if REQUIRE_EXT:
        assert _ext.loaded_from() in ("vtrack._C", "already registered"), _ext.loaded_from()
    declared = _schemas()
    assert {"topk_attention", "fda_attention", "ce_attention"} <= declared
    missing = sorted(n for n in declared if not hasattr(torch.ops.vtrack, n))
    assert not missing, f"vtrack._C is stale: operators {missing} of csrc/ are not registered (rebuild it)"
    if _ext.loaded_from() == "vtrack._C":
        import vtrack._C as built

        so = Path(built.__file__)
        newest = max((p for p in (ROOT / "csrc").rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime)
        if so.resolve().parent == (ROOT / "vtrack").resolve():  # the in-tree build of this checkout
            assert so.stat().st_mtime >= newest.stat().st_mtime, f"vtrack._C is older than {newest}: rebuild it"
