"""The fused backends' one op schema (docs/kernels.md "Kernel schema"): schemas, fakes, autograd, dispatch glue.

Every fused backend registers the same five operators under ``torch.ops.vtrack``, its name prefix before
each (``""`` for the C++/CUDA ops of ``csrc/ops.cpp``, ``"triton_"`` for the Triton ones), with the
schemas of :data:`SCHEMAS`:

* ``topk_attention(q, k, v, topk, scale, key_padding_mask, coef) -> (out, lse, index)``
* ``fda_attention(q, k, v, scale, key_padding_mask, coef) -> (out, lse)`` (dense attention when coef
  is None)
* ``ce_attention(q, k, v, num_template, keep, template_index, scale, topk, key_padding_mask, coef)
  -> (out, lse, index, score, keep_index)``
* ``topk_attention_backward`` / ``fda_attention_backward`` -> ``(dq, dk, dv, dcoef)`` (CE uses one of
  them).

Conventions (the same on every backend): ``lse`` [B,H,N] float32 (float64 for float64 inputs), +inf
for a row without a valid key; ``index`` [B,H,N,min(topk,M)] int32, each row's kept keys in ascending
order, -1 after the last (the backwards consume it as it is); ``score`` [B,Ls] in lse's dtype and
``keep_index`` [B,keep] int64, computed inside the op; ``coef`` the FDA coefficients [3, H] (rows
alpha, beta, delta) in the accumulation dtype or None (:func:`vtrack.kernels.reference.packed_coef`),
``dcoef`` its [3, H] gradient (empty without coef).

:func:`register` gives a backend's ops their fake (meta) kernels and autograd formulas (one set for
every backend, so ``torch.compile(fullgraph=True)`` and ``torch.library.opcheck`` see the same
operators), and :func:`run` maps :class:`~vtrack.kernels.checks.AttentionInputs` to them and their
outputs to :class:`~vtrack.kernels.dispatch.KernelResult`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .checks import AttentionInputs
from .dispatch import KernelResult
from .reference import compute_dtype as _acc_dtype
from .reference import packed_coef

__all__ = ["SCHEMAS", "register", "run"]

#: The operators' schemas without their names (``csrc/ops.cpp`` defines the C++ ones with this text;
#: ``tests/test_kernels_triton.py`` checks that every backend's ops have exactly these schemas).
SCHEMAS = {
    "topk_attention": "(Tensor q, Tensor k, Tensor v, int topk, float scale, Tensor? key_padding_mask=None, "
                      "Tensor? coef=None) -> (Tensor out, Tensor lse, Tensor index)",
    "topk_attention_backward": "(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
                               "Tensor index, float scale, Tensor? coef=None) "
                               "-> (Tensor dq, Tensor dk, Tensor dv, Tensor dcoef)",
    "fda_attention": "(Tensor q, Tensor k, Tensor v, float scale, Tensor? key_padding_mask=None, "
                     "Tensor? coef=None) -> (Tensor out, Tensor lse)",
    "fda_attention_backward": "(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
                              "float scale, Tensor? key_padding_mask=None, Tensor? coef=None) "
                              "-> (Tensor dq, Tensor dk, Tensor dv, Tensor dcoef)",
    "ce_attention": "(Tensor q, Tensor k, Tensor v, int num_template, int keep, Tensor template_index, "
                    "float scale, int topk=0, Tensor? key_padding_mask=None, Tensor? coef=None) "
                    "-> (Tensor out, Tensor lse, Tensor index, Tensor score, Tensor keep_index)",
}


# ------------------------------------------------------------------------------------------------
# Fake kernels
# ------------------------------------------------------------------------------------------------

def _fake_topk(q, k, v, topk, scale, key_padding_mask=None, coef=None):
    b, h, n, _ = q.shape
    width = min(topk, k.shape[2])
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, h, n, width), dtype=torch.int32))


def _fake_fda(q, k, v, scale, key_padding_mask=None, coef=None):
    b, h, n, _ = q.shape
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)))


def _fake_ce(q, k, v, num_template, keep, template_index, scale, topk=0, key_padding_mask=None, coef=None):
    b, h, n, _ = q.shape
    m = k.shape[2]
    width = min(topk, m) if topk > 0 else 0
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            q.new_empty((b, h, n), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, h, n, width), dtype=torch.int32),
            q.new_empty((b, m - num_template), dtype=_acc_dtype(q.dtype)),
            q.new_empty((b, keep), dtype=torch.int64))


def _fake_grads(q, k, v, coef):
    dcoef = q.new_empty((0,), dtype=_acc_dtype(q.dtype)) if coef is None else torch.empty_like(coef)
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            torch.empty_like(k, memory_format=torch.contiguous_format),
            torch.empty_like(v, memory_format=torch.contiguous_format), dcoef)


def _fake_topk_bwd(grad_out, q, k, v, out, lse, index, scale, coef=None):
    return _fake_grads(q, k, v, coef)


def _fake_fda_bwd(grad_out, q, k, v, out, lse, scale, key_padding_mask=None, coef=None):
    return _fake_grads(q, k, v, coef)


_FAKES = {"topk_attention": _fake_topk, "fda_attention": _fake_fda, "ce_attention": _fake_ce,
          "topk_attention_backward": _fake_topk_bwd, "fda_attention_backward": _fake_fda_bwd}


# ------------------------------------------------------------------------------------------------
# Autograd (one formula per forward op; the backward op is the backend's own)
# ------------------------------------------------------------------------------------------------

def _grad_or_zeros(grad: Optional[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(out) if grad is None else grad


def _dcoef(dcoef: torch.Tensor, coef: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return dcoef if coef is not None else None


def _setup_topk(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, topk, scale, mask, coef = inputs
    out, lse, index = output
    ctx.save_for_backward(q, k, v, out, lse, index, coef)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse, index)


def _setup_fda(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, scale, mask, coef = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask, coef)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse)


def _setup_ce(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, num_template, keep, template_index, scale, topk, mask, coef = inputs
    out, lse, index, score, keep_index = output
    ctx.save_for_backward(q, k, v, out, lse, index, mask, coef)
    ctx.scale = scale
    ctx.topk = topk
    ctx.mark_non_differentiable(lse, index, score, keep_index)


def _backwards(topk_bwd: Callable[..., Any], fda_bwd: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """The autograd formulas of the three forward ops, calling a backend's two backward ops."""

    def backward_topk(ctx: Any, grad_out, grad_lse, grad_index):
        q, k, v, out, lse, index, coef = ctx.saved_tensors
        dq, dk, dv, dcoef = topk_bwd(_grad_or_zeros(grad_out, out), q, k, v, out, lse, index, ctx.scale, coef)
        return dq, dk, dv, None, None, None, _dcoef(dcoef, coef)

    def backward_fda(ctx: Any, grad_out, grad_lse):
        q, k, v, out, lse, mask, coef = ctx.saved_tensors
        dq, dk, dv, dcoef = fda_bwd(_grad_or_zeros(grad_out, out), q, k, v, out, lse, ctx.scale, mask, coef)
        return dq, dk, dv, None, None, _dcoef(dcoef, coef)

    def backward_ce(ctx: Any, grad_out, grad_lse, grad_index, grad_score, grad_keep):
        q, k, v, out, lse, index, mask, coef = ctx.saved_tensors
        go = _grad_or_zeros(grad_out, out)
        if ctx.topk > 0:
            dq, dk, dv, dcoef = topk_bwd(go, q, k, v, out, lse, index, ctx.scale, coef)
        else:
            dq, dk, dv, dcoef = fda_bwd(go, q, k, v, out, lse, ctx.scale, mask, coef)
        return dq, dk, dv, None, None, None, None, None, None, _dcoef(dcoef, coef)

    return {"topk_attention": backward_topk, "fda_attention": backward_fda, "ce_attention": backward_ce}


