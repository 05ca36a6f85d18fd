"""ResNet backbone (timm) without dilation, with the deeper blocks interpolated to stride 8.

DuML (appendix B) replaces SiamRPN++'s dilated ResNet-50 by the original ResNet: the outputs of
block2, block3 and block4 (strides 8, 16, 32) are taken and the two deeper maps are bilinearly
interpolated to the stride-8 size, so the three layers can be correlated and aggregated
layer-wise. Each map is then reduced to a common width by a 1x1 convolution (+BN, as in
SiamRPN++'s ``AdjustLayer``).
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vtrack._compat import import_timm

log = logging.getLogger(__name__)

#: timm model names this backbone accepts (all plain ResNets with a stride-8 ``layer2``).
SUPPORTED = ("resnet10t", "resnet14t", "resnet18", "resnet26", "resnet34", "resnet50", "resnet101")

#: Base widths of the four stages of every ResNet in :data:`SUPPORTED` (timm's ``channels``).
STAGE_CHANNELS = (64, 128, 256, 512)


class ResNetBackbone(nn.Module):
    """timm ResNet returning block2..block4 at stride 8, each reduced to ``out_channels``.

    Args:
        name: timm model name (see :data:`SUPPORTED`); ``resnet50`` for the paper, ``resnet18``
            or ``resnet10t`` (fewer blocks) for CPU-sized models.
        out_indices: timm feature indices; 2, 3, 4 are block2, block3, block4.
        out_channels: width after the 1x1 adjust convolutions (256 in the paper).
        pretrained: path of a local checkpoint (a timm/torchvision ResNet state dict, optionally
            wrapped under ``"state_dict"`` or ``"model"``), or None for random initialisation.
            Nothing is downloaded.
        frozen_stages: number of leading stages whose parameters are frozen (0 = none; 1 freezes
            the stem, 2 the stem and layer1, ...), as SiamRPN++ keeps the early layers fixed.
        width: multiplier of the four stages' channels (64, 128, 256, 512 times ``width``; the
            stem is unchanged): 0.5 gives a half-width ResNet with about a quarter of the
            parameters and FLOPs, for CPU-sized trackers. A local ``pretrained`` checkpoint must
            have the same widths.

    ``forward(x)`` takes ``[B,3,H,W]`` and returns a list of ``len(out_indices)`` tensors, each
    ``[B,out_channels,h,w]`` with ``(h, w)`` the stride-8 feature size of the input.
    """

    def __init__(
        self,
        name: str = "resnet50",
        out_indices: Sequence[int] = (2, 3, 4),
        out_channels: int = 256,
        pretrained: str | None = None,
        frozen_stages: int = 0,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if name not in SUPPORTED:
            raise ValueError(f"name: expected one of {SUPPORTED}, got {name!r}")
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i not in (2, 3, 4) for i in out_indices):
            raise ValueError(f"out_indices: expected a non-empty subset of (2, 3, 4), got {out_indices}")
        if not isinstance(out_channels, int) or out_channels <= 0:
            raise ValueError(f"out_channels: expected a positive int, got {out_channels!r}")
        if not isinstance(frozen_stages, int) or not 0 <= frozen_stages <= 5:
            raise ValueError(f"frozen_stages: expected an int in [0, 5], got {frozen_stages!r}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise ValueError(f"width: expected a number in (0, 4], got {width!r}")
        timm = import_timm()
        # width scales the four stages' channels (timm's ``channels``); the stem keeps its own.
        kwargs = {} if width == 1 else {"channels": tuple(max(8, round(c * width)) for c in STAGE_CHANNELS)}
        self.body = timm.create_model(name, pretrained=False, features_only=True, out_indices=out_indices, **kwargs)
        if pretrained:
            self.load_pretrained(pretrained)
        self.name = name
        self.width = float(width)
        self.out_indices = out_indices
        self.out_channels = out_channels
        self.in_channels = list(self.body.feature_info.channels())
        self.reductions = list(self.body.feature_info.reduction())
        self.stride = min(self.reductions)
        self.adjust = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            for c in self.in_channels
        )
        self._freeze(frozen_stages)

    def _freeze(self, frozen_stages: int) -> None:
        stages = [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
        names = [n for group in stages[:frozen_stages] for n in group]
        for n, p in self.body.named_parameters():
            if n.split(".")[0] in names:
                p.requires_grad_(False)

    def load_pretrained(self, path: str) -> None:
        """Load a local ResNet checkpoint into the trunk (the classifier head is ignored)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"pretrained: expected a checkpoint path, got {type(path).__name__}")
        if not os.path.isfile(path):
            raise ValueError(f"pretrained: checkpoint file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict):
            raise ValueError(f"pretrained: expected a state dict in {path}, got {type(state).__name__}")
        state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
        own = self.body.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise ValueError(f"pretrained: no parameter of {path} matches the backbone")
        missing = sorted(set(own) - set(usable))
        self.body.load_state_dict(usable, strict=False)
        log.info("loaded %d tensors from %s (%d backbone tensors left at init)", len(usable), path, len(missing))
        if missing:
            log.warning("pretrained: %d backbone tensors not in %s, e.g. %s", len(missing), path, missing[:3])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the adjusted block features, all at the stride-8 size of ``x``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x: expected [B,3,H,W], got {tuple(x.shape)}")
        feats = self.body(x)
        size = feats[0].shape[-2:]
        out = []
        for f, adj in zip(feats, self.adjust):
            # The 1x1 conv and bilinear interpolation are both linear and commute; reducing the
            # channels first interpolates 256 channels instead of 1024/2048.
            f = adj(f)
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            out.append(f)
        return out
