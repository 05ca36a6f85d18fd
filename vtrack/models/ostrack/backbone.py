"""One-stream ViT (OSTrack, sec. 3.1) with early candidate elimination (sec. 3.2)."""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from vtrack.models.backbones.vit import ViT, read_vit_checkpoint
from vtrack.models.layers.attention import FDAConfig
from vtrack.models.layers.pos_embed import grid_size, resample_pos_embed
from vtrack.models.ostrack.ce import restore_search_tokens, template_centre_index

log = logging.getLogger(__name__)


class OneStreamViT(ViT):
    """Template and search tokens, each with its own learnable position embedding, concatenated
    and run jointly through ViT blocks; candidate elimination after the attention of ``ce_layers``.

    Args:
        template_size: template crop side in pixels.
        search_size: search crop side in pixels.
        ce_layers: 1-based indices of the blocks with candidate elimination (OSTrack: 4, 7, 10).
        ce_keep_ratio: inference keep ratio of each elimination (OSTrack: 0.7).
        ce_enabled: switch candidate elimination on/off.
        **vit_kwargs: :class:`vtrack.models.backbones.vit.ViT` arguments.

    The training keep ratio is :attr:`train_keep_ratio` (set by the model's ``set_epoch``); eval
    mode uses ``ce_keep_ratio``. A ratio of 1 still runs the elimination path (a permutation
    of the search tokens restored at the end), so outputs equal the CE-off model's.
    """

    def __init__(
        self,
        *,
        template_size: int,
        search_size: int,
        ce_layers: Sequence[int] = (),
        ce_keep_ratio: float = 0.7,
        ce_enabled: bool = True,
        **vit_kwargs: Any,
    ) -> None:
        super().__init__(**vit_kwargs)
        p = self.patch_size
        for name, size in (("template_size", template_size), ("search_size", search_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % p:
                raise ValueError(f"{name}: expected a positive multiple of patch_size={p}, got {size!r}")
        depth = len(self.blocks)
        ce_layers = tuple(int(i) for i in ce_layers)
        bad = [i for i in ce_layers if not 1 <= i <= depth]
        if bad:
            raise ValueError(f"ce_layers: expected 1-based block indices in 1..{depth}, got {list(ce_layers)}")
        if not 0.0 < ce_keep_ratio <= 1.0:
            raise ValueError(f"ce_keep_ratio: expected a ratio in (0, 1], got {ce_keep_ratio}")
        self.template_size = template_size
        self.search_size = search_size
        self.grid_z = (template_size // p, template_size // p)
        self.grid_x = (search_size // p, search_size // p)
        self.num_template = self.grid_z[0] * self.grid_z[1]
        self.num_search = self.grid_x[0] * self.grid_x[1]
        self.ce_layers = ce_layers
        self.ce_keep_ratio = float(ce_keep_ratio)
        self.ce_enabled = bool(ce_enabled)
        self.train_keep_ratio = 1.0
        self.pos_embed_z = nn.Parameter(torch.zeros(1, self.num_template, self.embed_dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, self.num_search, self.embed_dim))
        nn.init.trunc_normal_(self.pos_embed_z, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_x, std=0.02)
        # a Python int: the kernels validate it without a device sync
        self.template_index = template_centre_index(*self.grid_z)

    def current_keep_ratio(self) -> float:
        """Keep ratio used by the next forward: the scheduled one in training, the target in eval."""
        return self.train_keep_ratio if self.training else self.ce_keep_ratio

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        """Template tokens [B, Nz, C] after the patch and position embedding.

        They depend on the template crop only, so a tracker computes them once at initialisation
        and passes them to :meth:`forward_tokens` on every frame.
        """
        z, gz = self.embed(template)
        if gz != self.grid_z:
            raise ValueError(f"template/search: expected {self.template_size}px and {self.search_size}px crops, "
                             f"got a {tuple(template.shape[-2:])} template")
        return z + self.pos_embed_z

    def forward(  # type: ignore[override]
        self, template: torch.Tensor, search: torch.Tensor, *, keep_ratio: float | None = None
    ) -> dict[str, Any]:
        """Run the one-stream backbone.

        Args:
            template: [B, 3, Hz, Wz] normalised template crops.
            search: [B, 3, Hx, Wx] normalised search crops.
            keep_ratio: override of the elimination keep ratio (None: :meth:`current_keep_ratio`).

        Returns:
            dict with ``template`` [B, C, Hz/p, Wz/p] and ``search`` [B, C, Hx/p, Wx/p] feature maps
            (eliminated search positions are zero), ``keep_index`` [B, K] int64 original positions of the
            kept search tokens and ``ce_scores`` (list of [B, Ns_l] scores per elimination layer).
        """
        return self.forward_tokens(self.embed_template(template), search, keep_ratio=keep_ratio)

    def forward_tokens(
        self, template_tokens: torch.Tensor, search: torch.Tensor, *, keep_ratio: float | None = None
    ) -> dict[str, Any]:
        """:meth:`forward` from template tokens already embedded by :meth:`embed_template`."""
        if template_tokens.dim() != 3 or tuple(template_tokens.shape[1:]) != (self.num_template, self.embed_dim):
            raise ValueError(
                f"template_tokens: expected [B, {self.num_template}, {self.embed_dim}], got {tuple(template_tokens.shape)}"
            )
        if template_tokens.shape[0] != search.shape[0]:
            raise ValueError(f"search: expected batch size {template_tokens.shape[0]} like template, got {search.shape[0]}")
        x, gx = self.embed(search)
        if gx != self.grid_x:
            raise ValueError(f"template/search: expected {self.template_size}px and {self.search_size}px crops, "
                             f"got a {tuple(search.shape[-2:])} search crop")
        z = template_tokens
        B = z.shape[0]
        tokens = torch.cat([z, x + self.pos_embed_x], dim=1)
        nz, ns = self.num_template, self.num_search
        global_index = torch.arange(ns, device=tokens.device).unsqueeze(0).expand(B, ns)
        ratio = self.current_keep_ratio() if keep_ratio is None else float(keep_ratio)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"keep_ratio: expected a ratio in (0, 1], got {ratio}")
        scores: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks, start=1):
            if self.ce_enabled and i in self.ce_layers:
                current = tokens.shape[1] - nz
                keep = max(1, math.ceil(ratio * current))
                tokens, keep_index, score = block.forward_ce(
                    tokens, num_template=nz, keep=keep, template_index=self.template_index
                )
                global_index = global_index.gather(1, keep_index)
                scores.append(score)
            else:
                tokens = block(tokens)
        tokens = self.norm(tokens)
        search_tokens = tokens[:, nz:]
        if search_tokens.shape[1] != ns or scores:
            search_tokens = restore_search_tokens(search_tokens, global_index, ns)
        C = tokens.shape[-1]
        return {
            "template": tokens[:, :nz].transpose(1, 2).reshape(B, C, *self.grid_z),
            "search": search_tokens.transpose(1, 2).reshape(B, C, *self.grid_x),
            "keep_index": global_index,
            "ce_scores": scores,
        }

    def load_pretrained(self, path: str | os.PathLike[str]) -> dict[str, list[str]]:
        """Initialise from a pretrained ViT checkpoint file (timm or MAE layout, see :func:`read_vit_checkpoint`).

        The checkpoint's position embedding (class token dropped) is resampled bicubically to the
        template and search grids separately (OSTrack, appendix). Returns the missing/unexpected keys.
        """
        ckpt = read_vit_checkpoint(path)
        missing, unexpected = self.load_backbone_state(ckpt["state"])
        pos = ckpt["pos_embed"]
        if pos is not None:
            if pos.shape[-1] != self.embed_dim:
                raise ValueError(f"pretrained: pos_embed width {pos.shape[-1]} != embed_dim {self.embed_dim}")
            n_prefix = ckpt["num_prefix_tokens"]
            old = grid_size(pos.shape[1] - n_prefix)
            with torch.no_grad():
                self.pos_embed_z.copy_(resample_pos_embed(pos, self.grid_z, old_size=old, num_prefix_tokens=n_prefix))
                self.pos_embed_x.copy_(resample_pos_embed(pos, self.grid_x, old_size=old, num_prefix_tokens=n_prefix))
            missing = [k for k in missing if not k.startswith("pos_embed_")]
        log.info("loaded pretrained ViT %s (missing %d, unexpected %d keys)", path, len(missing), len(unexpected))
        return {"missing": missing, "unexpected": unexpected}


def build_backbone(cfg: Mapping[str, Any], *, template_size: int, search_size: int) -> OneStreamViT:
    """Build a :class:`OneStreamViT` from the ``model.backbone`` config section (already validated)."""
    fda = FDAConfig.from_any(cfg.get("fda"))
    return OneStreamViT(
        template_size=template_size,
        search_size=search_size,
        ce_layers=tuple(cfg.get("ce_layers", ())),
        ce_keep_ratio=float(cfg.get("ce_keep_ratio", 0.7)),
        ce_enabled=bool(cfg.get("ce_enabled", True)),
        patch_size=int(cfg["patch_size"]),
        embed_dim=int(cfg["embed_dim"]),
        depth=int(cfg["depth"]),
        num_heads=int(cfg["num_heads"]),
        mlp_ratio=float(cfg.get("mlp_ratio", 4.0)),
        drop_path_rate=float(cfg.get("drop_path_rate", 0.0)),
        backend=str(cfg.get("backend", "auto")),
        fda=fda,
    )
