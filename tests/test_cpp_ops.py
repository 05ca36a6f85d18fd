"""The "cpp" backend (vtrack._C CPU kernels) against the reference: forward, every gradient, edge cases."""
import pytest
import torch

import vtrack.kernels as K
from vtrack.kernels import cpp_ops, reference

from cpu_info import cpu_flags
from flash_rule import FDA, assert_flash_rule, bf16_case, references
from ext_required import needs_cpp

pytestmark = needs_cpp()

def _qkv(b, h, n, m, d, dtype=torch.float32, grad=True):
    return [torch.randn(b, h, t, d, dtype=dtype, requires_grad=grad) for t in (n, m, m)]


def _run(backend, q, k, v, **kw):
    res = K.attention(q, k, v, backend=backend, **kw)
    return res if isinstance(res, tuple) else (res, None, None)


def _compare(q, k, v, atol, **kw):
    """cpp vs reference: outputs, CE score/keep_index, and gradients of q, k, v (and FDA tensors)."""
    leaves = [q, k, v] + [t for t in (kw.get("fda") or {}).values() if isinstance(t, torch.Tensor)]
    ref = _run("reference", q, k, v, **kw)
    out = _run("cpp", q, k, v, **kw)
    torch.testing.assert_close(out[0], ref[0], atol=atol, rtol=atol)
    if ref[1] is not None:
        torch.testing.assert_close(out[2], ref[2], atol=atol, rtol=atol)
        assert torch.equal(out[1], ref[1])
    go = torch.randn_like(ref[0])
    g_ref = torch.autograd.grad(ref[0], leaves, go)
    g_cpp = torch.autograd.grad(out[0], leaves, go)
    for name, a, b in zip(["q", "k", "v", "alpha", "beta", "delta"], g_cpp, g_ref):
        torch.testing.assert_close(a, b, atol=atol * 10, rtol=atol * 10, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("n,m,d", [(37, 45, 16), (1, 5, 8), (70, 33, 64)])
def test_dense_matches_reference(n, m, d):
    _compare(*_qkv(2, 3, n, m, d), atol=2e-5, fda={"alpha": 0.0, "beta": 0.0, "delta": 0.3})


@pytest.mark.parametrize("topk", [1, 5, 12, 40, 45, 100])
@pytest.mark.parametrize("masked", [False, True])
def test_topk_matches_reference(topk, masked):
    q, k, v = _qkv(2, 3, 37, 45, 16)
    mask = torch.rand(2, 45) < 0.3 if masked else None
    _compare(q, k, v, atol=2e-5, topk=topk, key_padding_mask=mask)


def test_topk_ties_go_to_lower_index():
    q = torch.ones(1, 1, 3, 4)
    k = torch.ones(1, 1, 10, 4)
    v = torch.arange(40.0).reshape(1, 1, 10, 4)
    out, lse, index = torch.ops.vtrack.topk_attention(q, k, v, 3, 0.5)
    assert index[0, 0].tolist() == [[0, 1, 2]] * 3
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, :3].mean(0))
    # ties mixed with larger values: keep the larger ones, then the lowest-index ties
    k2 = torch.zeros(1, 1, 8, 4)
    k2[0, 0, 5] = 1.0
    _, _, idx2 = torch.ops.vtrack.topk_attention(torch.ones(1, 1, 1, 4), k2, torch.randn(1, 1, 8, 4), 3, 1.0)
    assert idx2[0, 0, 0].tolist() == [0, 1, 5]


