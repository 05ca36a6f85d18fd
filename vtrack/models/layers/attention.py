"""Multi-head attention over the fused kernels of :mod:`vtrack.kernels`.

One module serves every tracker: it owns the qkv/output projections (timm's parameter layout,
``qkv`` and ``proj``, so pretrained ViT weights load unchanged) and hands the per-head tensors
to a kernel chosen by its options:

* plain softmax attention (``vtrack.kernels.attention``),
* top-k sparse attention (SparseTT) with ``topk=K``,
* force-directed attention (ESAT) with ``fda=FDAConfig(...)`` (alpha/beta/delta, optionally learnable),
* candidate-elimination attention (OSTrack) through :meth:`Attention.forward_ce`, which also
  returns the indices of the search tokens to keep and their scores (FDA may be combined).

The kernel backend (``"auto"`` or any backend registered with the dispatcher, e.g. ``"reference"``,
``"triton"``, ``"cpp"``, ``"cuda"``) comes from the config and can be switched later with
:meth:`Attention.set_backend` (:class:`vtrack.models.layers.backend.BackendSwitchable`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vtrack import kernels
from vtrack.kernels.checks import FDAParams
from vtrack.models.layers.backend import KernelLayer, check_backend

@dataclass(frozen=True)
class FDAConfig(FDAParams):
    """Force-directed attention constants (ESAT, eq. 5-7): the ``fda`` config section, and (being
    a :class:`vtrack.kernels.FDAParams`) what the kernels receive when the constants are fixed.

    logits' = q.k * scale + alpha * exp(-A) - beta * A with A = delta * ||q - k||^2.

    Attributes:
        alpha: weight of the attractive term.
        beta: weight of the repulsive term.
        delta: scale of the squared query-key distance.
        learnable: make alpha, beta and delta trainable parameters (delta kept positive through
            a log parameterisation).
    """

    alpha: float = 0.1
    beta: float = 0.1
    delta: float = 1.0 / 64.0
    learnable: bool = False

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "delta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TypeError(f"fda.{name}: expected a finite float, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.delta <= 0:
            raise ValueError(f"fda.delta: expected a positive value, got {self.delta}")
        if not isinstance(self.learnable, bool):
            raise TypeError(f"fda.learnable: expected bool, got {self.learnable!r}")

    @classmethod
    def from_any(cls, value: "FDAConfig | Mapping[str, Any] | None") -> "FDAConfig | None":
        """Build from a mapping (config section), pass an FDAConfig through, None stays None."""
        if value is None or isinstance(value, FDAConfig):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"fda: expected a mapping with alpha/beta/delta or FDAConfig, got {type(value).__name__}")
        unknown = set(value) - {"alpha", "beta", "delta", "learnable"}
        if unknown:
            raise ValueError(f"fda: unknown keys {sorted(unknown)}; expected alpha, beta, delta, learnable")
        return cls(**dict(value))


class Attention(KernelLayer, nn.Module):
    """Multi-head (self- or cross-) attention whose core runs on :mod:`vtrack.kernels`.

    Args:
        dim: token width.
        num_heads: number of heads (``dim`` must divide evenly).
        qkv_bias: bias on the qkv projection.
        proj_drop: dropout after the output projection.
        backend: kernel backend name (``"auto"`` or a registered backend, see :func:`vtrack.kernels.check_backend`).
        topk: keep the ``topk`` largest logits per query row (sparse attention); None = dense.
        fda: force-directed attention constants (mapping or :class:`FDAConfig`); None = off.

    ``topk`` and ``fda`` are exclusive. State-dict keys match timm's ``Attention`` (``qkv``, ``proj``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        backend: str = "auto",
        topk: int | None = None,
        fda: FDAConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        if not isinstance(num_heads, int) or num_heads <= 0 or dim % num_heads:
            raise ValueError(f"num_heads: expected a positive divisor of dim={dim}, got {num_heads!r}")
        if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int) or topk <= 0):
            raise ValueError(f"topk: expected a positive int or None, got {topk!r}")
        fda_cfg = FDAConfig.from_any(fda)
        if topk is not None and fda_cfg is not None:
            raise ValueError("topk/fda: sparse top-k and force-directed attention cannot be combined")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.topk = topk
        self.backend = check_backend(backend)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fda_learnable = bool(fda_cfg is not None and fda_cfg.learnable)
        self.use_fda = fda_cfg is not None
        self._fda_fixed: FDAConfig | None = None
        if fda_cfg is not None:
            if fda_cfg.learnable:
                self.fda_alpha = nn.Parameter(torch.tensor(fda_cfg.alpha))
                self.fda_beta = nn.Parameter(torch.tensor(fda_cfg.beta))
                self.fda_log_delta = nn.Parameter(torch.tensor(math.log(fda_cfg.delta)))
            else:
                self._fda_fixed = fda_cfg  # plain floats: no device sync per call

    def fda_params(self) -> FDAParams | None:
        """Current FDA constants for the kernels: the fixed config (floats), or 0-dim tensors when
        learnable; None when off."""
        if not self.use_fda:
            return None
        if self._fda_fixed is not None:
            return self._fda_fixed
        return FDAParams(self.fda_alpha, self.fda_beta, self.fda_log_delta.exp())

    def extra_repr(self) -> str:
        mode = "fda" if self.use_fda else (f"topk={self.topk}" if self.topk else "dense")
        return f"dim={self.dim}, heads={self.num_heads}, {mode}, backend={self.backend}"

    def _project(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x: expected [B, N, {self.dim}], got {tuple(x.shape)}")
        B, N, C = x.shape
        H, D = self.num_heads, self.head_dim
        if context is None:
            qkv = self.qkv(x).reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)
            return qkv[0], qkv[1], qkv[2]
        if context.dim() != 3 or context.shape[0] != B or context.shape[-1] != C:
            raise ValueError(f"context: expected [{B}, M, {C}], got {tuple(context.shape)}")
        M = context.shape[1]
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(x, w[:C], None if b is None else b[:C]).reshape(B, N, H, D).transpose(1, 2)
        kv = F.linear(context, w[C:], None if b is None else b[C:]).reshape(B, M, 2, H, D).permute(2, 0, 3, 1, 4)
        return q, kv[0], kv[1]

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        B, H, N, D = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, N, H * D)))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` [B, N, C] to itself, or to ``context`` [B, M, C] (cross-attention).

        ``key_padding_mask`` [B, M] bool marks keys to ignore (True = ignore).
        """
        q, k, v = self._project(x, context)
        out = kernels.attention(
            q, k, v, topk=None if self.topk is None else min(self.topk, k.shape[2]), fda=self.fda_params(),
            scale=self.scale, key_padding_mask=key_padding_mask, backend=self.backend,
        )
        return self._merge(out)

    def forward_ce(
        self,
        x: torch.Tensor,
        *,
        num_template: int,
        keep: int,
        template_index: torch.Tensor | int | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention over [template; search] tokens with candidate elimination scores.

        Args:
            x: [B, Nz + Ns, C] tokens, the ``num_template`` template tokens first.
            num_template: number of template tokens Nz.
            keep: number of search tokens to keep (1..Ns).
            template_index: int or 1-D int tensor: the template tokens whose attention over the
                search tokens ranks the candidates; None = the centre of a square template (OSTrack).
            key_padding_mask: optional [B, N] bool, True = ignore that key.

        Returns:
            (out [B, N, C] after the output projection, keep_index [B, keep] int64 indices into the
            current search tokens, score [B, Ns] head-averaged attention of the template tokens).
        """
        if not isinstance(num_template, int) or not 0 < num_template < x.shape[1]:
            raise ValueError(f"num_template: expected an int in 1..{x.shape[1] - 1}, got {num_template!r}")
        num_search = x.shape[1] - num_template
        if isinstance(keep, bool) or not isinstance(keep, int) or not 0 < keep <= num_search:
            raise ValueError(f"keep: expected an int in 1..{num_search}, got {keep!r}")
        q, k, v = self._project(x, None)
        out, keep_index, score = kernels.ce_attention(
            q, k, v, num_template=num_template, keep=keep, template_index=template_index,
            fda=self.fda_params(), scale=self.scale, key_padding_mask=key_padding_mask, backend=self.backend,
        )
        return self._merge(out), keep_index.long(), score
