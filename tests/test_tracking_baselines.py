"""Baseline trackers and the build_tracker factory (baselines and config + checkpoint)."""
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from vtrack.models.registry import FamilyBase, register_family
from vtrack.tracking import (
    OpenCVTracker,
    StaticTracker,
    Tracker,
    TrackerFactory,
    TrackerUnavailableError,
    TrackResult,
    build_tracker,
)
from vtrack.tracking.baselines import opencv_tracker_available


def _square(x):
    img = np.full((40, 72, 3), 30, np.uint8)
    img[10:18, x : x + 8] = 220
    return img


def test_static_tracker_returns_first_box():
    t = StaticTracker()
    t.initialize(_square(2), (2, 10, 8, 8))
    for x in (5, 20, 40):
        res = t.track(_square(x))
        assert res.box == (2.0, 10.0, 8.0, 8.0) and res.score == 1.0
    assert build_tracker("static").name == "static"


def test_opencv_trackers_unavailable_error(monkeypatch):
    # an OpenCV without the contrib modules (opencv-python-headless): simulated, since the
    # package depends on opencv-contrib-python-headless
    from vtrack.tracking import baselines

    monkeypatch.setattr(baselines, "_opencv_constructor", lambda kind: None)
    for kind in ("csrt", "kcf"):
        assert not opencv_tracker_available(kind)
        with pytest.raises(TrackerUnavailableError, match="opencv-contrib-python-headless"):
            build_tracker(kind)
    with pytest.raises(ValueError, match="kind"):
        OpenCVTracker("mosse")


def test_opencv_kcf_follows_square():  # opencv-contrib-python-headless is a dependency: never skipped
    t = build_tracker("kcf")
    t.initialize(_square(2), (2, 10, 8, 8))
    res = None
    for x in range(3, 20):
        res = t.track(_square(x))
    assert abs(res.box[0] - 19) < 4


class _TinyTracker(Tracker):
    def __init__(self, model, device):
        self.model, self.device = model, device

    def _initialize(self, image, box, info):
        self.box = box

    def _track(self, image):
        with torch.no_grad():
            shift = float(self.model(torch.ones(1, 2, device=self.device)).sum())
        return TrackResult((self.box[0] + shift, self.box[1], self.box[2], self.box[3]), 1.0)


@register_family("_test_tiny")
class _TinyFamily(FamilyBase):
    def parse_model(self, model_cfg):
        return dict(model_cfg)

    def build_model(self, model_cfg):
        return nn.Linear(2, model_cfg.get("out", 1))

    def build_criterion(self, cfg):
        raise NotImplementedError("the tiny tracking family is not trained")

    def processing_config(self, cfg):
        raise NotImplementedError("the tiny tracking family is not trained")

    def build_tracker(self, model, cfg, device):
        return _TinyTracker(model, device)


def _trained(tmp_path, wrap=True, out=1):
    cfg = {"model": {"name": "_test_tiny", "out": out}, "tracker": {}}
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.5)
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict(), "epoch": 3} if wrap else model.state_dict(), ckpt)
    return cfg_path, ckpt


@pytest.mark.parametrize("wrap", [True, False])
def test_build_trained_tracker_from_config_and_checkpoint(tmp_path, wrap):
    cfg_path, ckpt = _trained(tmp_path, wrap)
    t = build_tracker("tiny", config=cfg_path, checkpoint=ckpt)
    assert t.name == "tiny" and not t.model.training
    t.initialize(_square(2), (2, 10, 8, 8))
    assert t.track(_square(2)).box[0] == pytest.approx(2 + 2.5)  # weights 1, 1 and bias 0.5 loaded
    # a bare config path works as the spec; the factory is picklable and rebuilds the same tracker
    assert isinstance(build_tracker(str(cfg_path), checkpoint=ckpt), _TinyTracker)
    f = TrackerFactory("tiny", config=str(cfg_path), checkpoint=str(ckpt))
    import pickle

    assert isinstance(pickle.loads(pickle.dumps(f))(), _TinyTracker)


def test_build_tracker_errors(tmp_path):
    cfg_path, ckpt = _trained(tmp_path)
    with pytest.raises(ValueError, match="unknown tracker 'nope'"):
        build_tracker("nope")
    with pytest.raises(ValueError, match="checkpoint"):
        build_tracker("tiny", config=cfg_path)
    with pytest.raises(ValueError, match="takes neither"):
        build_tracker("static", config=cfg_path)
    with pytest.raises(FileNotFoundError, match="config"):
        build_tracker("tiny", config=tmp_path / "missing.yaml", checkpoint=ckpt)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        build_tracker("tiny", config=cfg_path, checkpoint=tmp_path / "missing.pth")
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"model": {"name": "_test_tiny", "out": 3}}))
    with pytest.raises(ValueError, match="does not match"):
        build_tracker("tiny", config=tmp_path / "other.yaml", checkpoint=ckpt)
    (tmp_path / "noname.yaml").write_text("model: {}\n")
    with pytest.raises(ValueError, match="model"):
        build_tracker("tiny", config=tmp_path / "noname.yaml", checkpoint=ckpt)
    with pytest.raises(TypeError, match="spec"):
        build_tracker(3)


class _FakeCV:
    """Stands in for an OpenCV tracker: records the init box, fails init on demand."""

    def __init__(self, fail=False):
        self.fail, self.box = fail, None

    def init(self, image, box):
        import cv2

        if self.fail:
            raise cv2.error("OpenCV(5.0.0) resize.cpp: (-215:Assertion failed) !ssize.empty()")
        self.box = box

    def update(self, image):
        return True, (1.0, 2.0, 3.0, 4.0)


def test_opencv_tracker_clips_box_and_survives_init_failure(monkeypatch):
    from vtrack.tracking import baselines

    fakes = []
    monkeypatch.setattr(baselines, "_opencv_constructor", lambda kind: lambda: fakes[-1])
    fakes.append(_FakeCV())
    t = OpenCVTracker("csrt")
    t.initialize(_square(2), (-5.2, 30.0, 20.0, 20.0))  # leaves the 72x40 frame left and bottom
    assert fakes[-1].box == (0, 30, 15, 10)
    assert t.track(_square(3)).box == (1.0, 2.0, 3.0, 4.0)
    fakes.append(_FakeCV(fail=True))
    t.initialize(_square(2), (70.0, 10.0, 8.0, 8.0))
    res = t.track(_square(3))
    assert res.box == (70.0, 10.0, 8.0, 8.0) and res.score == 0.0
