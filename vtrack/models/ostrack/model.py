"""OSTrack model (one-stream ViT + centre head), with ESAT's position head as an option."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from vtrack.models.layers.heads import CenterHead
from vtrack.models.ostrack.backbone import OneStreamViT, build_backbone
from vtrack.models.ostrack.ce import keep_ratio_schedule
from vtrack.models.ostrack.config import ModelSection
from vtrack.models.ostrack.position import PositionHead
from vtrack.models.layers.backend import BackendSwitchable


class OSTrack(BackendSwitchable, nn.Module):
    """One-stream tracker: ``model(batch) -> outputs``.

    ``batch`` holds ``template`` [B,3,Hz,Wz] and ``search`` [B,3,Hx,Wx] (ImageNet-normalised).
    Outputs: ``score_map`` [B,1,F,F], ``size_map`` / ``offset_map`` [B,2,F,F], ``boxes`` [B,4]
    normalised (cx, cy, w, h) in the search crop decoded at the score argmax, ``keep_index``
    [B,K] (search tokens surviving candidate elimination) and, with the ESAT position head (in
    training mode, or when the batch carries ``label_pos_abs``), ``pos_abs_logits`` [B,Nz+Nx,Nx]
    and ``pos_pn_logits`` [B,Nz+Nx,2].
    """

    def __init__(self, cfg: ModelSection) -> None:
        super().__init__()
        self.cfg = cfg
        bb = cfg.backbone
        self.backbone: OneStreamViT = build_backbone(
            dataclasses.asdict(bb), template_size=cfg.template_size, search_size=cfg.search_size
        )
        self.head = CenterHead(bb.embed_dim, cfg.head.channels, cfg.head.num_layers)
        self.position: PositionHead | None = None
        if cfg.position is not None:
            self.position = PositionHead(bb.embed_dim, cfg.position.channels, cfg.position.num_layers,
                                         self.backbone.num_search)
        if bb.pretrained:
            self.backbone.load_pretrained(bb.pretrained)
        self.set_epoch(0)

    @property
    def feat_size(self) -> int:
        """Side of the score map in cells."""
        return self.backbone.grid_x[0]

    def set_epoch(self, epoch: float) -> None:
        """Training schedule hook: keep ratio 1 until ``ce_start_epoch``, then cosine to the target."""
        bb = self.cfg.backbone
        self.backbone.train_keep_ratio = keep_ratio_schedule(
            epoch, target=bb.ce_keep_ratio, start_epoch=bb.ce_start_epoch, warmup_epochs=bb.ce_warmup_epochs
        )

    def set_ce(self, enabled: bool) -> None:
        """Switch early candidate elimination on or off."""
        self.backbone.ce_enabled = bool(enabled)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Run backbone and heads on a batch (see class docstring)."""
        if not isinstance(batch, dict):
            raise TypeError(f"batch: expected a dict with 'template' and 'search', got {type(batch).__name__}")
        for key in ("template", "search"):
            if key not in batch or not isinstance(batch[key], torch.Tensor):
                raise ValueError(f"batch: expected a tensor under {key!r}, got keys {sorted(batch)}")
        # the position head only feeds the ESAT training losses: skipped when tracking
        with_position = self.position is not None and (self.training or "label_pos_abs" in batch)
        return self._heads(self.backbone.embed_template(batch["template"]), batch["search"], with_position)

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        """Template tokens [B, Nz, C] after patch and position embedding (what a tracker caches)."""
        return self.backbone.embed_template(template)

    def forward_search(self, template_tokens: torch.Tensor, search: torch.Tensor) -> dict[str, Any]:
        """Tracking forward from cached :meth:`embed_template` tokens: the outputs of ``forward``
        without the position head."""
        return self._heads(template_tokens, search, False)

    def _heads(self, template_tokens: torch.Tensor, search: torch.Tensor, with_position: bool) -> dict[str, Any]:
        feats = self.backbone.forward_tokens(template_tokens, search)
        out = self.head(feats["search"])
        out["keep_index"] = feats["keep_index"]
        out["ce_scores"] = feats["ce_scores"]
        if with_position:
            assert self.position is not None
            out.update(self.position(feats["template"], feats["search"]))
        return out
