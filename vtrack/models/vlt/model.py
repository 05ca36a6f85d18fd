"""VLT model: asymmetric SPOS supernet branches with ModaMixers, a language encoder and the
SiamCAR (``head: scar``) or TransT-style (``head: tt``) matching head.

Without a fixed architecture (``arch: null``) the model is the *supernet*: every training forward
runs one uniformly sampled path (single-path one-shot); :meth:`VLTModel.set_arch` fixes a path
(evolutionary search, retraining and tracking).
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from vtrack.io import atomic_write_text
from vtrack.models.vlt.config import VLTConfig
from vtrack.models.vlt.heads import CARHead, TTFusionHead
from vtrack.models.vlt.language import build_language_encoder
from vtrack.models.vlt.modamixer import ModaMixer
from vtrack.models.layers.backend import BackendSwitchable
from vtrack.models.vlt.supernet import Architecture, SupernetBackbone, SupernetSpec


def feature_size(size: int, strides: list[int]) -> int:
    """Spatial size after the stem (stride 2) and the stages (``strides``), each rounding up."""
    for s in [2, *strides]:
        size = math.ceil(size / s)
    return size


def score_size(mcfg: VLTConfig) -> int:
    """Side of the head's score map for the configured crop sizes."""
    fx = feature_size(mcfg.search_size, mcfg.strides)
    if mcfg.head == "tt":
        return fx
    fz = feature_size(mcfg.template_size, mcfg.strides)
    crop = mcfg.scar.template_crop
    return fx - (fz if crop is None else min(crop, fz)) + 1


