"""ESAT self-supervised position learning (sec. 3.1-3.2): FCN head, classifiers and losses.

The labels come from the ``position`` label generator of :mod:`vtrack.train.labels`
(``label_pos_abs``, ``label_pos_pn`` over the [template; search] tokens): a search token's
absolute label is its own grid index, a template token's the search-grid index its content maps
to through the target box seen in both crops (ignored, -100, outside the crop); positive/negative
labels are 1 for every template token and for search tokens inside the target box.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtrack.models.layers.heads import conv_bn_relu

IGNORE_INDEX = -100


class PositionHead(nn.Module):
    """Two FCNs (L conv-BN-ReLU each) on the template and search maps, then an absolute-position
    classifier (Nx classes, eq. 2) and a positive/negative classifier on every token's feature.

    Args:
        in_channels: backbone width.
        channels: FCN width D of the positional features.
        num_layers: L.
        num_positions: number of absolute positions (search tokens Nx).
    """

    def __init__(self, in_channels: int, channels: int, num_layers: int, num_positions: int) -> None:
        super().__init__()
        if num_layers < 1 or channels < 1 or num_positions < 1:
            raise ValueError(
                f"num_layers/channels/num_positions: expected positive ints, got {num_layers}, {channels}, {num_positions}"
            )

        def _fcn() -> nn.Sequential:
            return nn.Sequential(*(conv_bn_relu(in_channels if i == 0 else channels, channels) for i in range(num_layers)))

        self.template_fcn = _fcn()
        self.search_fcn = _fcn()
        self.abs_classifier = nn.Linear(channels, num_positions)
        self.pn_classifier = nn.Linear(channels, 2)

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        """``template`` [B, C, Hz, Wz], ``search`` [B, C, Hx, Wx] -> logits over [template; search] tokens."""
        pz = self.template_fcn(template).flatten(2).transpose(1, 2)
        px = self.search_fcn(search).flatten(2).transpose(1, 2)
        feats = torch.cat([pz, px], dim=1)
        return {"pos_abs_logits": self.abs_classifier(feats), "pos_pn_logits": self.pn_classifier(feats)}


def position_losses(
    abs_logits: torch.Tensor, pn_logits: torch.Tensor, abs_labels: torch.Tensor, pn_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of the absolute (eq. 3) and positive/negative (eq. 4) classifiers."""
    if abs_logits.shape[:2] != abs_labels.shape or pn_logits.shape[:2] != pn_labels.shape:
        raise ValueError(
            f"labels: expected shapes {tuple(abs_logits.shape[:2])} and {tuple(pn_logits.shape[:2])}, "
            f"got {tuple(abs_labels.shape)} and {tuple(pn_labels.shape)}"
        )
    l_abs = F.cross_entropy(abs_logits.flatten(0, 1).float(), abs_labels.flatten(), ignore_index=IGNORE_INDEX)
    l_pn = F.cross_entropy(pn_logits.flatten(0, 1).float(), pn_labels.flatten())
    return l_abs, l_pn
