"""Bad inputs: the Python checks (same errors as every backend) and the C++ TORCH_CHECKs on direct calls."""
import pytest
import torch

import vtrack.kernels as K
from vtrack.kernels import _ext, cpp_ops

from ext_required import needs_cpp

pytestmark = needs_cpp()

ops = torch.ops.vtrack if cpp_ops.register_meta() else None


def _qkv(b=1, h=2, n=5, m=6, d=8, dtype=torch.float32):
    return [torch.randn(b, h, t, d, dtype=dtype) for t in (n, m, m)]


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_python_checks_are_shared(backend):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="topk"):
        K.topk_attention(q, k, v, 0, backend=backend)
    with pytest.raises(ValueError, match="q: expected a 4-D"):
        K.topk_attention(q[0], k, v, 2, backend=backend)
    with pytest.raises(TypeError, match="k: expected dtype"):
        K.topk_attention(q, k.double(), v, 2, backend=backend)
    with pytest.raises(TypeError, match="q: expected dtype"):
        K.topk_attention(q.int(), k, v, 2, backend=backend)
    with pytest.raises(ValueError, match="key_padding_mask"):
        K.topk_attention(q, k, v, 2, key_padding_mask=torch.zeros(1, 5, dtype=torch.bool), backend=backend)
    with pytest.raises(ValueError, match="fda.alpha"):
        K.fda_attention(q, k, v, alpha=torch.ones(3), beta=0.1, delta=0.1, backend=backend)
    qs, ks, vs = _qkv(n=13, m=13)
    with pytest.raises(ValueError, match="num_template"):
        K.ce_attention(qs, ks, vs, num_template=13, keep=1, backend=backend)
    with pytest.raises(ValueError, match="keep"):
        K.ce_attention(qs, ks, vs, num_template=9, keep=5, backend=backend)


def test_cpp_side_shape_checks():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="q: expected a 4-D"):
        ops.topk_attention(q[0], k, v, 2, 1.0)
    with pytest.raises(ValueError, match="k: expected shape"):
        ops.fda_attention(q, k[:, :1], v, 1.0)
    with pytest.raises(ValueError, match="v: expected the shape of k"):
        ops.fda_attention(q, k, v[:, :, :3], 1.0)
    with pytest.raises(TypeError, match="expected dtype"):
        ops.fda_attention(q, k.double(), v, 1.0)
    f8 = torch.float8_e4m3fn
    with pytest.raises(TypeError, match="float32, float64, bfloat16 and float16"):
        ops.fda_attention(q.to(f8), k.to(f8), v.to(f8), 1.0)
    with pytest.raises(ValueError, match="topk: expected an int >= 1"):
        ops.topk_attention(q, k, v, 0, 1.0)
    with pytest.raises(ValueError, match="key_padding_mask: expected shape"):
        ops.topk_attention(q, k, v, 2, 1.0, torch.zeros(1, 7, dtype=torch.bool))
    with pytest.raises(TypeError, match="key_padding_mask: expected dtype bool"):
        ops.topk_attention(q, k, v, 2, 1.0, torch.zeros(1, 6))
    with pytest.raises(ValueError, match=r"coef: expected shape \[3, H=2\]"):
        ops.fda_attention(q, k, v, 1.0, None, torch.ones(2))
    with pytest.raises(ValueError, match=r"coef: expected shape \[3, H=2\]"):
        ops.topk_attention(q, k, v, 2, 1.0, None, torch.ones(3, 3))
    with pytest.raises(TypeError, match="coef: expected dtype Float"):
        ops.fda_attention(q, k, v, 1.0, None, torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="coef: expected dtype Double"):
        ops.fda_attention(q.double(), k.double(), v.double(), 1.0, None, torch.ones(3, 2))
    with pytest.raises(ValueError, match="scale"):
        ops.fda_attention(q, k, v, float("nan"))


def test_cpp_side_ce_checks():
    q, k, v = _qkv(n=13, m=13)
    idx = torch.tensor([4])
    with pytest.raises(ValueError, match="M == N"):
        ops.ce_attention(*_qkv(n=13, m=12), 9, 2, idx, 1.0)
    with pytest.raises(ValueError, match="num_template"):
        ops.ce_attention(q, k, v, 0, 2, idx, 1.0)
    with pytest.raises(ValueError, match="keep"):
        ops.ce_attention(q, k, v, 9, 5, idx, 1.0)
    with pytest.raises(ValueError, match="template_index: expected indices"):
        ops.ce_attention(q, k, v, 9, 2, torch.tensor([9]), 1.0)
    with pytest.raises(TypeError, match="template_index: expected an int64"):
        ops.ce_attention(q, k, v, 9, 2, torch.tensor([1.0]), 1.0)


def test_cpp_side_backward_checks():
    q, k, v = _qkv()
    out, lse, index = ops.topk_attention(q, k, v, 3, 1.0)
    go = torch.randn_like(out)
    with pytest.raises(ValueError, match="lse: expected shape"):
        ops.topk_attention_backward(go, q, k, v, out, lse[:, :1], index, 1.0)
    with pytest.raises(ValueError, match="grad_out: expected shape"):
        ops.topk_attention_backward(go[:, :, :2], q, k, v, out, lse, index, 1.0)
    with pytest.raises(TypeError, match="index: expected an int32"):
        ops.topk_attention_backward(go, q, k, v, out, lse, index.long(), 1.0)
    with pytest.raises(ValueError, match="index: expected shape"):
        ops.topk_attention_backward(go, q, k, v, out, lse, torch.zeros(1, 2, 5, 9, dtype=torch.int32), 1.0)
    # out-of-range indices from a direct call are skipped, never read out of bounds
    bad = torch.full_like(index, 1000)
    dq, dk, dv, *_ = ops.topk_attention_backward(go, q, k, v, out, lse, bad, 1.0)
    assert torch.equal(dq, torch.zeros_like(dq)) and torch.equal(dk, torch.zeros_like(dk))


def test_empty_and_non_contiguous_direct_calls():
    q, k, v = _qkv(b=0)
    out, lse, index = ops.topk_attention(q, k, v, 2, 1.0)
    assert out.shape == q.shape and index.shape == (0, 2, 5, 2)
    q, k, v = _qkv(m=0)
    out, lse = ops.fda_attention(q, k, v, 1.0)
    assert torch.equal(out, torch.zeros_like(out)) and torch.isinf(lse).all()
    q, k, v = (torch.randn(1, 7, 2, 8).transpose(1, 2) for _ in range(3))
    out, _ = ops.fda_attention(q, k, v, 0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_nan_propagates_to_its_row_only():
    q, k, v = _qkv(n=4)
    q[0, 0, 1, 0] = float("nan")
    coef = torch.tensor([[0.3, 0.3], [0.1, 0.1], [0.2, 0.2]])  # rows alpha, beta, delta
    for out in (ops.fda_attention(q, k, v, 1.0)[0], ops.topk_attention(q, k, v, 2, 1.0)[0],
                ops.fda_attention(q, k, v, 1.0, None, coef)[0], ops.topk_attention(q, k, v, 2, 1.0, None, coef)[0]):
        assert torch.isnan(out[0, 0, 1]).all()
        assert torch.isfinite(out[0, 0, [0, 2, 3]]).all() and torch.isfinite(out[0, 1]).all()
