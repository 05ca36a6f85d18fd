"""Plain-PyTorch reference of vtrack's attention ops: the ground truth every backend is tested against.

The reference materialises the [B, H, N, M] logits, works on any device and dtype, and is
differentiable by autograd (float64 for gradcheck).

Numerics (shared by all backends, see docs/kernels.md):

* logits ``s = scale * q @ k^T`` are computed in the input dtype (as a same-precision PyTorch
  program would), then softmax runs in float32 (float64 for float64 inputs) and the probabilities
  are cast back to the input dtype before ``p @ v``;
* FDA: ``s += alpha * exp(-delta * d2) - beta * delta * d2`` with
  ``d2 = clamp(|q|^2 + |k|^2 - 2 q.k, min=0)`` computed in float32 (float64 for float64 inputs);
* top-K: per query row the ``min(topk, valid keys)`` largest final logits are kept, ties broken
  toward the lower key index (a stable descending sort); the selection is a constant for autograd;
* masked keys (``key_padding_mask`` True) get zero probability. A row with no valid key (every
  key masked) has an all-zero probability row, so its output is **zero** and its gradients are
  zero - never NaN.
* non-finite values (the contract of every backend, docs/kernels.md): a query row whose unmasked
  logits include a NaN or a +inf is NaN in ``out`` (with or without top-K: the NaN is never
  dropped by the selection), and so is its CE score row; -inf logits get zero weight. Inputs are
  not scanned (that would cost a device sync): the NaN propagates.
* CE score ``[B, Ls]``: the probabilities of the template query rows ``template_index`` toward
  each search key, averaged over those rows and over heads (float32; float64 for float64 inputs);
  ``keep_index`` ``[B, keep]`` int64: the search-token indices (0-based within the search part)
  of the ``keep`` highest scores, in descending score order, ties toward the lower index.
"""
from __future__ import annotations

from typing import Optional

import torch