@pytest.mark.parametrize("levels", [0, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_topk_selection_on_long_rows(levels, masked):
    """M = 361, K = 32 (the sparse path, ~100 candidates per row): the kept set is the K largest logits with ties
    toward the lower index, checked against a stable sort; levels > 0 quantises the keys so that most rows tie."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 3, 40, 8, generator=g)
    k = torch.randn(2, 3, 361, 8, generator=g)
    if levels:
        q = torch.ones_like(q)
        k = torch.randint(0, levels, (2, 3, 361, 1), generator=g).float().expand(-1, -1, -1, 8).contiguous()
    v = torch.randn(2, 3, 361, 8, generator=g)
    mask = torch.rand(2, 361, generator=g) < 0.3 if masked else None
    out, _, index = torch.ops.vtrack.topk_attention(q, k, v, 32, 0.35, mask)
    logits = (q @ k.transpose(-1, -2)) * 0.35
    if masked:
        logits = logits.masked_fill(mask[:, None, None, :], float("-inf"))
    order = torch.sort(-logits, dim=-1, stable=True).indices[..., :32]
    assert torch.equal(index.long(), torch.sort(order, dim=-1).values)
    ref = K.attention(q, k, v, topk=32, scale=0.35, key_padding_mask=mask, backend="reference")
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)


def test_topk_keeps_exactly_min_topk_valid():
    q, k, v = _qkv(2, 2, 9, 20, 8, grad=False)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, 3:] = True  # 3 valid keys in batch 0
    _, _, index = torch.ops.vtrack.topk_attention(q, k, v, 6, 0.3, mask)
    assert index.shape == (2, 2, 9, 6)
    assert ((index[0] >= 0).sum(-1) == 3).all() and ((index[1] >= 0).sum(-1) == 6).all()
    assert (index[0][index[0] >= 0] < 3).all()
    # topk >= M: index width M, dense attention
    out, _, idx = torch.ops.vtrack.topk_attention(q, k, v, 50, 0.3)
    assert idx.shape[-1] == 20
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_fda_matches_reference_with_tensor_coefficients(masked):
    q, k, v = _qkv(2, 3, 29, 31, 32)
    fda = {"alpha": torch.tensor([0.5, 1.0, 0.2], requires_grad=True),
           "beta": torch.tensor(0.3, requires_grad=True),
           "delta": torch.tensor([0.05, 0.1, 0.2], requires_grad=True)}
    mask = torch.rand(2, 31) < 0.25 if masked else None
    _compare(q, k, v, atol=2e-5, fda=fda, key_padding_mask=mask)


def test_topk_with_fda():
    q, k, v = _qkv(1, 2, 17, 40, 16)
    fda = {"alpha": torch.tensor([0.5, 1.0], requires_grad=True), "beta": 0.1, "delta": 0.2}
    _compare(q, k, v, atol=2e-5, topk=7, fda=fda)


@pytest.mark.parametrize("opts", [{}, {"fda": FDA}, {"topk": 6}, {"topk": 30, "fda": FDA}])
def test_ce_matches_reference(opts):
    q, k, v = _qkv(2, 3, 9 + 30, 9 + 30, 16)
    _compare(q, k, v, atol=2e-5, ce={"num_template": 9, "keep": 0.7, "template_index": [4, 0]}, **opts)


def test_ce_default_centre_row_and_keep_order():
    q, k, v = _qkv(2, 2, 16 + 20, 16 + 20, 8, grad=False)
    out, keep_index, score = K.ce_attention(q, k, v, num_template=16, keep=5, backend="cpp")
    p = torch.softmax((q @ k.transpose(-1, -2)) * 8 ** -0.5, -1)
    centre = 2 + 4 * 2
    expected = p[:, :, centre, 16:].mean(1)
    torch.testing.assert_close(score, expected, atol=1e-6, rtol=1e-5)
    assert keep_index.dtype == torch.int64 and keep_index.shape == (2, 5)
    assert torch.equal(keep_index, torch.sort(expected, dim=-1, descending=True, stable=True).indices[:, :5])


def test_float64_gradcheck_all_ops():
    q, k, v = _qkv(1, 2, 6, 7, 4, dtype=torch.float64)
    qc, kc, vc = _qkv(1, 2, 7, 7, 4, dtype=torch.float64)
    a = torch.tensor([0.4, 0.9], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    dl = torch.tensor([0.2, 0.1], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[False, True, False, False, False, True, False]])

    def fda(q, k, v, a, b, dl):
        return K.fda_attention(q, k, v, alpha=a, beta=b, delta=dl, key_padding_mask=mask, backend="cpp")

    def topk(q, k, v, a, b, dl):
        return K.attention(q, k, v, topk=3, fda={"alpha": a, "beta": b, "delta": dl}, backend="cpp")

    def ce(q, k, v, a, b, dl):
        return K.ce_attention(q, k, v, num_template=4, keep=2, template_index=[1], backend="cpp",
                              fda={"alpha": a, "beta": b, "delta": dl})[0]

    assert torch.autograd.gradcheck(fda, (q, k, v, a, b, dl))
    assert torch.autograd.gradcheck(topk, (q, k, v, a, b, dl))
    assert torch.autograd.gradcheck(ce, (qc, kc, vc, a, b, dl))


def test_portable_path_without_blas(monkeypatch):
    monkeypatch.setenv("VTRACK_CPU_BLAS", "0")
    q, k, v = _qkv(2, 2, 40, 33, 24)
    _compare(q, k, v, atol=2e-5, fda=FDA)
    _compare(q, k, v, atol=2e-5, topk=20)


def test_auto_prefers_cpp_on_cpu():
    inputs = K.build_inputs(*_qkv(1, 1, 4, 4, 8, grad=False), topk=2)
    assert K.select_backend(inputs).name == "cpp"
    assert "cpp" in K.available_backends(inputs)
    half = K.build_inputs(*_qkv(1, 1, 4, 4, 8, dtype=torch.float16, grad=False), topk=2)
    assert K.select_backend(half).name == "cpp"  # bf16/fp16 run fused too (never a silent reference run)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        K.topk_attention(*_qkv(1, 1, 4, 4, 8, grad=False), 2, backend="cuda")


def test_reference_module_is_ground_truth_here():
    # the comparisons above rely on the reference being the plain formula
    q, k, v = _qkv(1, 1, 5, 6, 4, grad=False)
    out = reference.attention(K.build_inputs(q, k, v)).out
    torch.testing.assert_close(out, torch.softmax(q @ k.transpose(-1, -2) / 2, -1) @ v)


def test_every_isa_path_matches_reference():
    """One build, the engine per ISA chosen at run time: every path this CPU has gives the reference's results."""
    supported = cpp_ops.supported_isas()
    assert supported[-1] == "baseline" and cpp_ops.isa() == supported[0]
    before = cpp_ops.isa()
    try:
        for name in supported:
            assert cpp_ops.isa(name) == name
            q, k, v = _qkv(2, 3, 37, 45, 16)
            _compare(q, k, v, atol=2e-5, topk=12, key_padding_mask=torch.rand(2, 45) < 0.3)
            _compare(*_qkv(1, 2, 33, 33, 8), atol=2e-5, fda=FDA, ce={"num_template": 9, "keep": 10})
            _compare(*_qkv(1, 2, 20, 29, 32, dtype=torch.float64), atol=1e-10, fda=FDA)
    finally:
        cpp_ops.isa(before)
    with pytest.raises(ValueError, match="request"):
        cpp_ops.isa("sse9")
    unsupported = [n for n in cpp_ops.CPU_ISAS if n not in supported]
    for name in unsupported:
        with pytest.raises(ValueError, match="not supported"):
            cpp_ops.isa(name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op", ["dense", "topk", "fda", "ce"])
def test_low_precision_flash_rule(dtype, op):
    """bf16/fp16 forward and gradients: error vs the float32 reference <= 2x that of a same-precision
    PyTorch (reference backend) run, plus a small floor (FlashAttention's rule)."""
    kw = {"dense": {}, "topk": {"topk": 12}, "fda": {"fda": dict(FDA)},
          "ce": {"ce": {"num_template": 16, "keep": 20}}}[op]
    base = [t.to(dtype).float() for t in _qkv(2, 3, 48, 48, 32, grad=False)]  # values exact in both dtypes
    leaves32 = [t.clone().requires_grad_(True) for t in base]
    leaves_lp = [t.to(dtype).requires_grad_(True) for t in base]
    leaves_cpp = [t.to(dtype).requires_grad_(True) for t in base]
    ref32 = _run("reference", *leaves32, **kw)
    ref_lp = _run("reference", *leaves_lp, **kw)
    got = _run("cpp", *leaves_cpp, **kw)
    assert got[0].dtype == dtype
    if op == "ce":
        assert got[2].dtype == torch.float32
        assert (got[2] - ref32[2]).abs().max() <= 2 * (ref_lp[2].float() - ref32[2]).abs().max() + 1e-3
    go = torch.randn(got[0].shape).to(dtype)
    g32 = torch.autograd.grad(ref32[0], leaves32, go.float())
    g_lp = torch.autograd.grad(ref_lp[0], leaves_lp, go)
    g_cpp = torch.autograd.grad(got[0], leaves_cpp, go)
    floor = 2e-3
    pairs = [("out", got[0], ref_lp[0], ref32[0])] + list(zip("qkv", g_cpp, g_lp, g32))
    for name, a, same, hi in pairs:
        assert a.dtype == dtype, name
        err = (a.float() - hi).abs().max().item()
        bound = 2 * (same.float() - hi).abs().max().item() + floor
        assert err <= bound, (name, err, bound)


def test_bf16_dot_path_is_taken_where_the_cpu_has_avx512_bf16():
    """A CPU with AVX512-BF16 (and the AVX-512 subsets) must run the bf16 dot-product path by default (never a silent
    widening); others must not offer it. float16 is always widened (rounding it to bf16 breaks the accuracy rule)."""
    flags = cpu_flags()
    has = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"} <= flags
    supported = cpp_ops.supported_isas()
    if has:
        assert "avx512bf16" in supported and cpp_ops.isa() == "avx512bf16", supported
        assert cpp_ops.compute_path(torch.bfloat16) == ("bf16-amx" if cpp_ops.amx_status() == "" else "bf16-dot")
    elif flags:
        assert "avx512bf16" not in supported
    assert cpp_ops.compute_path(torch.float16) == "widened-f32"
    assert cpp_ops.compute_path(torch.float32) == "native"
    if "avx512" in supported:
        before = cpp_ops.isa()
        try:
            cpp_ops.isa("avx512")
            assert cpp_ops.compute_path(torch.bfloat16) == "widened-f32"
        finally:
            cpp_ops.isa(before)
    with pytest.raises(ValueError, match="dtype"):
        cpp_ops.compute_path(torch.int32)


def _widest(*names: str) -> str:
    """The first of ``names`` this CPU supports, else the widest supported path."""
    supported = cpp_ops.supported_isas()
    return next((n for n in names if n in supported), supported[0])


@pytest.mark.parametrize("isa_path", ["avx512bf16", "widened"])
@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 37, 45, 16), {"topk": 12, "mask": True}),  # sparse top-K rows, masked keys, odd M
    ((1, 2, 96, 361, 32), {"topk": 32}),  # the tracker top-K shape (fewer rows)
    ((1, 2, 50, 61, 64), {"topk": 20, "fda": True}),  # dense top-K rows (4K > M) with FDA
    ((1, 2, 33, 33, 8), {"fda": True, "ce": True}),  # CE rows, D below the vector width
    ((2, 2, 20, 29, 7), {"mask": True}),  # odd head dim, odd key count
    ((1, 3, 70, 64, 48), {}),  # D = 3 vectors, M even, more rows than a backward block
    ((2, 2, 45, 40, 32), {"fda": True, "mask": True}),  # odd row count (the backward pairs query rows)
])
def test_bf16_flash_rule_on_every_path(isa_path, shape, kw):
    """bf16 forward and gradients on the bf16 dot-product path and on the widened path: out, dq, dk, dv (and the CE
    score) within 2x the error of a same-precision PyTorch run against the float32 reference, plus a small floor;
    lse close to the reference's. (Without AVX512-BF16 both runs take the widest path; test_bf16_dot_path_is_taken_...
    checks that this is right.)"""
    path = _widest("avx512bf16") if isa_path == "avx512bf16" else _widest("avx512", "avx2", "baseline")
    base, go, args = bf16_case(shape, kw, seed=1, ce={"num_template": 9, "keep": 10})
    l32, l16, lcpp, ref32, ref16 = references(base, args, grad=True)
    before = cpp_ops.isa()
    try:
        cpp_ops.isa(path)
        got = K.dispatch(K.build_inputs(*lcpp, **args), "cpp")
        g_cpp = torch.autograd.grad(got.out, lcpp, go)
    finally:
        cpp_ops.isa(before)
    g32 = torch.autograd.grad(ref32.out, l32, go.float())
    g16 = torch.autograd.grad(ref16.out, l16, go)
    assert got.out.dtype == torch.bfloat16 and got.lse.dtype == torch.float32
    checks = [("out", got.out, ref16.out, ref32.out)] + list(zip("qkv", g_cpp, g16, g32))
    assert all(c[1].dtype == torch.bfloat16 for c in checks)
    assert_flash_rule(checks, tag=path)
    fin = torch.isfinite(ref32.lse)
    assert torch.equal(fin, torch.isfinite(got.lse)) and torch.equal(ref32.lse[~fin], got.lse[~fin])
    torch.testing.assert_close(got.lse[fin], ref32.lse[fin].detach(), atol=1e-3, rtol=1e-3)
    if "ce" in args:
        serr = (got.score - ref32.score).abs().max().item()
        assert serr <= 2 * (ref16.score.float() - ref32.score).abs().max().item() + 1e-3


