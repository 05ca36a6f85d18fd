"""Public attention ops of vtrack: validation, then dispatch to a backend.

See docs/kernels.md for semantics, numerics and the backend API.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import torch

from . import reference
from .checks import AttentionInputs, build_inputs, check_backend_name
from .dispatch import ANY, Capabilities, KernelResult, dispatch, register_backend

Scalar = Union[float, torch.Tensor]


class ReferenceBackend:
    """Plain PyTorch (materialises [B,H,N,M]); any device and dtype; autograd for gradients."""

    name = "reference"
    capabilities = Capabilities(dtypes=ANY)  # every feature, device and dtype that passes validation

    def unavailable_reason(self) -> Optional[str]:
        """Always available (plain PyTorch)."""
        return None

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """Compute the composed op with :func:`vtrack.kernels.reference.attention`."""
        return reference.attention(inputs)


register_backend(ReferenceBackend(), priority=0)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, topk: Optional[int] = None,
              fda: Optional[Mapping[str, Scalar]] = None, ce: Optional[Mapping[str, Any]] = None,
              scale: Optional[float] = None, key_padding_mask: Optional[torch.Tensor] = None,
              backend: str = "auto") -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Composed attention: dense, optionally top-K sparse, FDA-biased and/or with CE scores.

    Args:
        q: [B,H,N,D]; k, v: [B,H,M,D]; float16/bfloat16/float32 (float64 on the reference).
        topk: keep the ``min(topk, valid keys)`` largest logits per row (ties: lower key index).
        fda: ``dict(alpha=, beta=, delta=)``; floats or tensors of shape [] or [H].
        ce: ``dict(num_template=, keep=, template_index=None)`` (needs N == M); see :func:`ce_attention`.
        scale: logit scale, default ``D ** -0.5``.
        key_padding_mask: bool [B,M], True = ignore that key.
        backend: "auto" or a registered backend name (see :func:`vtrack.kernels.registered_backends`).

    Returns:
        out [B,H,N,D]; with ``ce``: the tuple (out, keep_index [B,keep] int64, score [B,Ls]).
    """
    inputs = build_inputs(q, k, v, scale=scale, key_padding_mask=key_padding_mask, topk=topk, fda=fda, ce=ce)
    res = dispatch(inputs, check_backend_name(backend))
    if inputs.ce is None:
        return res.out
    return res.out, res.keep_index, res.score


def topk_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk: int, *, scale: Optional[float] = None,
                   key_padding_mask: Optional[torch.Tensor] = None, backend: str = "auto") -> torch.Tensor:
    """SparseTT sparse attention: softmax over the ``min(topk, valid keys)`` largest logits of each row.

    Ties go to the lower key index; ``topk >= M`` equals dense attention. Gradients flow to q, k, v
    through the kept entries (the selection is a constant). Returns out [B,H,N,D].
    """
    return attention(q, k, v, topk=topk, scale=scale, key_padding_mask=key_padding_mask, backend=backend)


def fda_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, alpha: Scalar, beta: Scalar, delta: Scalar,
                  scale: Optional[float] = None, key_padding_mask: Optional[torch.Tensor] = None,
                  backend: str = "auto") -> torch.Tensor:
    """ESAT force-directed attention: logits ``scale*q.k + alpha*exp(-delta*d2) - beta*delta*d2``.

    ``d2 = |q_i - k_j|^2`` per head (float32, clamped at 0). alpha, beta, delta: floats or tensors
    of shape [] or [H]; tensors that require grad receive gradients. Returns out [B,H,N,D].
    """
    return attention(q, k, v, fda={"alpha": alpha, "beta": beta, "delta": delta}, scale=scale,
                     key_padding_mask=key_padding_mask, backend=backend)


def ce_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, num_template: int, keep: Union[int, float],
                 template_index: Any = None, fda: Optional[Mapping[str, Scalar]] = None, scale: Optional[float] = None,
                 key_padding_mask: Optional[torch.Tensor] = None,
                 backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OSTrack attention with candidate-elimination scores over N = num_template + Ls tokens.

    Returns ``(out, keep_index, score)``: out [B,H,N,D] is the (optionally FDA) attention over all
    tokens; score [B,Ls] the probability from the template rows ``template_index`` (default the
    square template's centre token) to each search key, averaged over those rows and heads;
    keep_index [B,keep] int64 the search indices of the ``keep`` best scores in descending order
    (ties: lower index). ``keep`` is an int in [1, Ls] or a ratio in (0, 1] -> ceil(ratio*Ls).
    score and keep_index carry no gradient.
    """
    result = attention(q, k, v, fda=fda, scale=scale, key_padding_mask=key_padding_mask, backend=backend,
                       ce={"num_template": num_template, "keep": keep, "template_index": template_index})
    return result  # type: ignore[return-value]  # with ce= the composed op returns the triple