from .checks import AttentionInputs, CEParams, FDAParams, Scalar
from .dispatch import KernelResult


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype for ``dtype``: float64 stays float64, everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def coef(x: Scalar, num_heads: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An FDA coefficient (float, [] or [H] tensor) as a [1, H, 1, 1] tensor broadcastable over logits."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype).reshape(-1).expand(num_heads).reshape(1, num_heads, 1, 1)
    return torch.full((1, num_heads, 1, 1), float(x), dtype=dtype, device=device)


def packed_coef(inputs: AttentionInputs) -> Optional[torch.Tensor]:
    """The FDA coefficients as the fused kernels' one argument ``coef``: a [3, H] tensor (rows alpha, beta,
    delta per head) in :func:`compute_dtype` of the inputs (float32; float64 for float64 inputs), or None
    without FDA. The C++/CUDA ops and the Triton op take it alike; it is differentiable, so autograd maps
    their [3, H] gradient ``dcoef`` back to each float / [] / [H] coefficient."""
    if inputs.fda is None:
        return None
    f, h = inputs.fda, inputs.q.shape[1]
    cdt = compute_dtype(inputs.q.dtype)
    return torch.cat([coef(c, h, cdt, inputs.q.device).reshape(1, h) for c in (f.alpha, f.beta, f.delta)])


def fda_bias(q: torch.Tensor, k: torch.Tensor, fda: FDAParams) -> torch.Tensor:
    """FDA bias ``alpha*exp(-delta*d2) - beta*delta*d2`` [B,H,N,M] in the compute dtype."""
    cdt = compute_dtype(q.dtype)
    qf, kf = q.to(cdt), k.to(cdt)
    h = q.shape[1]
    d2 = (qf.square().sum(-1)[..., :, None] + kf.square().sum(-1)[..., None, :]
          - 2.0 * torch.matmul(qf, kf.transpose(-1, -2))).clamp_min(0.0)
    alpha, beta, delta = (coef(c, h, cdt, q.device) for c in (fda.alpha, fda.beta, fda.delta))
    rep = delta * d2
    return alpha * torch.exp(-rep) - beta * rep


def logits(q: torch.Tensor, k: torch.Tensor, scale: float, fda: Optional[FDAParams] = None,
           key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Final logits [B,H,N,M] in the compute dtype; masked keys are -inf."""
    s = (torch.matmul(q, k.transpose(-1, -2)) * scale).to(compute_dtype(q.dtype))
    if fda is not None:
        s = s + fda_bias(q, k, fda)
    if key_padding_mask is not None:
        s = s.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return s


def topk_select(s: torch.Tensor, topk: int, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bool [B,H,N,M]: the ``min(topk, valid)`` largest logits per row, ties toward the lower key index.

    The K-th largest value ``t`` comes from ``torch.topk``; every logit above ``t`` is kept, and
    among the logits equal to ``t`` the ones with the lowest key indices fill the remaining slots.
    Masked logits are ``-inf`` and never kept.
    """
    with torch.no_grad():
        m = s.shape[-1]
        if topk >= m:
            sel = torch.ones(s.shape, dtype=torch.bool, device=s.device)
        else:
            sd = s.detach()
            thr = torch.topk(sd, topk, dim=-1, sorted=False).values.amin(-1, keepdim=True)
            above = sd > thr
            tie = sd == thr
            room = topk - above.sum(-1, keepdim=True)
            sel = above | (tie & (torch.cumsum(tie.to(torch.int32), -1) <= room))
        if key_padding_mask is not None:
            sel = sel & ~key_padding_mask[:, None, None, :]
    return sel


def safe_softmax(s: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim where an all ``-inf`` row gives zeros (not NaN), also in backward;
    a row holding a NaN or a +inf is NaN (as an online softmax computes it)."""
    mx = s.detach().amax(-1, keepdim=True)  # NaN when the row holds a NaN, +inf with a +inf
    mx = torch.where(mx == float("-inf"), torch.zeros_like(mx), mx)
    e = torch.exp(s - mx)
    den = e.sum(-1, keepdim=True)
    return e / torch.where(den == 0, torch.ones_like(den), den)


def final_logits(inputs: AttentionInputs) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(logits [B,H,N,M] after FDA, masks and the top-K selection (dropped entries -inf),
    the top-K selection bool [B,H,N,M] or None without top-K)."""
    s = logits(inputs.q, inputs.k, inputs.scale, inputs.fda, inputs.key_padding_mask)
    if inputs.topk is None:
        return s, None
    sel = topk_select(s, inputs.topk, inputs.key_padding_mask)
    # a NaN/+inf logit is never dropped by the selection: it makes its row NaN (the contract)
    return s.masked_fill(~(sel | torch.isnan(s) | torch.isposinf(s)), float("-inf")), sel


def probabilities(inputs: AttentionInputs) -> torch.Tensor:
    """Attention probabilities [B,H,N,M] in the compute dtype (differentiable)."""
    return safe_softmax(final_logits(inputs)[0])


def row_lse(s: torch.Tensor) -> torch.Tensor:
    """Log-sum-exp [B,H,N] of final logits; +inf for a row without a valid key (the kernels' convention)."""
    lse = torch.logsumexp(s.detach(), dim=-1)
    return lse.masked_fill(lse == float("-inf"), float("inf"))


def kept_index(sel: torch.Tensor, topk: int) -> torch.Tensor:
    """The top-K schema's ``index`` [B,H,N,min(topk,M)] int32 from a selection [B,H,N,M]: each
    row's kept keys in ascending order, -1 after the last one."""
    m = sel.shape[-1]
    cols = torch.arange(m, device=sel.device).expand_as(sel)
    idx = torch.where(sel, cols, m).sort(-1).values[..., :min(topk, m)]
    return idx.masked_fill(idx == m, -1).to(torch.int32)


def keep_index_of(score: torch.Tensor, keep: int) -> torch.Tensor:
    """The CE selection, shared by every Python backend: indices [B,keep] int64 of the ``keep``
    largest scores of [B,Ls], in descending order, ties to the lower index (a stable sort)."""
    return torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :keep]


def ce_score(p: torch.Tensor, ce: CEParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep_index [B,keep] int64, score [B,Ls]) from probabilities [B,H,N,N]; no gradient."""
    with torch.no_grad():
        rows = p.detach().index_select(2, ce.template_index)[..., ce.num_template:]
        score = rows.mean(dim=(1, 2))
        keep_index = keep_index_of(score, ce.keep)
    return keep_index, score


def attention(inputs: AttentionInputs) -> KernelResult:
    """Reference of the composed op: the full :class:`~vtrack.kernels.dispatch.KernelResult`
    (out, lse, index with top-K, score and keep_index with CE)."""
    s, sel = final_logits(inputs)
    p = safe_softmax(s)
    out = torch.matmul(p.to(inputs.v.dtype), inputs.v)
    index = None if sel is None else kept_index(sel, inputs.topk)  # type: ignore[arg-type]
    keep_index = score = None
    if inputs.ce is not None:
        keep_index, score = ce_score(p, inputs.ce)
    return KernelResult(out, row_lse(s), index, score, keep_index)