def load_arch(value: list[int] | str | Path | None, spec: SupernetSpec) -> Architecture | None:
    """An architecture from an inline list, a JSON file holding a list (or {"arch": list}), or None."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"model.arch: architecture file not found: {path}")
        data = json.loads(path.read_text())
        value = data["arch"] if isinstance(data, dict) else data
    if not isinstance(value, list):
        raise TypeError(f"model.arch: expected a list of ints or a JSON file, got {type(value).__name__}")
    return Architecture.from_list(value, spec)


def save_arch(arch: Architecture, path: str | Path, **extra: Any) -> Path:
    """Write ``{"arch": [...], **extra}`` as JSON atomically."""
    return atomic_write_text(path, json.dumps({"arch": arch.to_list(), **extra}, indent=1))


class VLTModel(BackendSwitchable, nn.Module):
    """Vision-language Siamese tracker network (VLT_SCAR / VLT_TT).

    ``forward(batch)`` takes ``template`` [B,3,Hz,Wz], ``search`` [B,3,Hx,Wx], ``language``
    (list of B strings, "" when a sequence has none) and, for the "template" missing-language
    strategy, ``template_box`` [B,4] xywh in template-crop pixels; returns the head outputs.
    """

    def __init__(self, cfg: VLTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        spec = cfg.spec
        self.spec = spec
        self.backbone_z = SupernetBackbone(spec)
        self.backbone_x = self.backbone_z if cfg.share_backbone else SupernetBackbone(spec)
        self.language = build_language_encoder(cfg.language.kind, dim=cfg.language.dim, model_dir=cfg.language.model_dir)
        d = self.language.dim
        self.mixers_z = nn.ModuleList([ModaMixer(c, d, cfg.mixer_residual) for c in spec.widths])
        self.mixers_x = nn.ModuleList([ModaMixer(c, d, cfg.mixer_residual) for c in spec.widths])
        self.template_embed = nn.Linear(spec.out_channels, d) if cfg.missing_language == "template" else None
        if cfg.head == "scar":
            self.head = CARHead(spec.out_channels, cfg.scar.tower_depth, cfg.stride, cfg.scar.template_crop)
        else:
            t = cfg.tt
            self.head = TTFusionHead(spec.out_channels, t.dim, t.heads, t.layers, t.ffn, t.dropout, cfg.backend, t.topk)
        self.arch = load_arch(cfg.arch, spec)
        self.register_buffer("sample_counter", torch.zeros((), dtype=torch.long))

    def _backend_changed(self, backend: str) -> None:
        """``set_backend`` (the TT fusion's attention; the SCAR head has none) also updates the config."""
        self.cfg.backend = backend

    # ----------------------------------------------------------------- architecture
    def set_arch(self, arch: Architecture | list[int] | None) -> None:
        """Fix the path (an Architecture or its flat list); None returns to supernet sampling."""
        self.arch = arch if arch is None or isinstance(arch, Architecture) else Architecture.from_list(arch, self.spec)

    def current_arch(self) -> Architecture:
        """The fixed path, or in training mode a freshly sampled one (seeded by config seed and a
        counter saved in the state dict, so every DDP rank and a resumed run sample the same)."""
        if self.arch is not None:
            return self.arch
        if not self.training:
            raise ValueError("arch: the supernet has no fixed architecture; call set_arch() or set model.arch")
        rng = random.Random(self.cfg.seed * 1_000_003 + int(self.sample_counter))
        self.sample_counter += 1
        return Architecture.random(self.spec, rng)

    # ----------------------------------------------------------------- features
    def language_vector(self, texts: list[str] | None, batch_size: int, device: torch.device) -> torch.Tensor:
        """Sentence vectors [B, d]; zeros where there is no text or language is switched off."""
        if texts is None or not self.cfg.use_language:
            return torch.zeros(batch_size, self.language.dim, device=device)
        if len(texts) != batch_size:
            raise ValueError(f"language: expected {batch_size} strings, got {len(texts)}")
        return self.language(list(texts)).to(device)

    def _template_embedding(self, z_img: torch.Tensor, box: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """The "template" strategy: mean of the template feature over the cells inside ``box``."""
        zeros = torch.zeros(z_img.shape[0], self.language.dim, device=z_img.device, dtype=z_img.dtype)
        feat = self.backbone_z(z_img, arch.template, self.mixers_z, zeros, arch.mixer_template)
        b, _, h, w = feat.shape
        stride = self.cfg.stride
        cy = (torch.arange(h, device=feat.device, dtype=feat.dtype) + 0.5) * stride
        cx = (torch.arange(w, device=feat.device, dtype=feat.dtype) + 0.5) * stride
        x0, y0 = box[:, 0, None], box[:, 1, None]
        x1, y1 = x0 + box[:, 2, None], y0 + box[:, 3, None]
        inside_x = (cx[None] >= x0) & (cx[None] <= x1)
        inside_y = (cy[None] >= y0) & (cy[None] <= y1)
        mask = (inside_y[:, :, None] & inside_x[:, None, :]).to(feat.dtype)
        centre = ((y0 + y1) / 2 / stride).long().clamp(0, h - 1).squeeze(1), ((x0 + x1) / 2 / stride).long().clamp(0, w - 1).squeeze(1)
        mask[torch.arange(b, device=feat.device), centre[0], centre[1]] = 1.0
        pooled = (feat * mask[:, None]).sum((2, 3)) / mask.sum((1, 2))[:, None]
        return self.template_embed(pooled)

    def resolve_language(self, batch: dict[str, Any], arch: Architecture) -> torch.Tensor:
        """Language vectors for a batch, applying the missing-language strategy."""
        z = batch["template"]
        texts = batch.get("language")
        if isinstance(texts, str):
            texts = [texts]
        f_l = self.language_vector(texts, z.shape[0], z.device)
        if self.template_embed is not None:
            missing = torch.tensor([not (t or "").strip() for t in (texts or [""] * z.shape[0])], device=z.device)
            if bool(missing.any()) or not self.cfg.use_language:
                if "template_box" not in batch:
                    raise ValueError("batch: the 'template' missing-language strategy needs 'template_box'")
                emb = self._template_embedding(z, batch["template_box"].to(z.dtype), arch)
                use = missing if self.cfg.use_language else torch.ones_like(missing)
                f_l = torch.where(use[:, None], emb.to(f_l.dtype), f_l)
        return f_l

    def template_features(self, z_img: torch.Tensor, f_l: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Template branch with ModaMixers."""
        return self.backbone_z(z_img, arch.template, self.mixers_z, f_l, arch.mixer_template)

    def search_features(self, x_img: torch.Tensor, f_l: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Search branch with ModaMixers."""
        return self.backbone_x(x_img, arch.search, self.mixers_x, f_l, arch.mixer_search)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Full forward (training and evaluation)."""
        for key in ("template", "search"):
            t = batch.get(key)
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3:
                raise ValueError(f"batch[{key!r}]: expected a [B,3,H,W] tensor, got {getattr(t, 'shape', t)!r}")
        arch = self.current_arch()
        f_l = self.resolve_language(batch, arch)
        z = self.template_features(batch["template"], f_l, arch)
        x = self.search_features(batch["search"], f_l, arch)
        return self.head(z, x)


@torch.no_grad()
def recalibrate_bn(model: VLTModel, arch: Architecture, batches: Iterable[dict[str, Any]], device: torch.device | str) -> None:
    """Re-estimate BatchNorm statistics for path ``arch`` on a few training batches (SPOS):
    a cumulative average over ``batches``; the layers' momentum is restored afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.set_arch(arch)
    model.train()
    try:
        for batch in batches:
            model({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        model.eval()
