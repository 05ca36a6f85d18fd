"""`vtrack vot` over the TraX protocol (driven by the trax client API) and `vtrack vot-setup`."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import trax
import yaml
from trax.client import Client

from vtrack.cli import main
from vtrack.data.synthetic import SyntheticConfig, render_sequence
from vtrack.models import get_family

ROOT = Path(__file__).resolve().parents[1]


def _frames(tmp_path, n=5):
    seq = render_sequence(SyntheticConfig(frames=8, train=0, val=0, test=1, width=160, height=160), "test", 0)
    paths = []
    for i, img in enumerate(seq["frames"][:n]):
        p = tmp_path / "color" / f"{i + 1:08d}.jpg"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
        paths.append(p)
    return paths, seq["boxes"][0]


def _serve(argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "vtrack.cli", "vot", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)


def _session(argv, paths, box):
    """Handshake, initialise on the first frame, track the rest; returns (client metadata, boxes, scores)."""
    proc = _serve(argv)
    try:
        log: list[str] = []  # what the tracker process wrote besides the protocol (vot-trax needs a logger)
        client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), timeout=120, log=log.append)
        meta = {"name": client.tracker_name, "family": client.tracker_family,
                "regions": client.region_formats, "images": client.image_formats}
        image = {"color": trax.FileImage.create(str(paths[0]))}
        objs, _ = client.initialize(image, [(trax.Rectangle.create(*box), {})], {})
        boxes, scores = [objs[0][0].bounds()], [float(objs[0][1]["confidence"])]
        for p in paths[1:]:
            objs, _ = client.frame({"color": trax.FileImage.create(str(p))}, {}, [])
            boxes.append(objs[0][0].bounds())
            scores.append(float(objs[0][1]["confidence"]))
        client.quit()
        assert proc.wait(timeout=300) == 0
        return meta, boxes, scores
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_trax_handshake_and_frames_static(tmp_path):
    paths, box = _frames(tmp_path, n=4)
    box = tuple(float(v) for v in box)
    meta, boxes, scores = _session(["static"], paths, box)
    assert meta["family"] == "vtrack" and meta["name"] == "static"
    assert "rectangle" in meta["regions"] and "polygon" in meta["regions"] and "path" in meta["images"]
    assert len(boxes) == 4
    np.testing.assert_allclose(boxes, [box] * 4, atol=1e-3)  # the static tracker keeps the first box


def test_trax_trained_tracker_matches_in_process(tmp_path):
    """A trained (seeded tiny) OSTrack over TraX gives the boxes of the same tracker run in-process."""
    with open(ROOT / "configs/ostrack/ostrack_tiny.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["model"]["backbone"].update(depth=2, embed_dim=96, ce_layers=[2])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    model = get_family("ostrack").build_model(cfg["model"])
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    paths, box = _frames(tmp_path, n=4)
    box = tuple(float(v) for v in box)
    _, boxes, _ = _session(["tiny", "--config", str(tmp_path / "c.yaml"), "--checkpoint", str(tmp_path / "w.pth")],
                           paths, box)
    from vtrack.tracking import build_tracker

    tracker = build_tracker("tiny", config=str(tmp_path / "c.yaml"), checkpoint=str(tmp_path / "w.pth"))
    imgs = [cv2.imread(str(p))[..., ::-1].copy() for p in paths]
    tracker.initialize(imgs[0], box)
    expected = [box] + [tracker.track(im).box for im in imgs[1:]]
    np.testing.assert_allclose(boxes, expected, atol=1e-2)  # TraX sends float32


def test_vot_setup_writes_trackers_ini(tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "c.yaml").write_text("model: {name: ostrack}\n")
    (tmp_path / "w.pth").write_bytes(b"")
    assert main(["vot-setup", "--workspace", str(ws), "static", "kcf"]) == 0
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ws / "trackers.ini")
    assert ini.sections() == ["vtrack_static", "vtrack_kcf"]
    sec = ini["vtrack_static"]
    assert sec["protocol"] == "trax" and sec["command"].split()[1:] == ["-m", "vtrack.cli", "vot", "static", "--device",
                                                                          "cpu", "--runtime", "pytorch"]
    assert sec["env_pythonpath"] == str(ROOT)
    assert main(["vot-setup", "--workspace", str(ws), "static"]) == 2  # never overwrites silently
    assert "exists already" in capsys.readouterr().err
    assert main(["vot-setup", "--workspace", str(ws), "--overwrite", "mine", "--config", str(tmp_path / "c.yaml"),
                 "--checkpoint", str(tmp_path / "w.pth"), "--runtime", "onnxruntime"]) == 0
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ws / "trackers.ini")
    cmd = ini["vtrack_mine_onnx"]["command"]
    assert f"--config {tmp_path / 'c.yaml'}" in cmd and "--runtime onnxruntime" in cmd
    assert main(["vot-setup", "--workspace", str(ws), "a", "b", "--config", str(tmp_path / "c.yaml")]) == 2
    assert main(["vot-setup", "--workspace", str(tmp_path / "missing"), "static"]) == 2
    assert main(["vot-setup", "--workspace", str(ws), "--overwrite", "static", "--runtime", "onnxruntime"]) == 2
    assert "no network" in capsys.readouterr().err
