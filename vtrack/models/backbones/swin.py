"""Swin Transformer feature extractor (timm) for siamese trackers.

:class:`SwinBackbone` wraps a timm Swin model built with ``features_only`` and returns one NCHW
feature map of a chosen stage (default: stage 3, stride 16, 384 channels for Swin-T, as in
SparseTT). Inputs of any size are accepted: the image is zero-padded on the right/bottom to a
multiple of the patch size and timm's dynamic window masks handle the rest (127 px -> 8x8,
289 px -> 19x19 at stride 16).

Pretrained weights are read from a local file (``torch.load(weights_only=True)``) in timm's
layout (``layers.N.blocks...``, downsample at the start of a stage) or the original Microsoft
layout (downsample at the end of a stage, as in ``swin_tiny_patch4_window7_224.pth``); the keys
of stages after the returned one and the classifier are ignored.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vtrack._compat import import_timm

log = logging.getLogger(__name__)

__all__ = ["SwinBackbone", "convert_swin_state_dict", "swin_feature_size"]

_STATE_KEYS = ("model", "state_dict")


def convert_swin_state_dict(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Convert a Swin checkpoint (timm or original Microsoft layout) to timm's full-model layout.

    Unwraps ``{"model": ...}`` / ``{"state_dict": ...}``, drops non-persistent buffers
    (``relative_position_index``, ``attn_mask``) and moves the original layout's end-of-stage
    ``layers.i.downsample`` to timm's start-of-stage ``layers.{i+1}.downsample``.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of parameter names to tensors, got {type(state_dict).__name__}")
    for key in _STATE_KEYS:
        inner = state_dict.get(key)
        if isinstance(inner, Mapping):
            state_dict = inner
    old_layout = "layers.0.downsample.reduction.weight" in state_dict
    out: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state_dict[{k!r}]: expected a tensor, got {type(v).__name__}")
        if "relative_position_index" in k or "attn_mask" in k:
            continue
        if k.startswith("module."):
            k = k[len("module."):]
        if old_layout:
            k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k)
        out[k] = v
    return out


def swin_feature_size(input_size: int, out_index: int, patch_size: int = 4) -> int:
    """Side of stage ``out_index``'s feature map for a square input of ``input_size`` pixels.

    The input is padded to a multiple of ``patch_size``; each patch merging halves the side,
    rounding up (odd sides are padded).
    """
    for name, val in (("input_size", input_size), ("patch_size", patch_size)):
        if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise ValueError(f"{name}: expected a positive int, got {val!r}")
    if isinstance(out_index, bool) or not isinstance(out_index, int) or out_index < 0:
        raise ValueError(f"out_index: expected an int >= 0, got {out_index!r}")
    side = -(-input_size // patch_size)
    for _ in range(out_index):
        side = -(-side // 2)
    return side


class SwinBackbone(nn.Module):
    """One stage's features of a timm Swin Transformer, NCHW.

    Args:
        variant: timm model name (e.g. ``"swin_tiny_patch4_window7_224"``).
        out_index: 0-based stage whose output is returned (2 = stage 3, stride 16).
        pretrained: path of a local checkpoint to load (see :meth:`load_pretrained`), or None.
        drop_path_rate: stochastic depth rate.
        model_kwargs: extra timm constructor arguments, e.g. ``embed_dim``, ``depths``,
            ``num_heads``, ``window_size`` for a reduced Swin.
    """

    def __init__(self, variant: str = "swin_tiny_patch4_window7_224", *, out_index: int = 2,
                 pretrained: str | os.PathLike | None = None, drop_path_rate: float = 0.0,
                 model_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(variant, str) or not variant.startswith("swin"):
            raise ValueError(f"variant: expected a timm Swin model name (swin_*), got {variant!r}")
        if isinstance(out_index, bool) or not isinstance(out_index, int) or out_index < 0:
            raise ValueError(f"out_index: expected an int >= 0, got {out_index!r}")
        if not isinstance(drop_path_rate, (int, float)) or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate: expected a float in [0, 1), got {drop_path_rate!r}")
        kwargs = dict(model_kwargs or {})
        depths = kwargs.get("depths")
        if depths is not None and out_index >= len(depths):
            raise ValueError(f"out_index: expected < {len(depths)} (number of stages), got {out_index}")
        timm = import_timm()
        self.variant = variant
        self.out_index = out_index
        self.body = timm.create_model(variant, pretrained=False, features_only=True, out_indices=(out_index,),
                                      strict_img_size=False, drop_path_rate=float(drop_path_rate), **kwargs)
        self.out_channels: int = int(self.body.feature_info.channels()[0])
        self.stride: int = int(self.body.feature_info.reduction()[0])
        self.patch_size: int = int(self.body.patch_embed.proj.kernel_size[0])
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def output_size(self, input_size: int) -> int:
        """Side of the feature map for a square input of side ``input_size`` pixels."""
        return swin_feature_size(input_size, self.out_index, self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, out_channels, ceil(H/stride), ceil(W/stride)]`` of images ``x`` [B, 3, H, W]."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected an image tensor [B, 3, H, W], got {shape}")
        pad_h = (-x.shape[2]) % self.patch_size
        pad_w = (-x.shape[3]) % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        feat = self.body(x)[0]  # timm Swin features are NHWC
        return feat.permute(0, 3, 1, 2).contiguous()

    def load_pretrained(self, path: str | os.PathLike, *, strict: bool = True) -> list[str]:
        """Load Swin weights from the local file ``path``; returns the checkpoint keys left unused.

        Keys of the kept stages must all be present (``strict``) and match in shape; later stages,
        the final norm and the classifier head are ignored.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"pretrained: no checkpoint file at {path!r}")
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = convert_swin_state_dict(raw)
        own = self.body.state_dict()
        # FeatureListNet flattens "layers.0" into "layers_0"
        mapped: dict[str, torch.Tensor] = {}
        unused: list[str] = []
        for k, v in state.items():
            name = re.sub(r"^layers\.(\d+)\.", r"layers_\1.", k)
            if name in own:
                if own[name].shape != v.shape:
                    raise ValueError(
                        f"pretrained: {k!r} has shape {tuple(v.shape)} in {path}, the model expects "
                        f"{tuple(own[name].shape)} (another Swin variant or window size?)")
                mapped[name] = v
            else:
                unused.append(k)
        missing = sorted(set(own) - set(mapped))
        if strict and missing:
            raise ValueError(f"pretrained: {len(missing)} parameters missing from {path}, e.g. {missing[:5]}")
        self.body.load_state_dict(mapped, strict=False)
        log.info("loaded %d Swin tensors from %s (%d unused, e.g. later stages/head)", len(mapped), path, len(unused))
        return unused

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"variant={self.variant!r}, out_index={self.out_index}, channels={self.out_channels}, stride={self.stride}"

