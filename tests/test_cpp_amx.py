"""The AMX-BF16 path of the C++ CPU bfloat16 kernels (csrc/cpu/amx_bf16.h): detection, the VTRACK_CPU_AMX switch,
proof that the tiles really ran, and FlashAttention's accuracy rule with AMX on and off.

Tests that need AMX skip only when the CPU (or the OS) lacks it, with the reason the library reports."""
from __future__ import annotations

from typing import Any

import pytest
import torch

import vtrack.kernels as K
from vtrack.kernels import cpp_ops

from cpu_info import cpu_flags
from flash_rule import assert_flash_rule, bf16_case, references
from ext_required import needs_cpp

pytestmark = needs_cpp()

def _needs_amx() -> None:
    """Skip (with the library's reason) when the CPU/OS cannot run AMX-BF16 or the bf16 path is not avx512bf16."""
    if not cpp_ops.amx_available():
        pytest.skip(f"no AMX-BF16 here: {cpp_ops.amx_status()}")
    if "avx512bf16" not in cpp_ops.supported_isas():
        pytest.skip("the avx512bf16 ISA path is not available (AMX is used on it only)")


@pytest.fixture()
def bf16_isa():
    """Select the avx512bf16 path (where supported) for the test, restoring the previous one."""
    before = cpp_ops.isa()
    if "avx512bf16" in cpp_ops.supported_isas():
        cpp_ops.isa("avx512bf16")
    yield cpp_ops.isa()
    cpp_ops.isa(before)


def test_amx_detected_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch, bf16_isa: str) -> None:
    """CPUs with amx_tile + amx_bf16 (Linux grants the tile data) take the AMX path by default; others report why not."""
    monkeypatch.delenv("VTRACK_CPU_AMX", raising=False)
    flags = cpu_flags()
    status = cpp_ops.amx_status()
    if flags and not {"amx_tile", "amx_bf16"} <= flags:
        assert not cpp_ops.amx_available() and "lacks" in status, status
        assert cpp_ops.compute_path(torch.bfloat16) != "bf16-amx"
        return
    if status.startswith("this build has no AMX"):  # an old compiler: never claims AMX
        assert not cpp_ops.amx_available() and cpp_ops.compute_path(torch.bfloat16) != "bf16-amx"
        pytest.skip(status)
    if {"amx_tile", "amx_bf16", "avx512_bf16"} <= flags:
        assert status == "", status  # (Linux >= 5.16 grants the tile data permission)
        assert bf16_isa == "avx512bf16" and cpp_ops.compute_path(torch.bfloat16) == "bf16-amx"
    assert cpp_ops.compute_path(torch.float32) == "native"
    assert cpp_ops.compute_path(torch.float16) == "widened-f32"


def test_amx_switch(monkeypatch: pytest.MonkeyPatch, bf16_isa: str) -> None:
    """VTRACK_CPU_AMX=0 (read on every call) turns the tiles off: bf16-dot, no tile configuration during a call."""
    _needs_amx()
    q = torch.randn(1, 2, 40, 32).to(torch.bfloat16)
    monkeypatch.setenv("VTRACK_CPU_AMX", "0")
    assert cpp_ops.compute_path(torch.bfloat16) == "bf16-dot" and cpp_ops.amx_status() == "VTRACK_CPU_AMX=0"
    assert cpp_ops.amx_available()
    before = cpp_ops.amx_uses()
    K.attention(q, q, q, backend="cpp")
    assert cpp_ops.amx_uses() == before
    monkeypatch.setenv("VTRACK_CPU_AMX", "1")
    assert cpp_ops.compute_path(torch.bfloat16) == "bf16-amx" and cpp_ops.amx_status() == ""
    K.attention(q, q, q, backend="cpp")
    assert cpp_ops.amx_uses() > before
    # float32 never uses the tiles
    before = cpp_ops.amx_uses()
    K.attention(q.float(), q.float(), q.float(), backend="cpp")
    assert cpp_ops.amx_uses() == before


