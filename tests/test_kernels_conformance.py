"""One conformance suite for every attention backend (docs/kernels.md "Semantics").

Each test runs on every backend: ``reference``, ``sdpa``, ``triton`` (its interpreter on CPU),
``cpp`` (vtrack._C) and ``cuda`` (GPU only), and compares with the float64 reference or with an
exact expectation: values, gradients, the schema's lse and top-K index, ties, masks, NaN/inf,
empty and strided inputs, bad arguments. A backend is asked only for the features it declares
(``Capabilities``: ``sdpa`` gets the dense cases; the pairs are listed at collection, not skipped).
Shapes are small: the Triton interpreter takes ~0.3 s per call.

A backend that is not registered fails here (it is not skipped), except the compiled ones
(``cpp``/``cuda``) when ``VTRACK_REQUIRE_EXT`` is not set and vtrack._C is not built, and
``triton`` when the third-party ``triton`` package is not installed.
"""
from __future__ import annotations

import math
import os

import pytest
import torch

import vtrack.kernels as K

REQUIRE_EXT = os.environ.get("VTRACK_REQUIRE_EXT", "0") == "1"
BACKENDS = ["reference", "sdpa", "triton", "cpp", pytest.param("cuda", marks=pytest.mark.gpu)]
NAMES = ["reference", "sdpa", "triton", "cpp", "cuda"]
NAN = float("nan")


def _device(backend: str) -> str:
    return "cuda" if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()) else "cpu"


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    name = request.param
    if name == "triton":
        pytest.importorskip("triton")  # the third-party package (an optional extra), not vtrack's module
    if name in ("cpp", "cuda") and not REQUIRE_EXT:
        from vtrack.kernels import _ext

        if not _ext.load():
            pytest.skip(f"vtrack._C unavailable ({_ext.unavailable_reason()}); VTRACK_REQUIRE_EXT=1 makes this fail")
    assert name in K.registered_backends(), f"backend {name!r} is not registered: {K.registered_backends()}"
    return name


def _qkv(b=2, h=2, n=6, m=9, d=8, *, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, t, d, generator=g, dtype=torch.float64) for t in (n, m, m)]


def _call(backend, q, k, v, *, dtype=torch.float32, grad=False, fda=None, **kw):
    """Run one composed call on ``backend`` (inputs cast to ``dtype`` on its device); returns
    (out, keep_index, score, leaves) as float64 CPU tensors (leaves: the inputs, for gradients)."""
    dev = _device(backend)
    leaves = [x.detach().to(dev, dtype).requires_grad_(grad) for x in (q, k, v)]
    fda_t = None
    if fda is not None:
        fda_t = {}
        for name, val in fda.items():
            if isinstance(val, torch.Tensor):
                val = val.detach().to(dev, torch.float64 if dtype == torch.float64 else torch.float32)
                val.requires_grad_(grad)
                leaves.append(val)
            fda_t[name] = val
    if kw.get("key_padding_mask") is not None:
        kw["key_padding_mask"] = kw["key_padding_mask"].to(dev)
    res = K.attention(*leaves[:3], fda=fda_t, backend=backend, **kw)
    out, keep, score = res if isinstance(res, tuple) else (res, None, None)
    return out, keep, score, leaves


OPS = {
    "dense": {},
    "topk": {"topk": 3},
    "fda": {"fda": {"alpha": 0.3, "beta": 0.2, "delta": 0.1}},
    "fda-tensors": {"fda": {"alpha": torch.tensor([0.3, 0.1]), "beta": torch.tensor(0.2), "delta": torch.tensor([0.05, 0.1])}},
    "topk+fda": {"topk": 4, "fda": {"alpha": 0.2, "beta": 0.1, "delta": 0.05}},
    "ce": {"ce": {"num_template": 4, "keep": 3}},
}


def _square(op):
    return op == "ce"


