"""Plain ViT built from timm blocks whose attention runs on vtrack's kernels.

* :class:`Block` is timm's pre-norm ``Block`` with its attention replaced by
  :class:`vtrack.models.layers.attention.Attention` (same ``qkv``/``proj`` parameter names), plus
  :meth:`Block.forward_ce`, a forward pass with candidate elimination of search tokens.
* :class:`ViT` holds ``patch_embed`` (timm ``PatchEmbed``), ``blocks`` and ``norm`` with timm's
  state-dict names, so timm and MAE checkpoints load directly.
* :func:`read_vit_checkpoint` reads a local checkpoint (timm, MAE, DeiT/OSTrack wrappers, or
  safetensors) into a normalised state dict; the caller resamples position embeddings.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import torch
from torch import nn

from vtrack._compat import import_timm
from vtrack.models.layers.attention import Attention, FDAConfig
from vtrack.models.layers.backend import BackendSwitchable

log = logging.getLogger(__name__)
_timm = import_timm()
_TimmBlock = _timm.models.vision_transformer.Block

# keys of classifier heads, MAE decoders and masked-modelling tokens: never part of a tracker backbone
_DROP_PREFIXES = ("head.", "fc_norm.", "decoder", "mask_token", "head_drop", "pre_logits", "dist_token", "head_dist.")


class Block(_TimmBlock):
    """timm ViT block (pre-norm attention + MLP) with vtrack attention.

    Args:
        dim, num_heads, mlp_ratio, qkv_bias, drop_path: as in timm.
        backend: kernel backend of the attention.
        fda: force-directed attention constants (ESAT) or None.
        topk: sparse attention top-k or None.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        *,
        backend: str = "auto",
        fda: FDAConfig | Mapping[str, Any] | None = None,
        topk: int | None = None,
    ) -> None:
        super().__init__(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, backend=backend, fda=fda, topk=topk)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """Standard block: x + attn(norm1(x)); x + mlp(norm2(x))."""
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), key_padding_mask=key_padding_mask)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def forward_ce(
        self,
        x: torch.Tensor,
        *,
        num_template: int,
        keep: int,
        template_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block with early candidate elimination after the attention (OSTrack, Fig. 3b).

        Args:
            x: [B, Nz + Ns, C] tokens (template first).
            num_template: Nz.
            keep: number of search tokens kept after this block.
            template_index: template tokens ranking the candidates (see ``Attention.forward_ce``).

        Returns:
            (tokens [B, Nz + keep, C], keep_index [B, keep] into the input's search tokens, score [B, Ns]).
        """
        attn, keep_index, score = self.attn.forward_ce(
            self.norm1(x), num_template=num_template, keep=keep, template_index=template_index
        )
        x = x + self.drop_path1(self.ls1(attn))
        B, _, C = x.shape
        search = x[:, num_template:].gather(1, keep_index.unsqueeze(-1).expand(B, keep_index.shape[1], C))
        x = torch.cat([x[:, :num_template], search], dim=1)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x, keep_index, score


class ViT(BackendSwitchable, nn.Module):
    """Patch embedding, a stack of :class:`Block` and a final LayerNorm (timm parameter names).

    Args:
        patch_size: patch side in pixels.
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: bias on the qkv projections.
        drop_path_rate: stochastic depth, linearly increasing over the blocks.
        backend: kernel backend for every attention layer.
        fda: force-directed attention in every block (ESAT) or None.

    No position embedding or class token: models add their own (OSTrack has one per input).
    """

    def __init__(
        self,
        *,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        backend: str = "auto",
        fda: FDAConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, val in (("patch_size", patch_size), ("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads)):
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"{name}: expected a positive int, got {val!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate: expected a value in [0, 1), got {drop_path_rate}")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.patch_embed = _timm.layers.PatchEmbed(
            img_size=None, patch_size=patch_size, in_chans=3, embed_dim=embed_dim, strict_img_size=False
        )
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i], backend=backend, fda=fda) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(_init_vit_weights)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch-embed [B, 3, H, W] images into [B, (H/p)(W/p), C] tokens; also returns the grid size."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected [B, 3, H, W], got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"images: height and width must be multiples of patch_size={self.patch_size}, got {H}x{W}")
        return self.patch_embed(images), (H // self.patch_size, W // self.patch_size)

    def load_backbone_state(self, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Load patch-embed/block/norm weights from a normalised ViT state dict (see :func:`read_vit_checkpoint`).

        The patch-embedding kernel is resampled (timm's FlexiViT helper) when its size differs.
        Returns (missing keys, unexpected keys) of this module; a width/depth mismatch raises ValueError.
        """
        own = self.state_dict()
        state = dict(state)
        w = state.get("patch_embed.proj.weight")
        if w is not None and tuple(w.shape[-2:]) != (self.patch_size, self.patch_size):
            log.info("resampling patch embedding %s -> %d", tuple(w.shape[-2:]), self.patch_size)
            state["patch_embed.proj.weight"] = _timm.layers.resample_patch_embed(w, [self.patch_size, self.patch_size])
        for key, val in state.items():
            if key in own and own[key].shape != val.shape:
                raise ValueError(
                    f"checkpoint: {key} has shape {tuple(val.shape)}, the model expects {tuple(own[key].shape)} "
                    "(different width or head layout)"
                )
        result = self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        unexpected = [k for k in state if k not in own]
        # FDA constants are not part of pretrained ViTs
        missing = [k for k in result.missing_keys if ".fda_" not in k]
        return missing, unexpected


def _init_vit_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _unwrap(obj: Any) -> Mapping[str, torch.Tensor]:
    for key in ("model", "state_dict", "net", "module"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("checkpoint: expected a state dict of tensors (optionally under 'model'/'state_dict'/'net')")
    return obj


def read_vit_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a pretrained ViT checkpoint from a local file and normalise its layout.

    Accepts timm state dicts, MAE checkpoints (``{"model": ...}`` with or without decoder),
    DeiT/OSTrack-style wrappers (``state_dict``/``net``, ``module.``/``backbone.`` prefixes) and
    ``.safetensors`` files. Returns ``{"state": dict, "pos_embed": Tensor | None,
    "num_prefix_tokens": int}`` where ``state`` holds the patch-embed/blocks/norm weights and
    ``pos_embed`` the [1, P + H*W, C] absolute position embedding with its P prefix tokens.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained: no such checkpoint file: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        raw: Any = load_file(path)
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    sd = _unwrap(raw)
    state: dict[str, torch.Tensor] = {}
    for key, val in sd.items():
        for prefix in ("module.", "backbone.", "encoder."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith(_DROP_PREFIXES):
            continue
        state[key] = val
    if not any(k.startswith("blocks.") for k in state):
        raise ValueError(f"pretrained: {path} holds no ViT blocks (keys like 'blocks.0.attn.qkv.weight')")
    pos_embed = state.pop("pos_embed", None)
    num_prefix = 0
    for tok in ("cls_token", "reg_token"):
        t = state.pop(tok, None)
        if t is not None:
            num_prefix += t.shape[1]
    return {"state": state, "pos_embed": pos_embed, "num_prefix_tokens": num_prefix}
