"""The "cuda" backend (vtrack._C CUDA kernels) against the reference; runs only on a GPU machine.

Build there first: ``python setup.py build_ext --inplace`` (torch with CUDA and nvcc present).
"""
import pytest
import torch

import vtrack.kernels as K
from vtrack.kernels import _ext, cpp_ops

from ext_required import REQUIRE_EXT

pytestmark = pytest.mark.gpu

FDA = {"alpha": 0.7, "beta": 0.2, "delta": 0.15}


def _need_kernels():
    if not cpp_ops.register_meta():
        if REQUIRE_EXT:
            pytest.fail(f"vtrack._C unavailable although VTRACK_REQUIRE_EXT=1: {_ext.unavailable_reason()}")
        pytest.skip(f"vtrack._C unavailable: {_ext.unavailable_reason()}")
    if not _ext.cuda_kernels_built():
        pytest.fail("vtrack._C has no CUDA kernels although a GPU is present: rebuild with nvcc and CUDA torch")


def _qkv(b, h, n, m, d, dtype):
    return [torch.randn(b, h, t, d, device="cuda", dtype=dtype, requires_grad=True) for t in (n, m, m)]


def _check(dtype, atol, **kw):
    """cuda vs reference: low precision uses FlashAttention's rule (error <= 2x a same-precision PyTorch run
    against the float32 reference, plus a small floor)."""
    q, k, v = kw.pop("qkv")
    leaves = [q, k, v]
    ref32 = K.attention(*(t.float() for t in (q, k, v)), backend="reference", **kw)
    ref_lp = K.attention(q, k, v, backend="reference", **kw)
    got = K.attention(q, k, v, backend="cuda", **kw)
    if isinstance(got, tuple):
        assert torch.equal(got[1], ref_lp[1]) or dtype != torch.float32
        torch.testing.assert_close(got[2].float(), ref32[2].float(), atol=atol, rtol=0)
        ref32, ref_lp, got = ref32[0], ref_lp[0], got[0]
    err_lp = (ref_lp.float() - ref32).abs().max().item()
    assert (got.float() - ref32).abs().max().item() <= 2 * err_lp + atol
    go = torch.randn_like(got)
    g32 = torch.autograd.grad(ref32, leaves, go.float(), retain_graph=True)
    g_lp = torch.autograd.grad(ref_lp, leaves, go, retain_graph=True)
    g = torch.autograd.grad(got, leaves, go)
    for name, a, b, c in zip("qkv", g, g32, g_lp):
        bound = 2 * (c.float() - b.float()).abs().max().item() + atol * 10
        assert (a.float() - b.float()).abs().max().item() <= bound, name


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("d", [16, 32, 64, 128])
def test_dense_and_fda(dtype, atol, d):
    _need_kernels()
    _check(dtype, atol, qkv=_qkv(2, 3, 77, 65, d, dtype))
    _check(dtype, atol, qkv=_qkv(2, 3, 77, 65, d, dtype), fda=FDA,
           key_padding_mask=torch.rand(2, 65, device="cuda") < 0.2)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.float16, 2e-3)])
@pytest.mark.parametrize("topk", [1, 8, 32, 100])
def test_topk(dtype, atol, topk):
    _need_kernels()
    _check(dtype, atol, qkv=_qkv(2, 2, 45, 70, 32, dtype), topk=topk)
    _check(dtype, atol, qkv=_qkv(2, 2, 45, 70, 32, dtype), topk=topk, fda=FDA,
           key_padding_mask=torch.rand(2, 70, device="cuda") < 0.3)


def test_topk_indices_and_ties_float32():
    _need_kernels()
    q = torch.ones(1, 1, 3, 4, device="cuda")
    k = torch.ones(1, 1, 40, 4, device="cuda")
    v = torch.randn(1, 1, 40, 4, device="cuda")
    out, lse, index = torch.ops.vtrack.topk_attention(q, k, v, 5, 0.5)
    assert index[0, 0].tolist() == [[0, 1, 2, 3, 4]] * 3
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, :5].mean(0))


@pytest.mark.parametrize("opts", [{}, {"fda": FDA}, {"topk": 16}])
def test_ce(opts):
    _need_kernels()
    _check(torch.float32, 1e-4, qkv=_qkv(2, 3, 64 + 80, 64 + 80, 64, torch.float32),
           ce={"num_template": 64, "keep": 0.7}, **opts)


def test_fda_coefficient_grads_float32():
    _need_kernels()
    q, k, v = _qkv(2, 3, 50, 50, 32, torch.float32)
    coefs = [torch.tensor([0.5, 1.0, 0.2], device="cuda", requires_grad=True) for _ in range(3)]
    fda = dict(zip(("alpha", "beta", "delta"), coefs))
    go = torch.randn(2, 3, 50, 32, device="cuda")
    g_ref = torch.autograd.grad(K.fda_attention(q, k, v, backend="reference", **fda), coefs, go)
    g_cuda = torch.autograd.grad(K.fda_attention(q, k, v, backend="cuda", **fda), coefs, go)
    for a, b in zip(g_cuda, g_ref):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_cuda_opcheck_and_compile():
    _need_kernels()
    q, k, v = _qkv(2, 2, 33, 40, 32, torch.float16)
    torch.library.opcheck(torch.ops.vtrack.topk_attention.default, (q, k, v, 8, 0.2))
    torch.library.opcheck(torch.ops.vtrack.fda_attention.default, (q, k, v, 0.2))
    f = torch.compile(lambda q, k, v: K.topk_attention(q, k, v, 8, backend="cuda"), fullgraph=True)
    torch.testing.assert_close(f(q, k, v), K.topk_attention(q, k, v, 8, backend="cuda"))
