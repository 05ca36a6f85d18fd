"""The "sdpa" backend: dense attention through ``torch.nn.functional.scaled_dot_product_attention``.

It declares what it runs (no top-K below M, no FDA bias, no CE outputs, no ``lse``), so the
dispatcher sends it only plain softmax attention (e.g. OSTrack's ViT blocks without candidate
elimination) when it outranks the other capable backends. Forward and backward are
PyTorch's (its fused CPU flash kernel / the CUDA flash or memory-efficient kernels, and their
autograd). Priorities and the CPU measurement behind them: docs/kernels.md "The sdpa backend".
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .checks import AttentionInputs
from .dispatch import Capabilities, KernelResult, register_backend

_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)

#: Priorities, measured (docs/kernels.md "The sdpa backend"): on CPU below "cpp" (50), which
#: benchmarks/sdpa_dense.py found as fast or faster at the zoo trackers' dense shapes, and above the
#: reference (0): "auto" runs dense attention on sdpa where vtrack._C is not built. On CUDA first,
#: above "triton" (100) and "cuda" (90): on an H200 (benchmarks/results/gpu/h200_4ec1a4b) dense SDPA
#: took 0.05-0.10 ms forward where the fused kernels' fastest op took 4x that and more. Its
#: declaration (dense only) keeps top-K, FDA and CE on the fused kernels.
PRIORITY = {"cpu": 40, "cuda": 110, "default": -1}


class SdpaBackend:
    """Dense (optionally key-masked) attention by PyTorch's SDPA; forward and backward."""

    name = "sdpa"
    capabilities = Capabilities(dtypes={"cpu": _DTYPES, "cuda": _DTYPES}, topk=False, fda=False, ce=False,
                                returns_lse=False, returns_index=False)

    def unavailable_reason(self) -> Optional[str]:
        """Always available (part of PyTorch)."""
        return None

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """out [B,H,N,D] under the semantics of docs/kernels.md, which SDPA alone does not follow in
        two places, both fixed here without a device sync:

        * a batch element whose keys are all masked outputs zeros with zero gradients (its mask is
          lifted for the SDPA call and its output zeroed, so no NaN reaches autograd);
        * NaN contract: a row that sees a NaN logit is NaN (SDPA's CPU kernel returns zeros for a NaN
          query row). A row is set to NaN when its query, or an unmasked key of its batch element and
          head, holds a non-finite value (the only way a float32 logit is NaN or +inf): ``out`` plus
          zero times the float32 sums of those values (two reductions, no device sync); a row whose
          logits are all -inf *because of* an infinite input is therefore NaN here, zero on the
          reference (an edge the conformance suite does not exercise).
        """
        q, k, v = inputs.q, inputs.k, inputs.v
        mask = inputs.key_padding_mask
        attn_mask = empty = None
        if mask is not None:
            empty = mask.all(-1)  # [B]: every key masked
            attn_mask = (~(mask & ~empty[:, None]))[:, None, None, :]  # True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=inputs.scale)
        with torch.no_grad():  # NaN (not 0) where a query or unmasked key holds a NaN/inf: 0 * that = NaN
            guard = q.sum(-1, keepdim=True, dtype=torch.float32)  # [B,H,N,1]
            ksum = k.sum(-1, dtype=torch.float32)  # [B,H,M]
            if mask is not None:
                ksum = ksum.masked_fill(mask[:, None, :], 0.0)
            guard = (guard + ksum.sum(-1)[..., None, None]) * 0.0
        out = out + guard.to(out.dtype)
        if empty is not None:
            out = out.masked_fill(empty[:, None, None, None], 0.0)
        return KernelResult(out)


register_backend(SdpaBackend(), priority=PRIORITY)

__all__ = ["SdpaBackend", "PRIORITY"]
