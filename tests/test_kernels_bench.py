"""Benchmark utilities and a tiny kernel benchmark run (CPU)."""
import json

import pytest
import torch

from vtrack.bench import common
from vtrack.bench import kernels as kb
from vtrack.kernels import cpp_ops


def test_time_fn_and_validation():
    calls = []
    t = common.time_fn(lambda: calls.append(1), warmup=2, repeat=5)
    assert len(calls) == 7 and t.repeat == 5 and 0 <= t.min_ms <= t.median_ms <= t.max_ms
    with pytest.raises(ValueError, match="repeat"):
        common.time_fn(lambda: None, repeat=0)


def test_peak_memory_counts_live_and_freed_tensors():
    def fn():
        a = torch.empty(1024, 1024)  # 4 MiB, freed before b is made
        del a
        b = torch.empty(512, 1024)  # 2 MiB
        return b

    assert common.peak_memory_bytes(fn) == 4 * 2**20

    x = torch.randn(64, 64, requires_grad=True)

    def with_saved():
        y = (x @ x).exp()  # saves 2 [64,64] tensors for backward
        y.sum().backward()

    assert common.peak_memory_bytes(with_saved) >= 2 * 64 * 64 * 4


def test_markdown_table():
    md = common.markdown_table([{"a": 1.23456, "b": None}], ["a", "b"], ["A", "B"])
    assert md.splitlines()[0] == "| A | B |" and "1.23" in md and "| - |" in md


def test_tiny_kernel_benchmark_writes_results(tmp_path):
    rows = kb.run_benchmark("cpu", shapes=["sparsett"], ops=["topk"], batch=1, flex=False, modes=("fwd",),
                            warmup=0, repeat=1)
    by = {r.backend: r for r in rows}
    assert by["reference"].ms > 0 and by["sdpa"].ms > 0 and by["reference"].vs_reference == pytest.approx(1.0)
    assert by["reference"].peak_mib > by["sdpa"].peak_mib  # the reference materialises [N, M]
    assert by["triton"].ms is None and "interpreter" in by["triton"].note
    md = kb.write_results(rows, tmp_path, torch.device("cpu"))
    data = json.loads((tmp_path / "kernels.json").read_text())
    assert data["environment"]["torch"] == torch.__version__ and len(data["rows"]) == len(rows)
    assert data["environment"]["device_name"] and data["environment"]["aten_cpu_capability"]
    isa = data["environment"]["cpp_isa"]
    assert isa in ("avx512bf16", "avx512", "avx2", "baseline")  # the C++ kernels' vector path is recorded
    bf16 = ("bf16-amx" if cpp_ops.amx_status() == "" else "bf16-dot") if isa == "avx512bf16" else "widened-f32"
    assert data["environment"]["cpp_bf16_path"] == bf16
    assert data["environment"]["cpp_fp16_path"] == "widened-f32"
    assert "| sparsett | topk | reference |" in md.read_text() and f"ISA path `{isa}`" in md.read_text()
    assert (tmp_path / "kernels_speedup.png").exists()
    with pytest.raises(ValueError, match="shapes"):
        kb.run_benchmark("cpu", shapes=["nope"])
