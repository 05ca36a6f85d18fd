"""The zoo's CPU configs of SparseTT, VLT (SCAR and TT heads) and DuML: they train on the same data mixture as
ostrack_cpu.yaml, build a tracker through their family, and use the shared state update."""
import numpy as np
import pytest
import torch
import yaml

from vtrack.models import get_family
from vtrack.tracking.postprocess import StateUpdateConfig

CONFIGS = ["configs/sparsett/sparsett_cpu.yaml", "configs/vlt/vlt_scar_cpu.yaml", "configs/vlt/vlt_tt_cpu.yaml",
           "configs/duml/duml_cpu.yaml"]


def _load(path):
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("path", CONFIGS)
def test_cpu_config_builds_a_tracker_on_the_zoo_data(path):
    cfg = _load(path)
    assert cfg["data"]["datasets"] == _load("configs/ostrack/ostrack_cpu.yaml")["data"]["datasets"]
    assert cfg["train"]["seed"] == 1 and cfg["train"]["device"] == "cpu"
    fam = get_family(cfg["model"]["name"])
    torch.manual_seed(0)
    model = fam.build_model(cfg["model"])
    tracker = fam.build_tracker(model, cfg, "cpu")
    assert isinstance(tracker.cfg.update, StateUpdateConfig) and tracker.cfg.update.size_lr_by_score
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    tracker.initialize(img, (60.0, 40.0, 24.0, 30.0), {"language": "a small red disc"})
    x, y, w, h = tracker.track(img).box
    assert 0 <= x and x + w <= 160 and 0 <= y and y + h <= 120 and w >= 10 and h >= 10


def test_sparsett_cpu_has_a_stride_8_grid():
    cfg = _load("configs/sparsett/sparsett_cpu.yaml")
    model = get_family("sparsett").build_model(cfg["model"])
    assert model.score_size == cfg["model"]["search_size"] // 8 == 16
