"""ModaMixer (VLT eq. 1): the language vector re-weights the channels of a vision feature.

``f_m = Block_ASS(Linear(f_l) ⊙ f_v) + Block_ASS'(f_v)``: a linear layer maps the sentence vector
to the C channels, a Hadamard product selects channels at every position, and two independently
searched post-processing blocks (one for the mixed, one for the pure vision feature) are summed;
the second term is the residual connection of the paper (switchable for its ablation).
"""
from __future__ import annotations

from collections.abc import Sequence as Seq

import torch
from torch import nn

from vtrack.models.vlt.supernet import ChoiceBlock


class ModaMixer(nn.Module):
    """Language-conditioned channel selection with searchable post-processing blocks.

    Args:
        channels: vision feature channels C.
        lang_dim: language vector size d.
        residual: keep the pure-vision branch (the paper's residual; default True).
    """

    def __init__(self, channels: int, lang_dim: int, residual: bool = True) -> None:
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f"channels: expected an even int >= 2, got {channels}")
        if lang_dim < 1:
            raise ValueError(f"lang_dim: expected a positive int, got {lang_dim}")
        self.channels = channels
        self.lang_dim = lang_dim
        self.residual = residual
        self.proj = nn.Linear(lang_dim, channels)
        self.block_mixed = ChoiceBlock(channels, channels, 1)
        self.block_pure = ChoiceBlock(channels, channels, 1) if residual else None

    def forward(self, f_v: torch.Tensor, f_l: torch.Tensor, choices: Seq[int] = (0, 0)) -> torch.Tensor:
        """Mix ``f_v`` [B, C, H, W] with ``f_l`` [B, d]; ``choices`` = (mixed, pure) block choices."""
        if f_v.dim() != 4 or f_v.shape[1] != self.channels:
            raise ValueError(f"f_v: expected [B, {self.channels}, H, W], got {tuple(f_v.shape)}")
        if f_l.dim() != 2 or f_l.shape != (f_v.shape[0], self.lang_dim):
            raise ValueError(f"f_l: expected [{f_v.shape[0]}, {self.lang_dim}], got {tuple(f_l.shape)}")
        selector = self.proj(f_l.to(f_v.dtype))[:, :, None, None]
        out = self.block_mixed(selector * f_v, int(choices[0]))
        if self.block_pure is not None:
            out = out + self.block_pure(f_v, int(choices[1]))
        return out
