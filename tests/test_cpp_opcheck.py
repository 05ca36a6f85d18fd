"""torch.library.opcheck on every vtrack op and torch.compile(fullgraph=True) over the cpp backend."""
import pytest
import torch

import vtrack.kernels as K
from vtrack.kernels import _ext, cpp_ops

from ext_required import needs_cpp

pytestmark = needs_cpp()


def _qkv(n=9, m=11, d=8, grad=True):
    return [torch.randn(2, 2, t, d, requires_grad=grad) for t in (n, m, m)]


def _coefs(grad=True):
    return [torch.tensor([0.5, 0.2], requires_grad=grad), torch.tensor([0.1, 0.3], requires_grad=grad),
            torch.tensor([0.2, 0.05], requires_grad=grad)]


def _packed(grad=True):
    """The ops' coef [3, H] (rows alpha, beta, delta)."""
    return torch.stack([c.detach() for c in _coefs(False)]).requires_grad_(grad)


def _cases():
    ops = torch.ops.vtrack
    q, k, v = _qkv()
    qs, ks, vs = _qkv(n=13, m=13)
    mask = torch.zeros(2, 11, dtype=torch.bool)
    mask[0, 2] = True
    c = _packed()
    cases = [
        (ops.topk_attention.default, (q, k, v, 3, 0.35)),
        (ops.topk_attention.default, (q, k, v, 4, 0.35, mask, c)),
        (ops.fda_attention.default, (q, k, v, 0.35)),
        (ops.fda_attention.default, (q, k, v, 0.35, mask, c)),
        (ops.ce_attention.default, (qs, ks, vs, 9, 2, torch.tensor([4]), 0.35)),
        (ops.ce_attention.default, (qs, ks, vs, 9, 3, torch.tensor([4, 1]), 0.35, 5, None, c)),
    ]
    with torch.no_grad():
        out, lse, index = ops.topk_attention(q, k, v, 3, 0.35, None, c)
        go = torch.randn_like(out)
        cases.append((ops.topk_attention_backward.default,
                      (go, q.detach(), k.detach(), v.detach(), out, lse, index, 0.35, c.detach())))
        out, lse = ops.fda_attention(q, k, v, 0.35, mask)
        cases.append((ops.fda_attention_backward.default,
                      (go, q.detach(), k.detach(), v.detach(), out, lse, 0.35, mask)))
    return cases


@pytest.mark.parametrize("case", range(8))
def test_opcheck(case):
    op, args = _cases()[case]
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("kind", ["topk", "fda", "ce"])
def test_compile_fullgraph_matches_eager(kind):
    torch._dynamo.reset()
    if kind == "ce":
        q, k, v = _qkv(n=13, m=13)
    else:
        q, k, v = _qkv()
    a, b, d = _coefs()

    def fn(q, k, v, a, b, d):
        fda = {"alpha": a, "beta": b, "delta": d}
        if kind == "topk":
            return K.topk_attention(q, k, v, 4, backend="cpp")
        if kind == "fda":
            return K.fda_attention(q, k, v, alpha=a, beta=b, delta=d, backend="cpp")
        out, keep_index, score = K.ce_attention(q, k, v, num_template=9, keep=2, fda=fda, backend="cpp")
        return out * score.sum()

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    eager = fn(q, k, v, a, b, d)
    got = compiled(q, k, v, a, b, d)
    torch.testing.assert_close(got, eager)
    leaves = (q, k, v) if kind == "topk" else (q, k, v, a, b, d)
    g_eager = torch.autograd.grad(eager.sum(), leaves)
    g_comp = torch.autograd.grad(compiled(q, k, v, a, b, d).sum(), leaves)
    for x, y in zip(g_comp, g_eager):
        torch.testing.assert_close(x, y)
