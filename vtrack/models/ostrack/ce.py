"""Early candidate elimination (OSTrack, sec. 3.2): keep-ratio schedule and token restoration."""
from __future__ import annotations

import math

import torch


def keep_ratio_schedule(epoch: float, *, target: float, start_epoch: int, warmup_epochs: int) -> float:
    """Training keep ratio of candidate elimination at ``epoch`` (may be fractional).

    1.0 before ``start_epoch``; then a half-cosine from 1.0 down to ``target`` over
    ``warmup_epochs`` epochs; ``target`` afterwards (OSTrack's ``adjust_keep_rate``).
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target: expected a keep ratio in (0, 1], got {target}")
    if start_epoch < 0 or warmup_epochs < 0:
        raise ValueError(f"start_epoch/warmup_epochs: expected >= 0, got {start_epoch}, {warmup_epochs}")
    if epoch < start_epoch:
        return 1.0
    if warmup_epochs == 0 or epoch >= start_epoch + warmup_epochs:
        return float(target)
    t = (epoch - start_epoch) / warmup_epochs
    return float(target + (1.0 - target) * 0.5 * (1.0 + math.cos(math.pi * t)))


def template_centre_index(grid_h: int, grid_w: int) -> int:
    """Index of the template token at the centre of a ``grid_h x grid_w`` grid: floor(W/2) + W*floor(H/2)."""
    if grid_h <= 0 or grid_w <= 0:
        raise ValueError(f"grid_h/grid_w: expected positive sizes, got {grid_h}x{grid_w}")
    return grid_w // 2 + grid_w * (grid_h // 2)


def restore_search_tokens(tokens: torch.Tensor, global_index: torch.Tensor, num_search: int) -> torch.Tensor:
    """Put kept search tokens back at their original positions, zeros elsewhere.

    Args:
        tokens: [B, K, C] kept search tokens.
        global_index: [B, K] int64 original positions (0..num_search-1) of ``tokens``.
        num_search: original number of search tokens Ns.

    Returns:
        [B, Ns, C] with ``out[b, global_index[b, i]] = tokens[b, i]`` and zeros at eliminated positions.
    """
    if tokens.dim() != 3 or global_index.shape != tokens.shape[:2]:
        raise ValueError(
            f"global_index: expected shape {tuple(tokens.shape[:2])} matching tokens {tuple(tokens.shape)}, "
            f"got {tuple(global_index.shape)}"
        )
    if global_index.dtype != torch.int64:
        raise TypeError(f"global_index: expected int64, got {global_index.dtype}")
    B, K, C = tokens.shape
    if K > num_search:
        raise ValueError(f"num_search: expected at least the {K} kept tokens, got {num_search}")
    out = tokens.new_zeros(B, num_search, C)
    return out.scatter(1, global_index.unsqueeze(-1).expand(B, K, C), tokens)
