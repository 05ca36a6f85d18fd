"""SparseTT's double-head predictor (after Double-Head R-CNN, Wu et al. 2020).

Both heads work per score-map location and predict a foreground logit and a box as distances
(left, top, right, bottom) from the location's centre in search-crop pixels:

* fc-head: two fully connected layers applied at every location (1x1 convolutions), then linear
  classification and regression outputs — the head the paper prefers for classification;
* conv-head: one residual block followed by ``L - 1`` bottleneck blocks, then the same outputs —
  preferred for regression.

Training supervises both tasks on both heads; at inference the two classification probabilities
are fused (:func:`fuse_scores`) and the box comes from the conv-head only.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BasicResBlock", "Bottleneck", "DoubleHead", "fuse_scores"]


def fuse_scores(p_fc: torch.Tensor, p_conv: torch.Tensor) -> torch.Tensor:
    """Fuse fc-head and conv-head foreground probabilities: ``p_fc + p_conv * (1 - p_fc)``.

    The rule of the SparseTT release (and Double-Head R-CNN's complementary fusion): a location
    is background only if both heads say so, ``1 - p = (1 - p_fc)(1 - p_conv)``. Inputs are
    probabilities in [0, 1] of the same shape.
    """
    if not isinstance(p_fc, torch.Tensor) or not isinstance(p_conv, torch.Tensor):
        raise TypeError(f"p_fc/p_conv: expected tensors, got {type(p_fc).__name__}, {type(p_conv).__name__}")
    if p_fc.shape != p_conv.shape:
        raise ValueError(f"p_fc/p_conv: expected equal shapes, got {tuple(p_fc.shape)} and {tuple(p_conv.shape)}")
    return p_fc + p_conv * (1.0 - p_fc)


class BasicResBlock(nn.Module):
    """Residual block of the conv-head: 3x3 conv-BN-ReLU, 1x1 conv-BN, plus a 1x1 conv-BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                      nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in, H, W] -> [B, out, H, W]."""
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 reduce to C/4, 3x3, 1x1 expand, identity shortcut)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = max(channels // 4, 1)
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        return self.relu(x + self.body(x))


class DoubleHead(nn.Module):
    """fc-head + conv-head over a [B, C, H, W] feature map.

    Args:
        in_channels: input channels C.
        channels: hidden width of both heads (1024 in the SparseTT release).
        num_conv_blocks: L, the conv-head's blocks (1 residual + L-1 bottlenecks); paper: 8.
        stride: score-map stride in pixels (scales the regressed distances).
        prior_prob: initial foreground probability of the classification outputs.

    ``forward`` returns a dict of ``cls_fc``, ``cls_conv`` [B, 1, H, W] logits and
    ``ltrb_fc``, ``ltrb_conv`` [B, 4, H, W] positive distances in pixels
    (``exp(s * t + b) * stride`` with a learnt scale s and bias b per head, as in the release).
    """

    def __init__(self, in_channels: int, channels: int = 1024, num_conv_blocks: int = 8, *, stride: int = 16,
                 prior_prob: float = 0.01) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("channels", channels),
                          ("num_conv_blocks", num_conv_blocks), ("stride", stride)):
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"{name}: expected a positive int, got {val!r}")
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"prior_prob: expected a float in (0, 1), got {prior_prob!r}")
        self.stride = stride
        self.fc_branch = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True))
        self.conv_branch = nn.Sequential(BasicResBlock(in_channels, channels),
                                         *[Bottleneck(channels) for _ in range(num_conv_blocks - 1)])
        self.fc_cls = nn.Conv2d(channels, 1, 1)
        self.fc_reg = nn.Conv2d(channels, 4, 1)
        self.conv_cls = nn.Conv2d(channels, 1, 1)
        self.conv_reg = nn.Conv2d(channels, 4, 1)
        self.reg_scale = nn.Parameter(torch.ones(2))
        self.reg_bias = nn.Parameter(torch.zeros(2))
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float) -> None:
        for m in self.fc_branch.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.conv_branch.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        bias = -math.log((1.0 - prior_prob) / prior_prob)
        for cls in (self.fc_cls, self.conv_cls):
            nn.init.normal_(cls.weight, std=0.01)
            nn.init.constant_(cls.bias, bias)
        for reg in (self.fc_reg, self.conv_reg):
            nn.init.normal_(reg.weight, std=0.001)
            nn.init.zeros_(reg.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predict logits and ltrb distances from features ``x`` [B, C, H, W]."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x: expected a feature map [B, C, H, W], got {getattr(x, 'shape', type(x).__name__)}")
        f = self.fc_branch(x)
        c = self.conv_branch(x)
        # clamp the exponent so an early bad step cannot overflow to inf (exp(12) * 16 ~ 2.6e6 px)
        ltrb_fc = torch.exp((self.reg_scale[0] * self.fc_reg(f) + self.reg_bias[0]).clamp(max=12.0)) * self.stride
        ltrb_conv = torch.exp((self.reg_scale[1] * self.conv_reg(c) + self.reg_bias[1]).clamp(max=12.0)) * self.stride
        return {"cls_fc": self.fc_cls(f), "cls_conv": self.conv_cls(c), "ltrb_fc": ltrb_fc, "ltrb_conv": ltrb_conv}