def test_bf16_forward_nan_row_propagates_on_every_path():
    """A NaN in a row's logits gives that row NaN (out, lse) on every bf16 path; the other rows stay finite."""
    g = torch.Generator().manual_seed(2)
    base = [torch.randn(1, 2, 40, 32, generator=g).to(torch.bfloat16) for _ in range(3)]
    base[0][0, 1, 5, 3] = float("nan")
    before = cpp_ops.isa()
    try:
        for path in cpp_ops.supported_isas():
            cpp_ops.isa(path)
            for args in ({}, {"topk": 8}, {"fda": dict(FDA)}):
                r = K.dispatch(K.build_inputs(*base, **args), "cpp")
                assert torch.isnan(r.out[0, 1, 5]).all() and torch.isnan(r.lse[0, 1, 5]), (path, args)
                assert int(torch.isnan(r.out).any(-1).sum()) == 1, (path, args)
    finally:
        cpp_ops.isa(before)


@pytest.mark.parametrize("n,m,d", [(20, 37, 48), (9, 361, 32), (5, 32, 16)])
@pytest.mark.parametrize("variant", ["dense", "fda", "masked", "masked_fda"])
def test_avx512_row_passes_and_kt_transpose(n, m, d, variant):
    """Shapes that exercise the float32 forward's vector row passes with a masked remainder (M % 16 != 0) and
    pack_kt's 16 x 16 register transposes next to their element-wise rest (M and D not multiples of 16)."""
    torch.manual_seed(m + d)
    q, k, v = _qkv(2, 3, n, m, d)
    kw = {}
    if "fda" in variant:
        kw["fda"] = FDA
    if "masked" in variant:
        kw["key_padding_mask"] = torch.rand(2, m) < 0.25
    _compare(q, k, v, atol=2e-5, **kw)
