"""The "triton" attention backend: fused forward and backward Triton kernels.

Registered with priority 100 on CUDA and -100 on CPU: on CPU tensors Triton only runs as its
interpreter (``TRITON_INTERPRET=1`` set before this module is imported), which is for tests, so
``"auto"`` never picks it there; name it explicitly (``backend="triton"``) to use it.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..checks import AttentionInputs
from ..dispatch import Result, register_backend
from ..reference import coef as _coef
from ..reference import keep_index_of
from .ops import INTERPRET, MAX_HEAD_DIM, MAX_TOPK, triton_attn_bwd, triton_attn_fwd

__all__ = ["TritonBackend", "INTERPRET", "triton_attn_fwd", "triton_attn_bwd"]


class TritonBackend:
    """Fused Triton kernels (one kernel family; constexpr flags for top-K, FDA and CE)."""

    name = "triton"

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        """Why the Triton kernels cannot run ``inputs`` (empty: they can)."""
        reasons = []
        dev = inputs.device.type
        if dev == "cpu" and not INTERPRET:
            reasons.append("CPU tensors need the Triton interpreter: set TRITON_INTERPRET=1 before importing "
                           "vtrack (slow; for tests only)")
        elif dev not in ("cpu", "cuda"):
            reasons.append(f"needs CUDA tensors, got device {inputs.device}")
        if inputs.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            reasons.append(f"dtype {inputs.dtype} not supported (float16, bfloat16, float32)")
        if inputs.dtype == torch.bfloat16 and INTERPRET:
            reasons.append("bfloat16 tl.dot is wrong under the Triton interpreter; bfloat16 needs a GPU")
        _, _, _, m, d = inputs.shape
        if d > MAX_HEAD_DIM:
            reasons.append(f"head dim {d} > {MAX_HEAD_DIM}")
        if inputs.topk is not None and inputs.topk < m and inputs.topk > MAX_TOPK:
            reasons.append(f"topk {inputs.topk} > {MAX_TOPK} (and < M={m})")
        if inputs.topk is not None and inputs.topk < m and inputs.ce is not None:
            reasons.append("top-K combined with candidate elimination is not fused")
        return reasons

    def run(self, inputs: AttentionInputs) -> Result:
        """Run the fused kernels; CE keep_index is a stable descending sort of the [B, Ls] score."""
        q, k, v = inputs.q, inputs.k, inputs.v
        b, h, n, m, _ = inputs.shape
        topk = inputs.topk if inputs.topk is not None and inputs.topk < m else 0
        coef: Optional[torch.Tensor] = None
        if inputs.fda is not None:
            f = inputs.fda
            coef = torch.cat([_coef(c, h, torch.float32, q.device).reshape(1, h) for c in (f.alpha, f.beta, f.delta)])
        ce_weight: Optional[torch.Tensor] = None
        ce = inputs.ce
        if ce is not None:
            t = ce.template_index.numel()
            ce_weight = torch.zeros(n, dtype=torch.float32, device=q.device).index_add_(
                0, ce.template_index, torch.full((t,), 1.0 / (h * t), dtype=torch.float32, device=q.device))
        out, lse, _, ce_buf = torch.ops.vtrack.triton_attn_fwd(q, k, v, inputs.key_padding_mask, coef, ce_weight,
                                                               inputs.scale, topk)
        if ce is None:
            return out, None, None
        score = ce_buf.sum(1)[:, ce.num_template:]
        # NaN contract (docs/kernels.md): a template row that saw a NaN logit makes its score row NaN.
        # The kernel gives such a row lse = +inf like a fully masked row, but a NaN output.
        rows = ce.template_index
        saw_nan = (torch.isinf(lse[:, :, rows]) & torch.isnan(out[:, :, rows]).any(-1)).flatten(1).any(1)
        score = score.masked_fill(saw_nan[:, None], float("nan"))
        return out, keep_index_of(score, ce.keep), score


register_backend(TritonBackend(), priority={"cuda": 100, "cpu": -100, "default": -100})
