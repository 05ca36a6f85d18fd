"""OSTrack/ESAT network branches for the tracker engines (see :mod:`vtrack.deploy.engine`).

``template``: the template crop -> its tokens after patch and position embedding (run once);
``search``: cached template tokens + a search crop -> the centre head's maps (per frame).
"""
from __future__ import annotations

import torch

from vtrack.deploy.engine import Branch
from vtrack.models.ostrack.model import OSTrack

__all__ = ["TemplateBranch", "SearchBranch", "ostrack_branches"]


class TemplateBranch(Branch):
    """Template crop [1,3,Hz,Wz] -> ``template_tokens`` [1,Nz,C]."""

    input_names = ("template",)
    output_names = ("template_tokens",)

    def __init__(self, model: OSTrack) -> None:
        super().__init__()
        self.model = model

    def forward(self, template: torch.Tensor) -> tuple[torch.Tensor]:  # type: ignore[override]
        """Embed the template crop."""
        return (self.model.embed_template(template),)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """A random template crop."""
        s = self.model.cfg.template_size
        return (torch.randn(1, 3, s, s),)


class SearchBranch(Branch):
    """``template_tokens`` + search crop [1,3,Hx,Wx] -> ``score_map``, ``size_map``, ``offset_map``."""

    input_names = ("template_tokens", "search")
    output_names = ("score_map", "size_map", "offset_map")

    def __init__(self, model: OSTrack) -> None:
        super().__init__()
        self.model = model

    def forward(self, template_tokens: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """Backbone and centre head on one search crop."""
        out = self.model.forward_search(template_tokens, search)
        return out["score_map"], out["size_map"], out["offset_map"]

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Random template tokens and search crop."""
        bb = self.model.backbone
        s = self.model.cfg.search_size
        return torch.randn(1, bb.num_template, bb.embed_dim), torch.randn(1, 3, s, s)


def ostrack_branches(model: OSTrack) -> dict[str, Branch]:
    """The ``template`` and ``search`` branches of ``model``."""
    return {"template": TemplateBranch(model), "search": SearchBranch(model)}
