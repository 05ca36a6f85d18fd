"""Convolutional prediction heads on 2-D token maps (OSTrack-style centre head)."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU, padding keeps the spatial size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_branch(in_channels: int, channels: int, num_layers: int, out_channels: int) -> nn.Sequential:
    """``num_layers`` conv-BN-ReLU layers halving the width each time (first: ``channels``), then a 1x1 conv."""
    if num_layers < 1:
        raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    c_in, c_out = in_channels, channels
    for _ in range(num_layers):
        layers.append(conv_bn_relu(c_in, c_out))
        c_in, c_out = c_out, max(c_out // 2, 1)
    layers.append(nn.Conv2d(c_in, out_channels, kernel_size=1))
    return nn.Sequential(*layers)


def decode_center_boxes(score: torch.Tensor, size: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one box per image at the argmax of ``score``.

    Args:
        score: [B, 1, H, W] score map (any non-negative ranking: probabilities, windowed scores or
            a ground-truth heatmap).
        size: [B, 2, H, W] normalised (w, h) in [0, 1] of the map extent.
        offset: [B, 2, H, W] sub-cell (x, y) offsets in cells.

    Returns:
        (boxes [B, 4] as normalised (cx, cy, w, h), max score [B]).
    """
    if score.dim() != 4 or score.shape[1] != 1:
        raise ValueError(f"score: expected [B, 1, H, W], got {tuple(score.shape)}")
    B, _, H, W = score.shape
    for name, t in (("size", size), ("offset", offset)):
        if t.shape != (B, 2, H, W):
            raise ValueError(f"{name}: expected [{B}, 2, {H}, {W}], got {tuple(t.shape)}")
    max_score, idx = score.flatten(1).max(dim=1)
    iy = torch.div(idx, W, rounding_mode="floor")
    ix = idx - iy * W
    gather = idx.view(B, 1, 1).expand(B, 2, 1)
    wh = size.flatten(2).gather(2, gather).squeeze(-1)
    off = offset.flatten(2).gather(2, gather).squeeze(-1)
    cx = (ix.to(off.dtype) + off[:, 0]) / W
    cy = (iy.to(off.dtype) + off[:, 1]) / H
    return torch.stack([cx, cy, wh[:, 0], wh[:, 1]], dim=1), max_score


class CenterHead(nn.Module):
    """Centre-based box head (OSTrack): three conv-BN-ReLU branches for score, offset and size.

    Args:
        in_channels: channels of the input feature map.
        channels: width of the first conv layer in each branch (halved per layer).
        num_layers: conv-BN-ReLU layers per branch (OSTrack: 4).

    ``forward(feat [B, C, H, W])`` returns a dict with ``score_map`` [B,1,H,W] (sigmoid, clamped to
    [1e-4, 1-1e-4]), ``size_map`` [B,2,H,W] (sigmoid), ``offset_map`` [B,2,H,W] and ``boxes``
    [B,4] normalised (cx, cy, w, h) decoded at the score argmax.
    """

    def __init__(self, in_channels: int, channels: int = 256, num_layers: int = 4) -> None:
        super().__init__()
        if in_channels <= 0 or channels <= 0:
            raise ValueError(f"in_channels/channels: expected positive ints, got {in_channels}, {channels}")
        self.score = conv_branch(in_channels, channels, num_layers, 1)
        self.offset = conv_branch(in_channels, channels, num_layers, 2)
        self.size = conv_branch(in_channels, channels, num_layers, 2)
        self._init_weights()

    def _init_weights(self) -> None:
        # PyTorch's default conv init; the score logits start at the CenterNet prior p = 0.1
        nn.init.constant_(self.score[-1].bias, -2.19)

    def forward(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predict score/size/offset maps and decode the argmax box."""
        if feat.dim() != 4:
            raise ValueError(f"feat: expected [B, C, H, W], got {tuple(feat.shape)}")
        score = self.score(feat).sigmoid().clamp(1e-4, 1 - 1e-4)
        size = self.size(feat).sigmoid()
        offset = self.offset(feat)
        boxes, max_score = decode_center_boxes(score.detach(), size, offset)
        return {"score_map": score, "size_map": size, "offset_map": offset, "boxes": boxes, "box_score": max_score}
