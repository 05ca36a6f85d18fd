"""VLT inference: template and language encoded once, SiamCAR-style post-processing per frame
(scale/ratio change penalty, cosine window), then the shared state update
(:func:`~vtrack.tracking.postprocess.update_state`: score-smoothed, bounded size; box kept in the
image; a lost target widens the search crop)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from vtrack.deploy.engine import Engine, TorchEngine
from vtrack.models.vlt.branches import vlt_branches
from vtrack.models.vlt.config import VLTTrackerConfig
from vtrack.tracking.base import Tracker, TrackResult
from vtrack.tracking.crops import box_to_crop
from vtrack.tracking.postprocess import TrackState, update_state
from vtrack.tracking.preprocess import sample_target, to_tensor
from vtrack.tracking.windows import cosine_window


class VLTTracker(Tracker):
    """Tracks with a :class:`~vtrack.models.vlt.model.VLTModel` whose architecture is fixed.

    ``initialize(image, box, info)`` reads the description from ``info["language"]`` (absent or
    empty: the model's missing-language strategy applies).
    """

    name = "vlt"

    def __init__(self, model: torch.nn.Module, cfg: VLTTrackerConfig, device: torch.device | str = "cpu") -> None:
        if model.arch is None:
            raise ValueError("model.arch: a VLT tracker needs a fixed architecture (run the search or set model.arch)")
        if cfg.context not in ("siamfc", "area"):
            raise ValueError(f"tracker.context: expected 'siamfc' or 'area', got {cfg.context!r}")
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.device = torch.device(device)
        self.zsize = model.cfg.template_size
        self.xsize = model.cfg.search_size
        #: runs the network branches (``template``, ``search``); swapped for the onnxruntime engine
        self.engine: Engine = TorchEngine(vlt_branches(self.model))

    @torch.no_grad()
    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        patch, _, crop = sample_target(image, box, self.cfg.template_factor, self.zsize, mode=self.cfg.context,
                                       align=self.cfg.crop.align)
        text = str(info.get("language") or "") if self.cfg.use_language else ""
        zbox = torch.as_tensor(box_to_crop(box, crop, self.zsize), dtype=torch.float32, device=self.device)[None]
        batch = {"template": to_tensor(patch, self.device), "language": [text], "template_box": zbox}
        arch = self.model.arch
        f_l = self.model.resolve_language(batch, arch)
        self.f_l = f_l
        self.z = self.engine.run("template", template=batch["template"], language=f_l)["template_features"]
        self._state = TrackState.start(box)
        self.window: np.ndarray | None = None

    @torch.no_grad()
    def _track(self, image: np.ndarray) -> TrackResult:
        cfg = self.cfg
        state = self._state
        factor = cfg.search_factor * state.search_growth(cfg.update)
        patch, scale, crop = sample_target(image, state.box, factor, self.xsize, mode=cfg.context,
                                          align=cfg.crop.align)
        out = self.engine.run("search", search=to_tensor(patch, self.device), language=self.f_l,
                              template_features=self.z)
        score, boxes = out["score"][0].cpu().numpy(), out["boxes"][0].cpu().numpy()
        n = int(round(math.sqrt(score.size)))
        if self.window is None or self.window.size != score.size:
            self.window = cosine_window(n, n).reshape(-1)
        # size change penalty (SiamRPN/SiamCAR) relative to the current target size in the crop
        w = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-3)
        h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
        tw, th = state.box[2] * scale, state.box[3] * scale

        def sz(a, b):
            p = (a + b) * 0.5
            return np.sqrt((a + p) * (b + p))

        s_c = np.maximum(sz(w, h) / sz(tw, th), sz(tw, th) / sz(w, h))
        r_c = np.maximum((tw / th) / (w / h), (w / h) / (tw / th))
        penalty = np.exp(-(r_c * s_c - 1) * cfg.penalty_k)
        pscore = penalty * score * (1 - cfg.window_influence) + self.window * cfg.window_influence
        best = int(np.argmax(pscore))
        bx = boxes[best]
        cx = crop[0] + (bx[0] + bx[2]) / 2 / scale
        cy = crop[1] + (bx[1] + bx[3]) / 2 / scale
        pw, ph = w[best] / scale, h[best] / scale
        conf = float(penalty[best] * score[best])
        self._state = update_state(state, [cx - pw / 2, cy - ph / 2, pw, ph], conf, cfg.update,
                                   (image.shape[1], image.shape[0]))
        return TrackResult(tuple(float(v) for v in self._state.box), float(score[best]))
