"""Matching and localisation heads of the two VLT trackers.

* :class:`CARHead` (VLT_SCAR): SiamCAR's depth-wise cross-correlation followed by the
  classification / centerness / ltrb-regression towers.
* :class:`TTFusionHead` (VLT_TT): TransT-style feature fusion -- ego-context augment (self-attention)
  on each branch and cross-feature augment (cross-attention) between them, attention running on
  :mod:`vtrack.kernels` -- then TransT's classification and box MLPs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtrack.models.layers.transformer import FeedForward, MultiHeadAttention, sine_position_encoding


def depthwise_xcorr(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depth-wise cross-correlation: each channel of ``kernel`` [B,C,h,w] slides over the same
    channel of ``search`` [B,C,H,W] -> [B,C,H-h+1,W-w+1]."""
    if search.dim() != 4 or kernel.dim() != 4 or search.shape[:2] != kernel.shape[:2]:
        raise ValueError(f"search/kernel: expected [B,C,H,W] and [B,C,h,w], got {tuple(search.shape)} and {tuple(kernel.shape)}")
    b, c, h, w = search.shape
    out = F.conv2d(search.reshape(1, b * c, h, w), kernel.reshape(b * c, 1, *kernel.shape[2:]), groups=b * c)
    return out.reshape(b, c, *out.shape[2:])