def _declares(name: str, op: str) -> bool:
    """Whether backend ``name`` declares the features of ``op`` (one not registered here is listed,
    and the ``backend`` fixture then fails or skips it as for every other test)."""
    if name not in K.registered_backends():
        return True
    caps = K.get_backend(name).capabilities
    return all(getattr(caps, feature) for feature in ("topk", "fda", "ce") if feature in op)


def pairs(ops, names=NAMES):
    """(backend, op) parameters: every backend with every op it declares (cuda marked gpu)."""
    return [pytest.param(n, op, marks=[pytest.mark.gpu] if n == "cuda" else [], id=f"{n}-{op}")
            for n in names for op in ops if _declares(n, op)]


def backends_for(op):
    """The backends that declare ``op``, as parameters of the ``backend`` fixture."""
    return [pytest.param(n, marks=[pytest.mark.gpu] if n == "cuda" else [], id=n) for n in NAMES if _declares(n, op)]


@pytest.mark.parametrize("backend,op", pairs(OPS), indirect=["backend"])
def test_values_and_gradients_match_the_float64_reference(backend, op):
    kw = dict(OPS[op])
    q, k, v = _qkv(n=9 if _square(op) else 6, m=9)
    ref = _call("reference", q, k, v, dtype=torch.float64, grad=True, **kw)
    got = _call(backend, q, k, v, dtype=torch.float32, grad=True, **kw)
    torch.testing.assert_close(got[0].double().cpu(), ref[0], atol=2e-5, rtol=2e-5)
    if op == "ce":
        torch.testing.assert_close(got[2].double().cpu(), ref[2], atol=2e-6, rtol=2e-5)
        assert torch.equal(got[1].cpu(), ref[1]) and got[1].dtype == torch.int64
    dout = torch.randn(ref[0].shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g_ref = torch.autograd.grad(ref[0], ref[3], dout)
    g_got = torch.autograd.grad(got[0], got[3], dout.to(got[0].device, got[0].dtype))
    names = ["q", "k", "v", "alpha", "beta", "delta"]
    for name, a, b in zip(names, g_got, g_ref):
        torch.testing.assert_close(a.double().cpu(), b, atol=2e-4, rtol=2e-4, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("backend", backends_for("topk"), indirect=True)
def test_topk_ties_go_to_the_lower_key_index_and_keep_exactly_topk(backend):
    q = torch.zeros(1, 1, 2, 8, dtype=torch.float64)  # every logit equal
    k = torch.randn(1, 1, 6, 8, dtype=torch.float64)
    v = torch.arange(6, dtype=torch.float64).reshape(1, 1, 6, 1).repeat(1, 1, 1, 8)
    out = _call(backend, q, k, v, topk=2)[0].double().cpu()
    torch.testing.assert_close(out, torch.full_like(out, 0.5))  # mean of keys 0 and 1
    mask = torch.tensor([[True, False, False, False, False, False]])
    out = _call(backend, q, k, v, topk=2, key_padding_mask=mask)[0].double().cpu()
    torch.testing.assert_close(out, torch.full_like(out, 1.5))  # keys 1 and 2
    mask = torch.tensor([[True, True, True, True, False, False]])
    out = _call(backend, q, k, v, topk=3, key_padding_mask=mask)[0].double().cpu()
    torch.testing.assert_close(out, torch.full_like(out, 4.5))  # min(topk, valid keys) = keys 4 and 5


@pytest.mark.parametrize("backend", backends_for("ce"), indirect=True)
def test_ce_ties_go_to_the_lower_search_index(backend):
    q, k, v = _qkv(b=1, h=1, n=9, m=9)
    _, keep, score, _ = _call(backend, torch.zeros_like(q), k, v, ce={"num_template": 4, "keep": 3})
    assert keep.cpu().tolist() == [[0, 1, 2]]
    torch.testing.assert_close(score.double().cpu(), torch.full((1, 5), 1 / 9, dtype=torch.float64))


@pytest.mark.parametrize("backend,op", pairs(["dense", "topk", "fda"]), indirect=["backend"])
def test_masked_keys_are_ignored_and_fully_masked_rows_are_zero(backend, op):
    q, k, v = _qkv(m=9)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, [1, 4, 8]] = True
    mask[1] = True  # batch element 1: every key masked
    kw = {"topk": 3} if op == "topk" else {"fda": dict(OPS["fda"]["fda"])} if op == "fda" else {}
    ref = _call("reference", q, k, v, dtype=torch.float64, key_padding_mask=mask, **kw)[0]
    out, _, _, leaves = _call(backend, q, k, v, grad=True, key_padding_mask=mask, **kw)
    torch.testing.assert_close(out.double().cpu(), ref, atol=2e-5, rtol=2e-5)
    assert torch.equal(out[1].cpu(), torch.zeros_like(out[1].cpu()))
    out.sum().backward()
    for x in leaves:
        assert torch.isfinite(x.grad).all()
    assert torch.equal(leaves[0].grad[1].cpu(), torch.zeros_like(leaves[0].grad[1].cpu()))
    # the masked keys' logits do not matter (however large)
    k2 = k.clone()
    k2[0, :, [1, 4, 8]] = 1e3
    out2 = _call(backend, q, k2, v, key_padding_mask=mask, **kw)[0]
    torch.testing.assert_close(out2.cpu(), out.detach().cpu(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend,op", pairs(["dense", "topk", "fda", "topk+fda"]), indirect=["backend"])
@pytest.mark.parametrize("where", ["q", "k"])
def test_a_row_that_sees_a_nan_logit_is_nan(backend, op, where):
    """The contract: a NaN logit among the keys a row attends to makes that row NaN (with top-K
    too: the selection never drops it); every other row stays finite."""
    q, k, v = _qkv(m=9)
    if where == "q":
        q[0, 1, 2, 0] = NAN  # batch 0, head 1, query row 2
        bad = [(0, 1, 2)]
    else:
        k[0, 1, 5, 0] = NAN  # every query row of (batch 0, head 1) sees key 5
        bad = [(0, 1, i) for i in range(6)]
    kw = dict(OPS[op])
    out = _call(backend, q, k, v, **kw)[0].cpu()
    for b, h, i in bad:
        assert torch.isnan(out[b, h, i]).all(), (b, h, i)
    finite = torch.ones(out.shape[:3], dtype=torch.bool)
    for b, h, i in bad:
        finite[b, h, i] = False
    assert torch.isfinite(out[finite]).all()


@pytest.mark.parametrize("backend", backends_for("ce"), indirect=True)
def test_ce_score_with_a_nan_is_nan_and_the_rest_normalised(backend):
    q, k, v = _qkv(b=2, h=1, n=9, m=9)
    k[0, 0, 6, 0] = NAN  # batch 0: the template centre row sees it -> its scores are NaN
    out, _, score, _ = _call(backend, q, k, v, ce={"num_template": 4, "keep": 3, "template_index": 0})
    score = score.double().cpu()
    assert torch.isnan(score[0]).all()
    assert torch.isfinite(score[1]).all() and 0 < float(score[1].sum()) <= 1 + 1e-6
    assert torch.isnan(out[0].cpu()).all() and torch.isfinite(out[1].cpu()).all()


@pytest.mark.parametrize("backend,op", pairs(["dense", "topk", "fda"]), indirect=["backend"])
def test_strided_inputs_equal_contiguous_ones(backend, op):
    dev = _device(backend)
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 6, 2, 8, generator=g).to(dev).transpose(1, 2) for _ in range(3))  # [B,H,N,D] views
    assert not q.is_contiguous()
    for kw in (OPS[op],):
        strided = K.attention(q, k, v, backend=backend, **kw)
        dense = K.attention(q.contiguous(), k.contiguous(), v.contiguous(), backend=backend, **kw)
        torch.testing.assert_close(strided, dense, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend,op", pairs(["dense", "topk", "fda-tensors", "topk+fda", "ce"]), indirect=["backend"])
@pytest.mark.parametrize("masked", [False, True])
def test_the_schema_lse_and_index_match_the_reference(backend, op, masked):
    """The one output schema (out, lse, index, score, keep_index): lse and the top-K index as the
    reference computes them, for every backend that declares it returns them (None otherwise)."""
    dev = _device(backend)
    q, k, v = (x.to(dev, torch.float32) for x in _qkv(n=9 if _square(op) else 6, m=9))
    kw = {n: ({c: (t.to(dev) if isinstance(t, torch.Tensor) else t) for c, t in val.items()} if n == "fda" else val)
          for n, val in OPS[op].items()}
    if masked:
        mask = torch.zeros(2, 9, dtype=torch.bool)
        mask[0, [1, 4]] = True
        mask[1] = True
        kw["key_padding_mask"] = mask.to(dev)
    inputs = K.build_inputs(q, k, v, **kw)
    got, ref = K.dispatch(inputs, backend), K.dispatch(inputs, "reference")
    caps = K.get_backend(backend).capabilities
    assert (got.lse is not None) == caps.returns_lse
    if got.lse is not None:
        assert got.lse.dtype == torch.float32 and got.lse.shape == (2, 2, q.shape[2])
        torch.testing.assert_close(got.lse.cpu(), ref.lse.cpu(), atol=1e-5, rtol=1e-5)  # +inf rows included
    sparse = "topk" in op
    assert (got.index is not None) == (sparse and caps.returns_index)
    if got.index is not None:
        assert got.index.dtype == torch.int32 and torch.equal(got.index.cpu(), ref.index.cpu())
    assert (got.score is None) == (got.keep_index is None) == ("ce" not in op)


@pytest.mark.parametrize("shape", [(0, 2, 4, 8), (1, 0, 4, 8), (1, 2, 0, 8), (1, 2, 4, 0)])
def test_empty_inputs_are_refused_the_same_way(backend, shape):
    dev = _device(backend)
    q = torch.zeros(shape, device=dev)
    kv = torch.zeros(shape[0], shape[1], 5, shape[3], device=dev)
    with pytest.raises(ValueError, match="expected every dimension >= 1"):
        K.attention(q, kv, kv, backend=backend)


BAD = [
    ({"topk": 0}, ValueError, r"topk: expected an int in \[1, 2147483647\]"),
    ({"topk": 2**63}, ValueError, r"topk: expected an int in \[1, 2147483647\] .* got 9223372036854775808"),
    ({"topk": 2.0}, TypeError, "topk"),
    ({"fda": {"alpha": 0.1, "beta": 0.1, "delta": -0.5}}, ValueError, r"fda.delta: expected a float >= 0"),
    ({"fda": {"alpha": -0.1, "beta": 0.1, "delta": 0.5}}, ValueError, r"fda.alpha: expected a float >= 0"),
    ({"fda": {"alpha": 0.1, "beta": -0.1, "delta": 0.5}}, ValueError, r"fda.beta: expected a float >= 0"),
    ({"fda": {"alpha": 0.1, "beta": 0.1, "delta": math.inf}}, ValueError, "fda.delta: expected a finite float"),
    ({"scale": NAN}, ValueError, "scale"),
    ({"ce": {"num_template": 4, "keep": 9}}, ValueError, "keep"),
]


@pytest.mark.parametrize("i", range(len(BAD)), ids=[str(b[0]) for b in BAD])
def test_bad_arguments_raise_the_same_error_on_every_backend(backend, i):
    kw, exc, match = BAD[i]
    dev = _device(backend)
    q, k, v = (x.to(dev, torch.float32) for x in _qkv(n=9, m=9))
    with pytest.raises(exc, match=match):
        K.attention(q, k, v, backend=backend, **kw)