SHAPES = [
    ((1, 2, 37, 53, 32), {}),  # ragged N, M (not multiples of 16)
    ((2, 2, 70, 64, 64), {"mask": True}),  # masked keys (batch 0 all masked: zero rows)
    ((1, 3, 33, 45, 48), {}),  # D = 3 * 16: the P.V column tail tile
    ((1, 2, 20, 29, 40), {}),  # D not a multiple of 16 (Q.K^T on tiles, P.V on the float32 loop)
    ((1, 2, 17, 31, 33), {}),  # odd D, odd M
    ((1, 2, 100, 100, 32), {"topk": 32}),  # dense top-K rows (4K > M) through the tiled P.V
    ((1, 2, 60, 200, 32), {"topk": 16}),  # sparse top-K rows
    ((1, 2, 80, 90, 64), {"fda": True}),
    ((1, 2, 100, 100, 64), {"ce": True}),  # CE template rows (float32 probabilities)
    ((1, 2, 81, 81, 32), {"ce": True, "topk": 24, "fda": True}),
]


def _flash_rule(shape: tuple[int, ...], kw: dict[str, Any], grad: bool) -> int:
    """Run the cpp bf16 kernels and check out (and dq, dk, dv when ``grad``; the CE score) against the float32
    reference: error <= 2x that of a same-precision PyTorch run + 2e-3. Returns the AMX use count of the call."""
    n = shape[2]
    base, go, args = bf16_case(shape, kw, seed=3, ce={"num_template": 36 if n == 100 else 25, "keep": 30})
    l32, l16, lcpp, ref32, ref16 = references(base, args, grad)
    before = cpp_ops.amx_uses()
    got = K.dispatch(K.build_inputs(*lcpp, **args), "cpp")
    checks = [("out", got.out, ref16.out, ref32.out)]
    if grad:
        g_cpp = torch.autograd.grad(got.out, lcpp, go)
        g32 = torch.autograd.grad(ref32.out, l32, go.float())
        g16 = torch.autograd.grad(ref16.out, l16, go)
        checks += list(zip("qkv", g_cpp, g16, g32))
    uses = cpp_ops.amx_uses() - before
    if kw.get("ce"):
        checks.append(("score", got.score, ref16.score, ref32.score))
    assert got.out.dtype == torch.bfloat16
    assert_flash_rule(checks)
    return uses


@pytest.mark.parametrize("amx", ["on", "off"])
@pytest.mark.parametrize("grad", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape,kw", SHAPES)
def test_bf16_flash_rule_amx_on_off(monkeypatch: pytest.MonkeyPatch, bf16_isa: str, amx: str, grad: bool,
                                    shape: tuple[int, ...], kw: dict[str, Any]) -> None:
    """FlashAttention's rule for the bf16 forward (and backward) with AMX on (the tiles must run) and off."""
    if amx == "on":
        _needs_amx()
        monkeypatch.setenv("VTRACK_CPU_AMX", "1")
    else:
        monkeypatch.setenv("VTRACK_CPU_AMX", "0")
    uses = _flash_rule(shape, kw, grad)
    if amx == "on":
        assert uses > 0, "the AMX path did not run"
    else:
        assert uses == 0


def test_amx_per_thread_tile_config(monkeypatch: pytest.MonkeyPatch, bf16_isa: str) -> None:
    """With 2 worker threads each configures its own tiles (the results equal the 1-thread run's bitwise)."""
    _needs_amx()
    monkeypatch.setenv("VTRACK_CPU_AMX", "1")
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 4, 90, 64, generator=g).to(torch.bfloat16) for _ in range(3))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = K.attention(q, k, v, backend="cpp")
        torch.set_num_threads(2)
        before = cpp_ops.amx_uses()
        two = K.attention(q, k, v, backend="cpp")
        uses = cpp_ops.amx_uses() - before
    finally:
        torch.set_num_threads(threads)
    assert uses >= 1
    assert torch.equal(one, two)
