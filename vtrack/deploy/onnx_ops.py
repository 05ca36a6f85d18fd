"""ONNX translations of vtrack's custom attention ops (``torch.ops.vtrack.*``).

The exporter (``torch.onnx.export(dynamo=True, custom_translation_table=TRANSLATIONS)``) meets
the compiled ops as opaque nodes; each function here writes one of them with standard ONNX
operators (opset 18), following the numerics of :mod:`vtrack.kernels.reference`:

* logits ``scale * q k^T`` (+ the FDA bias ``alpha*exp(-delta*d2) - beta*delta*d2`` with
  ``d2 = max(|q|^2 + |k|^2 - 2 q.k, 0)``, element-wise ops; alpha, beta, delta are the rows of the
  ops' ``coef`` [3, H] argument); masked keys ``-inf``;
* top-K: ``TopK`` (ties toward the lower index, like the kernels) and a scatter of the kept
  logits into a ``-inf`` row, then a softmax that gives zeros (not NaN) for an all ``-inf`` row;
* CE: the template rows' probabilities to the search keys (``Gather``), averaged over rows and
  heads, and ``TopK`` of that score for the kept indices.

The second outputs of the kernels (log-sum-exp, the top-K index) only feed their backward
passes; they are produced with the right shapes and dtypes so the graph stays well-typed.
"""
from __future__ import annotations

from typing import Any, Callable

from onnxscript import FLOAT, INT64
from onnxscript import opset18 as op

__all__ = ["OPSET", "translation_table"]

#: ONNX opset the translations (and so the exported models) use.
OPSET = 18

_NEG_INF = float("-inf")


def _logits(q: Any, k: Any, scale: float, mask: Any, coef: Any) -> Any:
    """Final logits [B,H,N,M]: scaled dot product, FDA bias (coef [3,H]: rows alpha, beta, delta), key padding mask."""
    kt = op.Transpose(k, perm=[0, 1, 3, 2])
    qk = op.MatMul(q, kt)
    s = op.Mul(qk, op.Constant(value_float=float(scale)))
    if coef is not None:
        axes = op.Constant(value_ints=[-1])
        q2 = op.ReduceSum(op.Mul(q, q), axes, keepdims=1)  # [B,H,N,1]
        k2 = op.Transpose(op.ReduceSum(op.Mul(k, k), axes, keepdims=1), perm=[0, 1, 3, 2])  # [B,H,1,M]
        d2 = op.Sub(op.Add(q2, k2), op.Mul(qk, op.Constant(value_float=2.0)))
        d2 = op.Max(d2, op.Constant(value_float=0.0))
        per_head = op.Reshape(coef, op.Constant(value_ints=[3, 1, -1, 1, 1]))  # [3,1,H,1,1]
        a, b, d = (op.Gather(per_head, op.Constant(value_int=i), axis=0) for i in range(3))  # each [1,H,1,1]
        rep = op.Mul(d, d2)
        s = op.Add(s, op.Sub(op.Mul(a, op.Exp(op.Neg(rep))), op.Mul(b, rep)))
    if mask is not None:
        m = op.Unsqueeze(mask, op.Constant(value_ints=[1, 2]))  # [B,1,1,M]
        s = op.Where(m, op.Constant(value_float=_NEG_INF), s)
    return s


def _safe_softmax(s: Any) -> tuple[Any, Any]:
    """(probabilities, log-sum-exp) over the last axis; an all ``-inf`` row gives zeros."""
    axes = op.Constant(value_ints=[-1])
    zero = op.Constant(value_float=0.0)
    mx = op.ReduceMax(s, axes, keepdims=1)
    mx = op.Where(op.IsInf(mx), zero, mx)
    e = op.Exp(op.Sub(s, mx))
    den = op.ReduceSum(e, axes, keepdims=1)
    p = op.Div(e, op.Where(op.Greater(den, zero), den, op.Constant(value_float=1.0)))
    lse = op.Squeeze(op.Add(op.Log(den), mx), axes)
    return p, lse


