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
import vtrack.kernels as K
q = torch.randn(1, 2, 5, 8)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
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
