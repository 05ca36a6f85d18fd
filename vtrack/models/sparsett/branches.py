"""SparseTT network branches for the tracker engines (see :mod:`vtrack.deploy.engine`).

``template``: the template crop -> encoded template tokens (the encoder's memory; run once);
``search``: memory + a search crop -> the fused score map and the conv-head boxes (per frame).
"""
from __future__ import annotations

import torch

from vtrack.deploy.engine import Branch
from vtrack.models.sparsett.model import SparseTT

__all__ = ["TemplateBranch", "SearchBranch", "sparsett_branches"]


class TemplateBranch(Branch):
    """Template crop [1,3,Hz,Wz] -> ``memory`` [1,Lz,dim]."""

    input_names = ("template",)
    output_names = ("memory",)

    def __init__(self, model: SparseTT) -> None:
        super().__init__()
        self.model = model

    def forward(self, template: torch.Tensor) -> tuple[torch.Tensor]:  # type: ignore[override]
        """Backbone and encoder on the template crop."""
        return (self.model.encode_template(template),)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """A random template crop."""
        s = self.model.cfg.template_size
        return (torch.randn(1, 3, s, s),)


class SearchBranch(Branch):
    """``memory`` + search crop [1,3,Hx,Wx] -> ``score`` [1,S,S], ``box`` [1,S*S,4] xyxy crop pixels."""

    input_names = ("memory", "search")
    output_names = ("score", "box")

    def __init__(self, model: SparseTT) -> None:
        super().__init__()
        self.model = model

    def forward(self, memory: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """Backbone, decoder and double head on one search crop."""
        out = self.model.decode_search(search, memory)
        return out["score"], out["box"]

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Random memory and search crop."""
        m = self.model
        return torch.randn(1, m.template_feat ** 2, m.cfg.dim), torch.randn(1, 3, m.cfg.search_size, m.cfg.search_size)


def sparsett_branches(model: SparseTT) -> dict[str, Branch]:
    """The ``template`` and ``search`` branches of ``model``."""
    return {"template": TemplateBranch(model), "search": SearchBranch(model)}
