"""Synthetic benchmark: determinism, ground truth that matches the pixels, absence labels,
language that tells the target from its look-alikes, and the GOT-10k reader on its output."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from vtrack.data import load_dataset
from vtrack.data.synthetic import COLOURS, SyntheticConfig, ensure_synthetic, generate_synthetic, render_sequence

SMALL = dict(train=3, val=1, test=2, min_frames=12, max_frames=16, width=128, height=128)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic(root, SyntheticConfig(seed=3, **SMALL), progress=False)
    return root


def test_same_seed_same_files_other_seed_differs(bench, tmp_path):
    again = tmp_path / "again"
    generate_synthetic(again, SyntheticConfig(seed=3, **SMALL), progress=False)
    assert _digest(again) == _digest(bench)
    other = render_sequence(SyntheticConfig(seed=4, **SMALL), "train", 0)
    assert not np.array_equal(other["boxes"], render_sequence(SyntheticConfig(seed=3, **SMALL), "train", 0)["boxes"])


def test_reader_loads_every_split_with_language_and_attributes(bench):
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        seqs = load_dataset("synthetic", bench, split)
        assert len(seqs) == count
        for s in seqs:
            assert len(s.frames) == len(s.boxes) >= 12
            assert s.language and len(s.language.split()) >= 3
            assert s.valid[0] and s.attributes["cover"][0] > 0
            assert s.frame(0).shape == (128, 128, 3)
            assert "motion" in s.attributes and "target" in s.attributes


def test_boxes_cover_the_target_colour(bench):
    seqs = load_dataset("synthetic", bench, "train") + load_dataset("synthetic", bench, "test")
    for s in seqs:
        colour = np.array(COLOURS[s.attributes["target"]["colour"]], dtype=float)
        img = s.frame(0).astype(float)  # the first frames are clean and fully visible
        x, y, w, h = s.boxes[0]
        close = np.linalg.norm(img - colour, axis=2) < 70
        inside = close[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))]
        assert inside.sum() >= 0.15 * w * h, s.name
        if close.mean() < 0.2:  # unless the background itself has the target's colour (black on coins)
            # the target colour is far denser inside the box than over the whole frame
            assert inside.mean() > 5.0 * close.mean(), s.name


def test_absent_frames_are_flagged():
    cfg = SyntheticConfig(seed=11, train=0, val=0, test=6, min_frames=40, max_frames=48, width=128, height=128)
    found = False
    for i in range(6):
        seq = render_sequence(cfg, "test", i)
        absent = seq["absence"].astype(bool)
        assert not absent[0]
        assert np.array_equal(absent, seq["cover"] == 0)
        found |= bool(absent.any())
    assert found, "expected at least one sequence with a fully occluded or out-of-view target"


def test_language_distinguishes_target_from_distractors():
    cfg = SyntheticConfig(seed=5, train=12, val=0, test=0, min_frames=10, max_frames=10, width=128, height=128)
    checked = 0
    for i in range(12):
        seq = render_sequence(cfg, "train", i)
        attrs = seq["attributes"]
        t = attrs["target"]
        for d in attrs.get("distractor_appearance") or []:
            checked += 1
            assert (d["colour"], d["pattern"]) != (t["colour"], t["pattern"])
            assert t["colour"] in seq["language"] and t["shape"] in seq["language"]
    assert checked > 0


def test_ensure_reuses_and_rejects_other_parameters(bench):
    assert ensure_synthetic(bench, SyntheticConfig(seed=3, **SMALL), progress=False) == Path(bench)
    with pytest.raises(ValueError, match="parameters"):
        ensure_synthetic(bench, SyntheticConfig(seed=9, **SMALL), progress=False)


def test_cli_synth_writes_a_benchmark(tmp_path, capsys):
    from vtrack.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--train", "1", "--val", "0", "--test", "1", "--frames", "8",
                 "--size", "96x96"]) == 0
    assert len(load_dataset("synthetic", out, "test")) == 1
    assert main(["synth", "--out", str(tmp_path / "x"), "--size", "big"]) == 2
    assert "--size" in capsys.readouterr().err
