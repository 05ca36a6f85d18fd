"""Position-embedding helpers: resample learned absolute embeddings to a new token grid."""
from __future__ import annotations

import math

import torch

from vtrack._compat import import_timm


def grid_size(num_tokens: int) -> tuple[int, int]:
    """Side lengths of a square token grid holding ``num_tokens`` tokens."""
    side = int(round(math.sqrt(num_tokens)))
    if side * side != num_tokens:
        raise ValueError(f"num_tokens: expected a square number of grid tokens, got {num_tokens}")
    return side, side


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_size: tuple[int, int],
    *,
    old_size: tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
    keep_prefix: bool = False,
) -> torch.Tensor:
    """Resample a [1, P + H*W, C] position embedding to the grid ``new_size`` (bicubic, timm's helper).

    Args:
        pos_embed: embedding with ``num_prefix_tokens`` leading (class/register) tokens.
        new_size: (H', W') target grid.
        old_size: (H, W) source grid; inferred as square when None.
        num_prefix_tokens: number of leading non-grid tokens in ``pos_embed``.
        keep_prefix: keep the prefix tokens in the result (dropped by default, as OSTrack has none).

    Returns:
        [1, (P if keep_prefix else 0) + H'*W', C] tensor.
    """
    if not isinstance(pos_embed, torch.Tensor) or pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        shape = tuple(pos_embed.shape) if isinstance(pos_embed, torch.Tensor) else type(pos_embed).__name__
        raise ValueError(f"pos_embed: expected a [1, N, C] tensor, got {shape}")
    if len(new_size) != 2 or min(new_size) <= 0:
        raise ValueError(f"new_size: expected two positive ints, got {new_size!r}")
    if not 0 <= num_prefix_tokens < pos_embed.shape[1]:
        raise ValueError(f"num_prefix_tokens: expected 0..{pos_embed.shape[1] - 1}, got {num_prefix_tokens}")
    n_grid = pos_embed.shape[1] - num_prefix_tokens
    if old_size is None:
        old_size = grid_size(n_grid)
    elif old_size[0] * old_size[1] != n_grid:
        raise ValueError(f"old_size: {tuple(old_size)} does not hold the {n_grid} grid tokens of pos_embed")
    timm = import_timm()
    out = timm.layers.resample_abs_pos_embed(
        pos_embed, list(new_size), old_size=list(old_size), num_prefix_tokens=num_prefix_tokens,
        interpolation="bicubic", antialias=False,
    )
    if num_prefix_tokens and not keep_prefix:
        out = out[:, num_prefix_tokens:]
    return out
