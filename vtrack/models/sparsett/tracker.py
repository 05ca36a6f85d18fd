"""SparseTT inference: one template encoding, then per frame a search crop and SiamFC++ post-processing.

Per frame: crop the search region around the previous box (SiamFC context, side
``search_size / template_size`` times the template crop), run the decoder and the double head,
then (SiamFC++ / SparseTT release):

1. penalise scale and aspect-ratio changes: ``penalty = exp(-(r_c * s_c - 1) * penalty_k)`` and
   ``pscore = penalty * score`` where ``score`` is the fused fc/conv probability;
2. add the cosine window: ``pscore = (1 - w) * pscore + w * window``;
3. take the conv-head box at ``argmax(pscore)`` and hand it to the shared state update
   (:func:`~vtrack.tracking.postprocess.update_state`, options ``tracker.update``) with the
   penalised score ``penalty * score`` of that point as its confidence: the centre moves there,
   the size is smoothed with ``lr = size_lr * penalty * score`` (SiamFC++'s ``test_lr``),
   bounded, and the box is kept inside the image; a lost target widens the next search crop.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from vtrack.deploy.engine import Engine, TorchEngine
from vtrack.models.sparsett.branches import sparsett_branches
from vtrack.models.sparsett.config import SparseTTTrackerConfig
from vtrack.models.sparsett.model import SparseTT
from vtrack.tracking.base import Tracker, TrackResult
from vtrack.tracking.postprocess import TrackState, update_state
from vtrack.tracking.preprocess import sample_target, to_tensor
from vtrack.tracking.windows import cosine_window

__all__ = ["SparseTTTracker", "siamfcpp_penalty"]

def _context_size(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def siamfcpp_penalty(boxes_cxcywh: np.ndarray, target_wh: np.ndarray, penalty_k: float) -> np.ndarray:
    """SiamFC++ scale/ratio penalty ``exp(-(r_c * s_c - 1) * k)`` for candidate boxes [P, 4] (cx, cy, w, h).

    ``target_wh`` is the previous target size in the same (crop) pixels; ``change(r) = max(r, 1/r)``.
    """
    boxes = np.asarray(boxes_cxcywh, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_cxcywh: expected shape [P, 4], got {boxes.shape}")
    tw, th = (float(v) for v in target_wh)
    if tw <= 0 or th <= 0:
        raise ValueError(f"target_wh: expected positive sizes, got {(tw, th)}")
    w = np.maximum(boxes[:, 2], 1e-6)
    h = np.maximum(boxes[:, 3], 1e-6)
    s = _context_size(w, h) / _context_size(np.float64(tw), np.float64(th))
    s_c = np.maximum(s, 1.0 / s)
    r = (tw / th) / (w / h)
    r_c = np.maximum(r, 1.0 / r)
    return np.exp(-(r_c * s_c - 1.0) * penalty_k)


class SparseTTTracker(Tracker):
    """Tracker API around a :class:`SparseTT` network.

    Args:
        model: the network (moved to ``device`` and set to eval mode).
        cfg: :class:`SparseTTTrackerConfig` or the ``tracker`` mapping of a config.
        device: torch device to run on.
    """

    name = "sparsett"

    def __init__(self, model: SparseTT, cfg: SparseTTTrackerConfig | Mapping[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        if not isinstance(model, SparseTT):
            raise TypeError(f"model: expected a SparseTT network, got {type(model).__name__}")
        from vtrack.config import as_config

        self.cfg = cfg = as_config(SparseTTTrackerConfig, cfg, "tracker")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if cfg.backend is not None:
            self.model.set_backend(cfg.backend)
        mc = model.cfg
        self.template_size = mc.template_size
        self.search_size = mc.search_size
        self.search_factor = mc.search_size / mc.template_size
        s = model.score_size
        self.window = cosine_window(s, s).reshape(-1)
        self.points = model.points.detach().cpu().numpy().astype(np.float64)
        #: runs the network branches (``template``, ``search``); swapped for the onnxruntime engine
        self.engine: Engine = TorchEngine(sparsett_branches(self.model))

    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        self._state = TrackState.start(box)
        self.pad = tuple(float(v) for v in image.reshape(-1, 3).mean(axis=0))
        patch, _, _ = sample_target(image, box, 1.0, self.template_size, mode="siamfc", pad=self.pad,
                                    align=self.cfg.crop.align)
        self.memory = self.engine.run("template", template=to_tensor(patch, self.device))["memory"]

    def scored_candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float,
                                                             tuple[float, float]]:
        """Score the search crop around the current state.

        Returns ``(score, penalty, pscore, cand, r, crop)``: the raw scores, SiamFC++'s scale/ratio
        penalty and the penalised, windowed scores (one per cell), the candidate boxes ``[N,4]``
        (cx, cy, w, h in crop pixels), the crop's scale and its top-left corner in the image.
        """
        cfg, state = self.cfg, self._state
        factor = self.search_factor * state.search_growth(cfg.update)
        patch, r, crop = sample_target(image, state.box, factor, self.search_size, mode="siamfc", pad=self.pad,
                                      align=cfg.crop.align)
        out = self.engine.run("search", memory=self.memory, search=to_tensor(patch, self.device))
        score = out["score"][0].reshape(-1).double().cpu().numpy()
        xyxy = out["box"][0].double().cpu().numpy()
        cand = np.stack(((xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                         xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]), axis=1)
        penalty = siamfcpp_penalty(cand, state.box[2:] * r, cfg.penalty_k)
        pscore = penalty * score
        pscore = pscore * (1.0 - cfg.window_influence) + self.window * cfg.window_influence
        return score, penalty, pscore, cand, r, crop

    def _track(self, image: np.ndarray) -> TrackResult:
        cfg, state = self.cfg, self._state
        score, penalty, pscore, cand, r, crop = self.scored_candidates(image)
        best = int(np.argmax(pscore))
        cx, cy, w, h = crop[0] + cand[best, 0] / r, crop[1] + cand[best, 1] / r, cand[best, 2] / r, cand[best, 3] / r
        conf = float(penalty[best] * score[best])
        img_h, img_w = image.shape[:2]
        self._state = update_state(state, [cx - w / 2, cy - h / 2, w, h], conf, cfg.update, (img_w, img_h))
        return TrackResult(tuple(float(v) for v in self._state.box), float(score[best]),
                           {"pscore": float(pscore[best]), "index": best})