def score_offset(search_size: int, score_size: int, stride: int) -> float:
    """Pixel position of score cell 0: the centre cell sits at ``search_size // 2``."""
    return float(search_size // 2 - (score_size // 2) * stride)


def _tower(channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(min(32, channels), channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class CARHead(nn.Module):
    """SiamCAR head: xcorr, a 1x1 adjust, cls/ctr and ltrb towers.

    Outputs ``cls`` and ``ctr`` logits [B,1,S,S] and ``ltrb`` [B,4,S,S] distances in search-crop
    pixels (ReLU-scaled by the stride, FCOS's normalised-regression convention).
    """

    def __init__(self, channels: int = 256, tower_depth: int = 4, stride: int = 8, template_crop: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.template_crop = template_crop
        self.adjust = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.cls_tower = _tower(channels, tower_depth)
        self.box_tower = _tower(channels, tower_depth)
        self.cls_logits = nn.Conv2d(channels, 1, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        nn.init.constant_(self.cls_logits.bias, -4.6)  # prior 0.01 (focal loss convention)

    def _crop(self, z: torch.Tensor) -> torch.Tensor:
        c = self.template_crop
        if c is None or c >= z.shape[-1]:
            return z
        s = (z.shape[-1] - c) // 2
        return z[..., s : s + c, s : s + c]

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``z`` template [B,C,h,w], ``x`` search [B,C,H,W] features -> head outputs."""
        feat = self.adjust(depthwise_xcorr(x, self._crop(z)))
        cls_t = self.cls_tower(feat)
        return {
            "cls": self.cls_logits(cls_t),
            "ctr": self.centerness(cls_t),
            "ltrb": F.relu(self.bbox_pred(self.box_tower(feat))) * self.stride,
        }

    def locations(self, score_size: int, search_size: int, device: torch.device | None = None) -> torch.Tensor:
        """Search-crop pixel coordinates [S*S, 2] (x, y) of the score-map cells: a grid of
        ``stride`` whose centre cell sits at pixel ``search_size // 2`` (pysot/SiamCAR convention,
        the same as the ``fcos`` label generator's default offset)."""
        offset = score_offset(search_size, score_size, self.stride)
        r = torch.arange(score_size, device=device, dtype=torch.float32) * self.stride + offset
        yy, xx = torch.meshgrid(r, r, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)

    def decode(self, out: dict[str, torch.Tensor], search_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell scores [B, S*S] (cls x centerness probabilities) and xyxy boxes [B, S*S, 4]."""
        b, _, s, _ = out["cls"].shape
        score = (out["cls"].sigmoid() * out["ctr"].sigmoid()).reshape(b, -1)
        loc = self.locations(s, search_size, out["cls"].device)[None]
        ltrb = out["ltrb"].reshape(b, 4, -1).transpose(1, 2).float()
        boxes = torch.cat([loc - ltrb[..., :2], loc + ltrb[..., 2:]], -1)
        return score, boxes


class _CrossFeatureAugment(nn.Module):
    """Post-norm attention block (query attends to ``memory``) followed by an FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, backend: str, topk: int | None = None) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads, backend=backend, topk=topk)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, q_pos: torch.Tensor, mem: torch.Tensor, mem_pos: torch.Tensor) -> torch.Tensor:
        q = self.norm1(q + self.drop(self.attn(q + q_pos, mem + mem_pos, mem)))
        return self.norm2(q + self.drop(self.ffn(q)))


class _FusionLayer(nn.Module):
    """TransT feature-fusion layer: ECA on both branches, then CFA in both directions."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, backend: str, topk: int | None) -> None:
        super().__init__()
        self.eca_z = _CrossFeatureAugment(dim, heads, ffn, dropout, backend, topk)
        self.eca_x = _CrossFeatureAugment(dim, heads, ffn, dropout, backend, topk)
        self.cfa_z = _CrossFeatureAugment(dim, heads, ffn, dropout, backend, topk)
        self.cfa_x = _CrossFeatureAugment(dim, heads, ffn, dropout, backend, topk)

    def forward(self, z, zp, x, xp):
        z = self.eca_z(z, zp, z, zp)
        x = self.eca_x(x, xp, x, xp)
        return self.cfa_z(z, zp, x, xp), self.cfa_x(x, xp, z, zp)


def _mlp(dim: int, hidden: int, out: int, layers: int = 3) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
        d = hidden
    mods.append(nn.Linear(d, out))
    return nn.Sequential(*mods)


class TTFusionHead(nn.Module):
    """TransT-style fusion of template and search features plus its prediction MLPs.

    Outputs ``cls`` logits [B,1,H,W] (one per search position) and ``box`` [B,4,H,W]:
    normalised (cx, cy, w, h) in [0,1] relative to the search crop. ``topk`` makes every attention
    sparse (:func:`vtrack.kernels.topk_attention`); None keeps TransT's dense attention.
    """

    def __init__(self, in_channels: int = 256, dim: int = 256, heads: int = 8, layers: int = 4, ffn: int = 2048,
                 dropout: float = 0.1, backend: str = "auto", topk: int | None = None) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"model.tt.layers: expected >= 1, got {layers}")
        self.dim = dim
        self.input_proj = nn.Conv2d(in_channels, dim, 1)
        self.layers = nn.ModuleList([_FusionLayer(dim, heads, ffn, dropout, backend, topk) for _ in range(layers)])
        self.decoder = _CrossFeatureAugment(dim, heads, ffn, dropout, backend, topk)
        self.cls_mlp = _mlp(dim, dim, 1)
        self.box_mlp = _mlp(dim, dim, 4)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``z`` template [B,C,h,w], ``x`` search [B,C,H,W] features -> head outputs."""
        b, _, h, w = x.shape
        zt = self.input_proj(z).flatten(2).transpose(1, 2)
        xt = self.input_proj(x).flatten(2).transpose(1, 2)
        zp = sine_position_encoding(z.shape[2], z.shape[3], self.dim, device=z.device).to(zt.dtype)[None]
        xp = sine_position_encoding(h, w, self.dim, device=x.device).to(xt.dtype)[None]
        for layer in self.layers:
            zt, xt = layer(zt, zp, xt, xp)
        xt = self.decoder(xt, xp, zt, zp)
        cls = self.cls_mlp(xt).transpose(1, 2).reshape(b, 1, h, w)
        box = self.box_mlp(xt).sigmoid().transpose(1, 2).reshape(b, 4, h, w)
        return {"cls": cls, "box": box}

    def decode(self, out: dict[str, torch.Tensor], search_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell scores [B, H*W] and xyxy boxes [B, H*W, 4] in search-crop pixels."""
        b = out["cls"].shape[0]
        score = out["cls"].sigmoid().reshape(b, -1)
        cxcywh = out["box"].reshape(b, 4, -1).transpose(1, 2).float() * search_size
        half = cxcywh[..., 2:] / 2
        return score, torch.cat([cxcywh[..., :2] - half, cxcywh[..., :2] + half], -1)