def _topk_mask(s: Any, topk: int) -> tuple[Any, Any]:
    """Keep the ``topk`` largest logits of each row (others ``-inf``); also the int32 indices.

    ``sorted=0``: the kept set is scattered back in place, so its order does not matter, and
    onnxruntime selects it without sorting (SparseTT's search branch 14.5 -> 13.2 ms, outputs
    bit-identical); onnxruntime's comparator still breaks ties toward the lower index."""
    m = op.Shape(s, start=-1)
    kk = op.Min(op.Constant(value_ints=[int(topk)]), m)
    values, index = op.TopK(s, kk, axis=-1, largest=1, sorted=0)
    kept = op.ScatterElements(op.Expand(op.Constant(value_float=_NEG_INF), op.Shape(s)), index, values, axis=-1)
    return kept, op.Cast(index, to=6)  # int32 like the kernels


def topk_attention(q: FLOAT, k: FLOAT, v: FLOAT, topk: int, scale: float, key_padding_mask: Any = None,
                   coef: Any = None) -> tuple[Any, Any, Any]:
    """``vtrack::topk_attention`` -> (out, lse, index): TopK + masked softmax."""
    s = _logits(q, k, scale, key_padding_mask, coef)
    kept, index = _topk_mask(s, topk)
    p, lse = _safe_softmax(kept)
    return op.MatMul(p, v), lse, index


def fda_attention(q: FLOAT, k: FLOAT, v: FLOAT, scale: float, key_padding_mask: Any = None,
                  coef: Any = None) -> tuple[Any, Any]:
    """``vtrack::fda_attention`` -> (out, lse): dense attention with the FDA bias (if any)."""
    s = _logits(q, k, scale, key_padding_mask, coef)
    p, lse = _safe_softmax(s)
    return op.MatMul(p, v), lse


def ce_attention(q: FLOAT, k: FLOAT, v: FLOAT, num_template: int, keep: int, template_index: INT64, scale: float,
                 topk: int = 0, key_padding_mask: Any = None, coef: Any = None) -> tuple[Any, Any, Any, Any, Any]:
    """``vtrack::ce_attention`` -> (out, lse, index, score, keep_index): Gather + TopK for CE."""
    s = _logits(q, k, scale, key_padding_mask, coef)
    if topk > 0:
        s, index = _topk_mask(s, topk)
    else:
        index = op.Cast(op.Slice(op.Shape(s), op.Constant(value_ints=[0]), op.Constant(value_ints=[0])), to=6)
        # an empty [B,H,N,0] int32 tensor, as the kernels return without top-K
        index = op.Expand(index, op.Concat(op.Shape(s, end=3), op.Constant(value_ints=[0]), axis=0))
    p, lse = _safe_softmax(s)
    out = op.MatMul(p, v)
    rows = op.Gather(p, template_index, axis=2)  # [B,H,T,M]
    rows = op.Slice(rows, op.Constant(value_ints=[int(num_template)]), op.Constant(value_ints=[2**62]),
                    op.Constant(value_ints=[3]))
    score = op.ReduceMean(rows, op.Constant(value_ints=[1, 2]), keepdims=0)  # [B,Ls]
    _, keep_index = op.TopK(score, op.Constant(value_ints=[int(keep)]), axis=-1, largest=1, sorted=1)
    return out, lse, index, score, keep_index


def translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export``: every ``torch.ops.vtrack`` forward op."""
    import torch

    from vtrack.kernels.cpp_ops import register_meta

    if not register_meta():
        from vtrack.kernels import _ext

        raise RuntimeError(f"export needs the compiled vtrack._C ops: {_ext.unavailable_reason()}")
    ops = torch.ops.vtrack
    return {
        ops.topk_attention.default: topk_attention,
        ops.fda_attention.default: fda_attention,
        ops.ce_attention.default: ce_attention,
    }
