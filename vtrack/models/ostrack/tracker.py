"""OSTrack inference: template crop x2, search crop x4 around the last box, Hann window, box mapped back."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vtrack.deploy.engine import Engine, TorchEngine
from vtrack.models.layers.heads import decode_center_boxes
from vtrack.models.ostrack.branches import ostrack_branches
from vtrack.models.ostrack.config import TrackerSection
from vtrack.models.ostrack.model import OSTrack
from vtrack.tracking.base import Tracker, TrackResult
from vtrack.tracking.crops import box_from_crop
from vtrack.tracking.postprocess import TrackState, blend_window, update_state
from vtrack.tracking.preprocess import sample_target, to_tensor
from vtrack.tracking.windows import hann_window

class OSTrackTracker(Tracker):
    """Single-object tracker around an :class:`OSTrack` model (also ESAT).

    Args:
        model: trained model (put in eval mode and moved to ``device``).
        cfg: tracker options (context factors, Hann window, backend / CE overrides).
        device: torch device to run on.
    """

    name = "ostrack"

    def __init__(self, model: OSTrack, cfg: TrackerSection, device: torch.device | str = "cpu") -> None:
        if not isinstance(model, OSTrack):
            raise TypeError(f"model: expected an OSTrack model, got {type(model).__name__}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        if cfg.backend is not None:
            self.model.set_backend(cfg.backend)
        if cfg.ce_enabled is not None:
            self.model.set_ce(cfg.ce_enabled)
        self.template_size = model.cfg.template_size
        self.search_size = model.cfg.search_size
        fs = model.feat_size
        self.window = hann_window(fs, fs, device=self.device, dtype=torch.float32)[None, None] if cfg.window else None
        #: runs the network branches (``template``, ``search``); swapped for the onnxruntime engine
        self.engine: Engine = TorchEngine(ostrack_branches(self.model))
        self._template: torch.Tensor | None = None
        self._state = TrackState.start([0.0, 0.0, 1.0, 1.0])
        self._frame = 0

    def _set_template(self, image: np.ndarray, box: Any) -> None:
        patch, _, _ = sample_target(image, box, self.cfg.template_factor, self.template_size,
                                    align=self.cfg.crop.align)
        self._template = self.engine.run("template", template=to_tensor(patch, self.device))["template_tokens"]

    def _initialize(self, image: np.ndarray, box: tuple[float, float, float, float], info: dict[str, Any]) -> None:
        self._set_template(image, box)
        self._state = TrackState.start(box)
        self._frame = 0

    @torch.no_grad()
    def _track(self, image: np.ndarray) -> TrackResult:
        H, W = image.shape[:2]
        factor = self.cfg.search_factor * self._state.search_growth(self.cfg.update)
        patch, _, crop_box = sample_target(image, self._state.box, factor, self.search_size,
                                           align=self.cfg.crop.align)
        out = self.engine.run("search", template_tokens=self._template, search=to_tensor(patch, self.device))
        score = out["score_map"]
        ranked = blend_window(score, self.window, self.cfg.window_influence) if self.window is not None else score
        boxes, _ = decode_center_boxes(ranked, out["size_map"], out["offset_map"])
        cx, cy, w, h = (boxes[0].double() * self.search_size).tolist()
        flat = int(ranked.flatten(1).argmax(dim=1))
        conf = float(score.flatten(1)[0, flat])
        in_image = box_from_crop([cx - w / 2, cy - h / 2, w, h], crop_box, self.search_size)
        self._state = update_state(self._state, in_image, conf, self.cfg.update, (W, H))
        self._frame += 1
        every = self.cfg.template_update_interval
        if every and self._frame % every == 0 and conf >= self.cfg.template_update_threshold:
            self._set_template(image, self._state.box)
        return TrackResult(box=tuple(float(v) for v in self._state.box), score=conf)
