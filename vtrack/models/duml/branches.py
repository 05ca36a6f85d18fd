"""DuML network branch for the tracker engines (see :mod:`vtrack.deploy.engine`).

``search`` (per frame): the search crop and the embedded template kernels -> the OFC box and IoU
maps, the OFC scores (when the model has them) and the ONR features (when it has the online
branch). Everything around it stays with the tracker in PyTorch: the first-frame samples and
template kernels (once per sequence), and DuML's online part - applying the ONR filter and
optimising it by steepest descent on the sample memory - which is an optimiser, not a fixed graph.
"""
from __future__ import annotations

import torch

from vtrack.deploy.engine import Branch
from vtrack.models.duml.model import DuML
from vtrack.models.layers.xcorr import XCORR_STATIC_BATCH

__all__ = ["SearchBranch", "duml_branches", "flatten_kernels"]


def flatten_kernels(embedded: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``{"box": [k0, k1, ...], "cls": [...]}`` -> ``{"box_kernel_0": k0, ...}`` (branch inputs)."""
    return {f"{head}_kernel_{i}": k for head in sorted(embedded) for i, k in enumerate(embedded[head])}


class SearchBranch(Branch):
    """Search crop + embedded kernels -> ``box``, ``iou`` [, ``cls``] [, ``onr``]."""

    no_dynamic_batch = XCORR_STATIC_BATCH

    def __init__(self, model: DuML, search_size: int) -> None:
        super().__init__()
        self.model = model
        self.search_size = int(search_size)
        heads = {"box": len(model.box_heads), **({"cls": len(model.cls_heads)} if model.use_ofc else {})}
        self.kernel_names = tuple(f"{h}_kernel_{i}" for h in sorted(heads) for i in range(heads[h]))
        self.input_names = ("search", *self.kernel_names)
        self.output_names = ("box", "iou") + (("cls",) if model.use_ofc else ()) + (("onr",) if model.use_onr else ())

    def _example_kernels(self) -> dict[str, torch.Tensor]:
        m, n = self.model, self.search_size
        device = next(m.parameters()).device
        with torch.no_grad():
            feats = m.features(torch.randn(1, 3, n, n, device=device))
            centre = torch.full((1, 2), n / 2.0, device=device)
            return flatten_kernels(m.embed_kernels(m.template_kernels(feats, centre, n)))

    def forward(self, search: torch.Tensor, *kernels: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """Backbone, OFC correlation heads and ONR features of one search crop."""
        m = self.model
        named = dict(zip(self.kernel_names, kernels))
        embedded = {head: [named[k] for k in self.kernel_names if k.startswith(head + "_kernel_")]
                    for head in ("box", "cls") if any(k.startswith(head + "_kernel_") for k in self.kernel_names)}
        feats = m.features(search)
        out = m.ofc(embedded, feats)
        res = [out["box"], out["iou"]]
        if m.use_ofc:
            res.append(out["cls"])
        if m.use_onr:
            res.append(m.onr_features(feats))
        return tuple(res)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """A random search crop and kernels of the tracking shapes."""
        n = self.search_size
        return (torch.randn(1, 3, n, n), *(torch.randn_like(k).cpu() for k in self._example_kernels().values()))


def duml_branches(model: DuML, search_size: int) -> dict[str, Branch]:
    """The ``search`` branch of ``model`` for crops of ``search_size`` pixels."""
    return {"search": SearchBranch(model, search_size)}
