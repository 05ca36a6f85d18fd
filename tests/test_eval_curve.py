"""vtrack curve: every checkpoint of a training run scored on a val split, test split refused."""
import json
import os
import time

import pytest
import torch
import yaml

from vtrack.cli import main
from vtrack.data.synthetic import generate_synthetic
from vtrack.eval.curve import learning_curve, run_checkpoints
from vtrack.models import get_family

MODEL = {"name": "ostrack", "template_size": 32, "search_size": 64,
         "backbone": {"patch_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2, "drop_path_rate": 0.0,
                      "ce_enabled": False, "ce_layers": []},
         "head": {"channels": 16, "num_layers": 2}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    generate_synthetic(root, train=0, val=2, test=1, frames=8, width=96, height=96, progress=False)
    return root


def _run(tmp_path, epochs=2):
    run = tmp_path / "run_a"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": MODEL, "tracker": {}}))
    start = (run / "config.yaml").stat().st_mtime
    for e in range(1, epochs + 1):
        torch.manual_seed(e)
        model = get_family("ostrack").build_model(MODEL)
        path = run / f"checkpoint_e{e:04d}.pth"
        torch.save({"model": model.state_dict()}, path)
        os.utime(path, (start + 60 * e, start + 60 * e))  # written e minutes after the start
    return run


def test_curve_scores_every_checkpoint_in_epoch_order(tmp_path, data):
    run = _run(tmp_path)
    result = learning_curve([run], dataset="synthetic", root=data, split="val", out=tmp_path / "curve")
    points = result["runs"]["run_a"]["points"]
    assert [p["epoch"] for p in points] == [1, 2]
    assert [p["minutes"] for p in points] == pytest.approx([1.0, 2.0], abs=0.02)
    for p in points:
        assert 0.0 <= p["scores"]["ao"] <= 1.0
    saved = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert saved["split"] == "val" and saved["runs"]["run_a"]["points"][1]["epoch"] == 2
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 1000
    # two different random models: their val results differ, so each checkpoint was really run
    a = (tmp_path / "curve" / "run_a" / "checkpoint_e0001").rglob("*_001.txt")
    b = (tmp_path / "curve" / "run_a" / "checkpoint_e0002").rglob("*_001.txt")
    assert sorted(p.read_text() for p in a) != sorted(p.read_text() for p in b)


def test_curve_refuses_the_test_split(tmp_path, data):
    run = _run(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="test split is refused"):
        learning_curve([run], dataset="synthetic", root=data, split="test", out=tmp_path / "c")


def test_curve_errors(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        run_checkpoints(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no checkpoint_e"):
        run_checkpoints(empty)


def test_curve_cli(tmp_path, data, capsys):
    run = _run(tmp_path, epochs=1)
    assert main(["curve", str(run), "--dataset", "synthetic", "--root", str(data), "--out", str(tmp_path / "o")]) == 0
    assert "run_a epoch   1" in capsys.readouterr().out
