"""The "triton" attention backend: fused forward and backward Triton kernels.

Registered with priority 100 on CUDA and -100 on CPU: on CPU tensors Triton only runs as its
interpreter (``TRITON_INTERPRET=1`` set before this module is imported), which is for tests, so
``"auto"`` never picks it there; name it explicitly (``backend="triton"``) to use it.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..checks import AttentionInputs
from ..dispatch import Capabilities, KernelResult, register_backend
from ..reference import keep_index_of, packed_coef
from .ops import INTERPRET, MAX_HEAD_DIM, MAX_TOPK, triton_attn_bwd, triton_attn_fwd

__all__ = ["TritonBackend", "INTERPRET", "triton_attn_fwd", "triton_attn_bwd"]


_GPU_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def capabilities(interpret: bool) -> Capabilities:
    """The Triton backend's declaration: CUDA always; CPU tensors only under the interpreter, and
    there without bfloat16 (its tl.dot is wrong in the interpreter)."""
    dtypes = {"cuda": _GPU_DTYPES}
    if interpret:
        dtypes["cpu"] = (torch.float16, torch.float32)
    return Capabilities(
        dtypes=dtypes, max_head_dim=MAX_HEAD_DIM, max_topk=MAX_TOPK, topk_with_ce=False,
        notes={"cpu": "CPU tensors need the Triton interpreter: set TRITON_INTERPRET=1 before importing vtrack "
                      "(slow; for tests only)",
               "bfloat16": "bfloat16 tl.dot is wrong under the Triton interpreter; bfloat16 needs a GPU"})


class TritonBackend:
    """Fused Triton kernels (one kernel family; constexpr flags for top-K, FDA and CE)."""

    name = "triton"

    @property
    def capabilities(self) -> Capabilities:
        """:func:`capabilities` for this process (whether the kernels run under the interpreter)."""
        return capabilities(INTERPRET)

    def unavailable_reason(self) -> Optional[str]:
        """Always available once imported (the ``triton`` package imported)."""
        return None

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """Run the fused kernels; returns the dispatcher's schema (``index`` cut to min(topk, M) and
        sorted ascending like the C++ kernels'; CE keep_index a stable descending sort of the score)."""
        q, k, v = inputs.q, inputs.k, inputs.v
        b, h, n, m, _ = inputs.shape
        topk = inputs.topk if inputs.topk is not None and inputs.topk < m else 0
        coef = packed_coef(inputs)  # [3,H] float32 (Triton runs no float64), as for the C++ ops
        ce_weight: Optional[torch.Tensor] = None
        ce = inputs.ce
        if ce is not None:
            t = ce.template_index.numel()
            ce_weight = torch.zeros(n, dtype=torch.float32, device=q.device).index_add_(
                0, ce.template_index, torch.full((t,), 1.0 / (h * t), dtype=torch.float32, device=q.device))
        out, lse, idx, ce_buf = torch.ops.vtrack.triton_attn_fwd(q, k, v, topk, inputs.scale,
                                                                 inputs.key_padding_mask, coef, ce_weight)
        index = _schema_index(idx, topk, m, inputs) if inputs.topk is not None else None
        if ce is None:
            return KernelResult(out, lse, index)
        score = ce_buf.sum(1)[:, ce.num_template:]
        # NaN contract (docs/kernels.md): a template row that saw a NaN logit makes its score row NaN.
        # The kernel gives such a row lse = +inf like a fully masked row, but a NaN output.
        rows = ce.template_index
        saw_nan = (torch.isinf(lse[:, :, rows]) & torch.isnan(out[:, :, rows]).any(-1)).flatten(1).any(1)
        score = score.masked_fill(saw_nan[:, None], float("nan"))
        return KernelResult(out, lse, index, score, keep_index_of(score, ce.keep))


def _schema_index(idx: torch.Tensor, topk: int, m: int, inputs: AttentionInputs) -> torch.Tensor:
    """The kernel's kept-key buffer [B,H,N,KP] (descending logit order, -1 padded) as the schema's
    [B,H,N,min(topk,M)] int32 in ascending key order, -1 after the last key. ``topk >= M`` (no
    buffer: dense) is every unmasked key."""
    if topk == 0:
        b, h, n, _, _ = inputs.shape
        keys = torch.arange(m, dtype=torch.int32, device=inputs.device).expand(b, h, n, m)
        if inputs.key_padding_mask is not None:
            keys = keys.masked_fill(inputs.key_padding_mask[:, None, None, :], -1)
        idx, width = keys, m
    else:
        width = topk
    idx = idx[..., :width]
    idx = torch.where(idx < 0, m, idx).sort(-1).values
    return idx.masked_fill(idx == m, -1)


register_backend(TritonBackend(), priority={"cuda": 100, "cpu": -100, "default": -100})
