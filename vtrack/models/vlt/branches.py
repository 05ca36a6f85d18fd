"""VLT network branches for the tracker engines (see :mod:`vtrack.deploy.engine`).

The sentence vector (the language encoder, or the template-embedding strategy for a missing
description) is computed once at initialisation by the PyTorch model and fed to the branches:
text is no tensor an ONNX graph can take.

``template``: template crop + sentence vector -> template features (run once);
``search``: search crop + sentence vector + template features -> per-cell scores and xyxy boxes.
The architecture (``model.arch``) is fixed when the branches are built.
"""
from __future__ import annotations

import torch

from vtrack.deploy.engine import Branch
from vtrack.models.layers.xcorr import XCORR_STATIC_BATCH

__all__ = ["TemplateBranch", "SearchBranch", "vlt_branches"]


class TemplateBranch(Branch):
    """Template crop [1,3,Hz,Wz] + ``language`` [1,d] -> ``template_features``."""

    input_names = ("template", "language")
    output_names = ("template_features",)

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, template: torch.Tensor, language: torch.Tensor) -> tuple[torch.Tensor]:  # type: ignore[override]
        """Template backbone path with its ModaMixers."""
        return (self.model.template_features(template, language, self.model.arch),)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """A random template crop and sentence vector."""
        s = self.model.cfg.template_size
        return torch.randn(1, 3, s, s), torch.randn(1, self.model.language.dim)


class SearchBranch(Branch):
    """Search crop + ``language`` + ``template_features`` -> ``score`` [1,S*S], ``boxes`` [1,S*S,4]."""

    no_dynamic_batch = XCORR_STATIC_BATCH
    input_names = ("search", "language", "template_features")
    output_names = ("score", "boxes")

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, search: torch.Tensor, language: torch.Tensor,  # type: ignore[override]
                template_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Search backbone path, head and decoding."""
        m = self.model
        out = m.head(template_features, m.search_features(search, language, m.arch))
        return m.head.decode(out, m.cfg.search_size)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Random inputs of the tracking shapes (template features from the template branch)."""
        m = self.model
        s = m.cfg.search_size
        z, lang = TemplateBranch(m).example_inputs()
        with torch.no_grad():
            feats = m.template_features(z, lang, m.arch)
        return torch.randn(1, 3, s, s), lang, torch.randn_like(feats)


def vlt_branches(model: torch.nn.Module) -> dict[str, Branch]:
    """The ``template`` and ``search`` branches of a VLT model with a fixed architecture."""
    return {"template": TemplateBranch(model), "search": SearchBranch(model)}
