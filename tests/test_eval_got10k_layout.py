"""End to end on a tiny GOT-10k folder read by the real reader: cover labels, resolution, AO."""
import json

import cv2
import numpy as np
import pytest

from vtrack import cli


def _write_got10k(root, split="val"):
    """Two 6-frame sequences of a moving bright square; the second has cover 0 on frame 4."""
    split_dir = root / split
    names = ["GOT-10k_Val_000001", "GOT-10k_Val_000002"]
    split_dir.mkdir(parents=True)
    (split_dir / "list.txt").write_text("\n".join(names) + "\n")
    for k, name in enumerate(names):
        d = split_dir / name
        d.mkdir()
        boxes = []
        for t in range(6):
            img = np.full((48, 96, 3), 30, np.uint8)
            x = 4 + (k + 2) * t
            img[12:24, x : x + 12] = 220
            cv2.imwrite(str(d / f"{t + 1:08d}.jpg"), img)
            boxes.append(f"{x},12,12,12")
        (d / "groundtruth.txt").write_text("\n".join(boxes) + "\n")
        cover = [8, 8, 8, 8, 0 if k else 8, 8]
        (d / "cover.label").write_text("\n".join(map(str, cover)) + "\n")
        (d / "absence.label").write_text("\n".join("1" if c == 0 else "0" for c in cover) + "\n")
        (d / "cut_by_image.label").write_text("0\n" * 6)
        (d / "meta_info.ini").write_text("[METAINFO]\nobject_class: square\nresolution: (96, 48)\n")
    return names


def test_eval_static_on_got10k_layout(tmp_path, capsys):
    names = _write_got10k(tmp_path / "GOT-10k")
    out = tmp_path / "res"
    argv = ["eval", "--tracker", "static", "--dataset", "got10k", "--root", str(tmp_path / "GOT-10k"),
            "--split", "val", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    # static box vs a square moving 2 px (seq 1) or 3 px (seq 2) per frame, frames 2..6;
    # seq 2 frame 5 has cover 0 -> left out; IoUs pooled over the 9 counted frames
    ious = []
    for step, skip in ((2, None), (3, 4)):
        for t in range(1, 6):
            if t == skip:
                continue
            inter = max(0, 12 - step * t) * 12
            ious.append(inter / (2 * 144 - inter))
    assert summary["scores"]["frames"] == 9
    assert summary["scores"]["ao"] == pytest.approx(np.mean(ious), abs=1e-9)
    assert summary["scores"]["sr50"] == pytest.approx(np.mean(np.array(ious) > 0.5))
    assert (out / names[0] / f"{names[0]}_001.txt").is_file()
    assert "| static |" in capsys.readouterr().out