_SETUPS = {"topk_attention": _setup_topk, "fda_attention": _setup_fda, "ce_attention": _setup_ce}


def _op(prefix: str, name: str) -> Any:
    return getattr(torch.ops.vtrack, prefix + name)


def register(prefix: str) -> None:
    """Register the fakes and autograd formulas of the ops ``vtrack::<prefix><name>`` (defined already,
    with :data:`SCHEMAS`). Call once per backend."""
    for name, fake in _FAKES.items():
        torch.library.register_fake(f"vtrack::{prefix}{name}")(fake)
    backwards = _backwards(_op(prefix, "topk_attention_backward"), _op(prefix, "fda_attention_backward"))
    for name, backward in backwards.items():
        torch.library.register_autograd(f"vtrack::{prefix}{name}", backward, setup_context=_SETUPS[name])


# ------------------------------------------------------------------------------------------------
# Dispatch glue (one for every fused backend)
# ------------------------------------------------------------------------------------------------

def run(inputs: AttentionInputs, prefix: str) -> KernelResult:
    """Run ``inputs`` through the ops ``torch.ops.vtrack.<prefix>*``: the op their features need (CE,
    top-K, else the dense/FDA op), its outputs as the dispatcher's :class:`KernelResult`."""
    q, k, v = inputs.q, inputs.k, inputs.v
    coef = packed_coef(inputs)
    mask = inputs.key_padding_mask
    if inputs.ce is not None:
        ce = inputs.ce
        out, lse, index, score, keep_index = _op(prefix, "ce_attention")(
            q, k, v, ce.num_template, ce.keep, ce.template_index, inputs.scale, inputs.topk or 0, mask, coef)
        return KernelResult(out, lse, index if inputs.topk else None, score, keep_index)
    if inputs.topk is not None:
        out, lse, index = _op(prefix, "topk_attention")(q, k, v, inputs.topk, inputs.scale, mask, coef)
        return KernelResult(out, lse, index)
    out, lse = _op(prefix, "fda_attention")(q, k, v, inputs.scale, mask, coef)
    return KernelResult(out, lse)
