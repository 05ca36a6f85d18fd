"""Strict config validation and key=value overrides."""
from dataclasses import dataclass, field
from typing import Literal

import pytest

from vtrack.config import apply_overrides, check_sections, from_dict, load_config, to_dict


@dataclass
class _Sched:
    name: Literal["step", "cosine"] = "step"
    milestones: list[int] = field(default_factory=list)


@dataclass
class _Train:
    epochs: int
    lr: float = 1e-4
    clip: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    amp: bool = False
    schedule: _Sched = field(default_factory=_Sched)
    extra: dict[str, float] = field(default_factory=dict)


def test_from_dict_converts_and_nests():
    cfg = from_dict(_Train, {"epochs": 3, "lr": "4e-4", "betas": [0.8, 0.9], "schedule": {"milestones": [2]}}, "train")
    assert cfg.lr == pytest.approx(4e-4) and cfg.betas == (0.8, 0.9) and cfg.schedule.milestones == [2]
    assert from_dict(_Train, {"epochs": 1, "lr": 1}).lr == 1.0
    assert to_dict(cfg)["schedule"] == {"name": "step", "milestones": [2]}


@pytest.mark.parametrize(
    "data,err,match",
    [
        ({"epochs": 1, "lr": "abc"}, TypeError, r"train.lr: expected float, got 'abc'"),
        ({"epochs": 1, "lrr": 1.0}, ValueError, r"train.lrr: unknown key"),
        ({"lr": 1.0}, ValueError, r"train.epochs: missing required key"),
        ({"epochs": True}, TypeError, r"train.epochs: expected int, got True"),
        ({"epochs": 1, "schedule": {"name": "exp"}}, ValueError, r"train.schedule.name: expected one of 'step', 'cosine'"),
        ({"epochs": 1, "schedule": {"milestones": [1, "x"]}}, TypeError, r"train.schedule.milestones\[1\]: expected int"),
        ({"epochs": 1, "betas": [0.9]}, ValueError, r"train.betas: expected list of 2 values"),
        ({"epochs": 1, "clip": "none"}, TypeError, r"train.clip: expected float"),
        ({"epochs": 1, "extra": {"a": "b"}}, TypeError, r"train.extra.a: expected float"),
        ({"epochs": 1, "schedule": 3}, TypeError, r"train.schedule: expected a mapping"),
    ],
)
def test_from_dict_errors_name_the_key(data, err, match):
    with pytest.raises(err, match=match):
        from_dict(_Train, data, "train")


def test_load_config_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 2\n  lr: 1.0e-4\ndata:\n  datasets:\n    - {name: a, root: /x}\n")
    cfg = load_config(p, ["train.lr=3e-4", "train.schedule.name=cosine", "data.datasets.0.root=/y", "model.name=ostrack"])
    assert cfg["train"]["lr"] == "3e-4" and cfg["train"]["schedule"] == {"name": "cosine"}
    assert cfg["data"]["datasets"][0]["root"] == "/y" and cfg["model"] == {"name": "ostrack"}
    assert from_dict(_Train, cfg["train"]).lr == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="key=value"):
        load_config(p, ["train.lr"])
    with pytest.raises(ValueError, match="not a valid index"):
        apply_overrides(cfg, ["data.datasets.3.root=/z"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ValueError, match="trian: unknown config section"):
        check_sections({"trian": {}})
