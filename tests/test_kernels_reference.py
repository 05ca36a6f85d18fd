"""Reference ops against independent formulas, float64 gradcheck, input validation."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

import vtrack.kernels as K

# these tests check the reference backend itself ("auto" would pick a compiled backend)
topk_attention = partial(K.topk_attention, backend="reference")
fda_attention = partial(K.fda_attention, backend="reference")
ce_attention = partial(K.ce_attention, backend="reference")
attention = partial(K.attention, backend="reference")


def _qkv(b=2, h=3, n=7, m=9, d=8, dtype=torch.float64, grad=False):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(b, h, t, d, generator=g, dtype=dtype, requires_grad=grad) for t in (n, m, m)]


def test_topk_ge_m_equals_sdpa():
    q, k, v = _qkv()
    ref = F.scaled_dot_product_attention(q, k, v)
    for topk in (9, 50):
        torch.testing.assert_close(topk_attention(q, k, v, topk), ref)


def test_topk_matches_explicit_loop():
    q, k, v = _qkv(b=1, h=2, n=5, m=11, d=4)
    topk = 3
    out = topk_attention(q, k, v, topk, scale=0.7)
    s = q @ k.transpose(-1, -2) * 0.7
    exp = torch.zeros_like(out)
    for h in range(2):
        for i in range(5):
            idx = sorted(range(11), key=lambda j: -float(s[0, h, i, j]))[:topk]
            w = torch.softmax(s[0, h, i, idx], 0)
            exp[0, h, i] = w @ v[0, h, idx]
    torch.testing.assert_close(out, exp)


def test_topk_more_than_valid_keys_keeps_all_valid():
    q, k, v = _qkv(b=2, m=6)
    mask = torch.tensor([[False, True, False, True, True, True], [False] * 6])
    out = topk_attention(q, k, v, 4, key_padding_mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask[:, None, None, :])
    torch.testing.assert_close(out[0], ref[0])


def test_fda_zero_coefficients_equal_dense():
    q, k, v = _qkv()
    out = fda_attention(q, k, v, alpha=0.0, beta=0.0, delta=0.3)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


def test_fda_matches_cdist_formula():
    q, k, v = _qkv()
    alpha = torch.tensor([0.1, 0.5, -0.2], dtype=torch.float64)
    beta, delta = 0.3, torch.tensor(0.05, dtype=torch.float64)
    out = fda_attention(q, k, v, alpha=alpha, beta=beta, delta=delta)
    d2 = torch.cdist(q, k) ** 2
    a = alpha.view(1, 3, 1, 1)
    s = q @ k.transpose(-1, -2) / math.sqrt(8) + a * torch.exp(-delta * d2) - beta * delta * d2
    torch.testing.assert_close(out, torch.softmax(s, -1) @ v)


def test_ce_score_is_explicit_softmax_row():
    b, h, nt, ls, d = 2, 3, 9, 12, 8
    q, k, v = _qkv(b=b, h=h, n=nt + ls, m=nt + ls, d=d)
    out, keep_index, score = ce_attention(q, k, v, num_template=nt, keep=0.5)
    centre = 1 + 3 * 1  # floor(3/2) + 3*floor(3/2)
    p = torch.softmax(torch.einsum('bhd,bhmd->bhm', q[:, :, centre], k) / math.sqrt(d), -1)  # [B,H,N]
    exp_score = p[:, :, nt:].mean(1)
    torch.testing.assert_close(score, exp_score)
    assert keep_index.dtype == torch.int64 and keep_index.shape == (b, 6)
    torch.testing.assert_close(keep_index, torch.argsort(exp_score, -1, descending=True)[:, :6])
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert not score.requires_grad


def test_ce_keep_ratio_template_index_and_ties():
    q, k, v = _qkv(b=1, h=1, n=14, m=14)
    _, ki, _ = ce_attention(q, k, v, num_template=4, keep=0.7)  # ceil(0.7*10) = 7
    assert ki.shape == (1, 7)
    _, ki, sc = ce_attention(q, k, v, num_template=4, keep=10, template_index=[0, 2])
    p = torch.softmax(q[0, 0, [0, 2]] @ k[0, 0].T / math.sqrt(8), -1)[:, 4:].mean(0)
    torch.testing.assert_close(sc[0], p)
    # equal scores (zero queries): ties toward the lower index
    qz = torch.zeros_like(q)
    _, ki, _ = ce_attention(qz, k, v, num_template=4, keep=5)
    assert ki.tolist() == [[0, 1, 2, 3, 4]]


def test_ce_with_fda_uses_fda_probabilities():
    q, k, v = _qkv(b=1, h=2, n=13, m=13)
    fda = dict(alpha=0.2, beta=0.1, delta=0.1)
    out, _, score = ce_attention(q, k, v, num_template=4, keep=3, fda=fda)
    torch.testing.assert_close(out, fda_attention(q, k, v, **fda))
    s = q @ k.transpose(-1, -2) / math.sqrt(8)
    d2 = torch.cdist(q, k) ** 2
    p = torch.softmax(s + 0.2 * torch.exp(-0.1 * d2) - 0.01 * d2, -1)
    torch.testing.assert_close(score, p[:, :, 3, 4:].mean(1))


@pytest.mark.parametrize("op", ["topk", "fda", "ce", "topk+fda"])
def test_gradcheck_float64(op):
    q, k, v = _qkv(b=1, h=2, n=5, m=5, d=4, grad=True)
    alpha = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    delta = torch.tensor([0.1, 0.05], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[False, False, True, False, False]])

    def fn(q, k, v, alpha, beta, delta):
        fda = dict(alpha=alpha, beta=beta, delta=delta)
        if op == "topk":
            return topk_attention(q, k, v, 2, key_padding_mask=mask)
        if op == "fda":
            return fda_attention(q, k, v, **fda, key_padding_mask=mask)
        if op == "ce":
            return ce_attention(q, k, v, num_template=1, keep=2, fda=fda)[0]
        return attention(q, k, v, topk=3, fda=fda)

    assert torch.autograd.gradcheck(fn, (q, k, v, alpha, beta, delta))


def test_low_precision_runs():
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        q, k, v = _qkv(dtype=dt)
        out = topk_attention(q, k, v, 4)
        assert out.dtype == dt and torch.isfinite(out).all()


BAD = [
    (lambda q, k, v: K.topk_attention(q[0], k, v, 2), ValueError, "q: expected a 4-D"),
    (lambda q, k, v: K.topk_attention(q, k[:, :2], v, 2), ValueError, "k: expected shape"),
    (lambda q, k, v: K.topk_attention(q, k, v[:, :, :3], 2), ValueError, "v: expected 9 tokens"),
    (lambda q, k, v: K.topk_attention(q, k.float(), v, 2), TypeError, "k: expected dtype"),
    (lambda q, k, v: K.topk_attention(q.long(), k, v, 2), TypeError, "q: expected dtype float16"),
    (lambda q, k, v: K.topk_attention(q, k, v, 0), ValueError, r"topk: expected an int in \[1, 2147483647\].*got 0"),
    (lambda q, k, v: K.topk_attention(q, k, v, 2.0), TypeError, "topk"),
    (lambda q, k, v: K.topk_attention(q, k, v, 2, key_padding_mask=torch.zeros(2, 9)), TypeError, "key_padding_mask"),
    (lambda q, k, v: K.topk_attention(q, k, v, 2, key_padding_mask=torch.zeros(2, 8, dtype=torch.bool)),
     ValueError, "key_padding_mask: expected shape"),
    (lambda q, k, v: K.topk_attention(q, k, v, 2, scale=float("nan")), ValueError, "scale"),
    (lambda q, k, v: K.topk_attention(q, k, v, 2, backend="nope"), ValueError, "unknown backend 'nope'"),
    (lambda q, k, v: K.fda_attention(q, k, v, alpha=torch.zeros(2), beta=0.0, delta=1.0), ValueError, "fda.alpha"),
    (lambda q, k, v: K.fda_attention(q, k, v, alpha=0.1, beta="x", delta=1.0), TypeError, "fda.beta"),
    (lambda q, k, v: K.fda_attention(q, k, v, alpha=0.1, beta=0.1, delta=float("inf")), ValueError, "fda.delta"),
    (lambda q, k, v: K.ce_attention(q, k, v, num_template=4, keep=1), ValueError, "M == N"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=7, keep=1), ValueError, "num_template"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=4, keep=4), ValueError, "keep: expected an int in \\[1, 3\\]"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=4, keep=0), ValueError, "keep"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=4, keep=1.5), ValueError, "keep"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=3, keep=1), ValueError, "template_index"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=4, keep=1, template_index=[4]), ValueError, "template_index"),
    (lambda q, k, v: K.ce_attention(q, q, q, num_template=4, keep=1, template_index=torch.zeros(1)), TypeError,
     "template_index"),
    (lambda q, k, v: K.attention(q, k, v, fda=dict(alpha=0.1, beta=0.1)), ValueError, "fda: expected exactly"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_inputs(i):
    fn, exc, match = BAD[i]
    q, k, v = _qkv(n=7, m=9)
    with pytest.raises(exc, match=match):
        fn(q, k, v)


def test_device_mismatch_message():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="k: expected device cpu"):
        K.topk_attention(q, k.to("meta"), v, 2)


@pytest.mark.parametrize("op", ["topk", "fda", "ce"])
def test_compile_fullgraph_reference(op):
    """torch.compile(fullgraph=True) captures each op (dispatch included) with autograd (aot_eager)."""
    q, k, v = _qkv(n=9, m=9, dtype=torch.float32, grad=True)
    fns = {
        "topk": lambda q, k, v: K.topk_attention(q, k, v, 3, backend="reference"),
        "fda": lambda q, k, v: K.fda_attention(q, k, v, alpha=0.1, beta=0.1, delta=0.2, backend="reference"),
        "ce": lambda q, k, v: (lambda o, i, s: o * s.mean() + i.sum())(
            *K.ce_attention(q, k, v, num_template=4, keep=2, backend="reference")),
    }
    fn = fns[op]
    exp = fn(q, k, v)
    exp.sum().backward()
    grads = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    got = torch.compile(fn, fullgraph=True, backend="aot_eager")(q, k, v)
    got.sum().backward()
    torch.testing.assert_close(got, exp)
    for a, x in zip(grads, (q, k, v)):
        torch.testing.assert_close(x.grad, a)
