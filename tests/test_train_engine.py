"""Samplers, processing and the trainer on tiny generated sequences with a tiny test family."""
from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from vtrack.data.sequence import Sequence
from vtrack.models import registry
from vtrack.train import trainer as T
from vtrack.train.losses import centernet_focal_loss, l1_loss
from vtrack.train.processing import IMAGENET_MEAN, IMAGENET_STD, Processor
from vtrack.train.samplers import ShardedSampler, TrackingSampler
from vtrack.train.schema import AugmentConfig, ProcessingConfig
from vtrack.config import from_dict

FAMILY = "_train_test_tiny"  # private: not listed by list_families()


# ---------------------------------------------------------------------------------------------
# tiny family and data (also imported by the torchrun worker script)
# ---------------------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """A few convs: template descriptor modulates search features -> centre heatmap + box."""

    def __init__(self, width: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Conv2d(2 * width, 1, 1)
        self.box = nn.Linear(width, 4)
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def forward(self, batch):
        z = self.backbone(batch["template"]).mean((2, 3), keepdim=True)
        x = self.backbone(batch["search"])
        f = self.drop(torch.cat([x, x * z], 1))
        return {"heatmap": torch.sigmoid(self.head(f)), "box": self.box(x.mean((2, 3)))}


class TinyCriterion(nn.Module):
    def __init__(self, l1_only: bool = False) -> None:
        super().__init__()
        self.l1_only = l1_only

    def forward(self, outputs, batch):
        box = l1_loss(outputs["box"], batch["search_box"] / 64.0)
        if self.l1_only:  # a per-sample mean: batch 4 == two accumulated batches of 2
            return box, {"l1": float(box.detach())}
        focal = centernet_focal_loss(outputs["heatmap"], batch["label_heatmap"])
        return focal + box, {"focal": float(focal.detach()), "l1": float(box.detach())}


class TinyFamily(registry.FamilyBase):
    def parse_model(self, model_cfg):
        return dict(model_cfg)

    def build_tracker(self, model, cfg, device):
        raise NotImplementedError("the tiny training family has no tracker")

    def build_model(self, model_cfg):
        return TinyNet(int(model_cfg.get("width", 8)), float(model_cfg.get("dropout", 0.2)))

    def build_criterion(self, cfg):
        return TinyCriterion(cfg["model"].get("loss") == "l1")

    def processing_config(self, cfg):
        return {
            "sample_mode": "pair",
            "template": {"size": 32, "factor": 2.0},
            "search": {"size": 64, "factor": 4.0, "scale_jitter": 0.25, "center_jitter": 3.0},
            "labels": [{"name": "gaussian_heatmap", "stride": 8}],
            "sampler": {"max_gap": 5},
        }


def register_tiny_family() -> None:
    if FAMILY not in registry._FAMILIES:
        registry.register_family(FAMILY)(TinyFamily)


def make_sequences(root: Path, n_seq: int = 3, n_frames: int = 6, h: int = 48, w: int = 64) -> list[Sequence]:
    """Sequences of a coloured rectangle moving over noise, written as PNG files."""
    rng = np.random.default_rng(0)
    seqs = []
    for s in range(n_seq):
        folder = root / f"seq{s}"
        folder.mkdir(parents=True, exist_ok=True)
        frames, boxes = [], []
        for f in range(n_frames):
            img = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
            x, y, bw, bh = 10 + 3 * f + s, 8 + 2 * f, 14 + s, 10
            img[y : y + bh, x : x + bw] = (200, 40 + 60 * s, 90)
            path = folder / f"{f:04d}.png"
            if not path.exists():  # the torchrun workers reuse the files written by the test
                cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            frames.append(str(path))
            boxes.append((x, y, bw, bh))
        valid = np.ones(n_frames, bool)
        valid[1] = False  # one invalid frame per sequence: never sampled
        seqs.append(Sequence(f"seq{s}", frames, np.array(boxes, float), valid, language=f"box {s}", dataset="tiny"))
    return seqs


def tiny_config(root: Path, **train_over) -> dict:
    train = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "device": "cpu", "seed": 3, "log_interval": 1,
             "schedule": {"name": "cosine", "warmup_epochs": 0.5}, "grad_clip": 1.0}
    train.update(train_over)
    return {
        "model": {"name": FAMILY, "width": 8},
        "data": {
            "datasets": [{"name": "tiny", "root": str(root), "split": "train"}],
            "sampler": {"samples_per_epoch": 12, "negative_ratio": 0.25},
            "num_workers": 0,
        },
        "train": train,
    }


def patch_loader(monkeypatch_or_module, sequences_by_root: dict[str, list[Sequence]]) -> None:
    """Make the trainer read datasets from ``sequences_by_root`` (root -> sequences)."""

    def fake(name, root, split):
        return sequences_by_root.get(str(Path(root)), [])

    if isinstance(monkeypatch_or_module, pytest.MonkeyPatch):
        monkeypatch_or_module.setattr(T, "_load_dataset", fake)
    else:
        monkeypatch_or_module._load_dataset = fake


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_data")
    return root, make_sequences(root)


@pytest.fixture
def setup(data_root, monkeypatch):
    register_tiny_family()
    root, seqs = data_root
    patch_loader(monkeypatch, {str(root): seqs})
    return root, seqs


# ---------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------
def test_pair_sampler_deterministic_valid_and_gapped(data_root):
    _, seqs = data_root
    other = make_sequences(data_root[0] / "other", n_seq=1)
    s = TrackingSampler([seqs, other], [3.0, 1.0], samples_per_epoch=400, max_gap=2, negative_ratio=0.3, seed=5)
    specs = [s.sample(0, i) for i in range(400)]
    assert specs[7] == s.sample(0, 7) and specs[7] == TrackingSampler([seqs, other], [3.0, 1.0], samples_per_epoch=400,
                                                                       max_gap=2, negative_ratio=0.3, seed=5).sample(0, 7)
    assert [s.sample(1, i) for i in range(20)] != specs[:20]
    pos = [p for p in specs if p.positive]
    neg = [p for p in specs if not p.positive]
    assert 0.2 < len(neg) / len(specs) < 0.4
    for p in specs:
        assert 1 not in p.template_frames and 1 not in p.search_frames
    for p in pos:
        assert abs(p.template_frames[0] - p.search_frames[0]) <= 2 and p.template_frames != p.search_frames
        assert (p.dataset, p.sequence) == (p.search_dataset, p.search_sequence)
    for p in neg:
        assert (p.dataset, p.sequence) != (p.search_dataset, p.search_sequence)
    frac = np.mean([p.dataset == 0 for p in specs])
    assert 0.65 < frac < 0.85  # weights 3:1


def test_sequence_sampler_and_sharding(data_root):
    _, seqs = data_root
    s = TrackingSampler([seqs], mode="sequence", samples_per_epoch=50, max_gap=4, num_support=3, num_query=2, seed=1)
    for i in range(50):
        p = s.sample(2, i)
        frames = p.template_frames + p.search_frames
        assert len(p.template_frames) == 3 and len(p.search_frames) == 2
        assert list(frames) == sorted(frames) and 1 not in frames and max(frames) - min(frames) <= 4
    a, b = ShardedSampler(11, 0, 2), ShardedSampler(11, 1, 2)
    assert len(a) == len(b) == 6 and sorted(set(a) | set(b)) == list(range(11))
    assert list(ShardedSampler(11, 1, 2, start=4)) == list(b)[4:]


def test_sampler_errors(data_root):
    _, seqs = data_root
    bad = Sequence("nv", seqs[0].frames, seqs[0].boxes, np.zeros(len(seqs[0].frames), bool))
    with pytest.raises(ValueError, match="tinyset: no sequence has a frame with a valid target"):
        TrackingSampler([[bad]], names=["tinyset"])
    with pytest.raises(ValueError, match="empty"):
        TrackingSampler([[]])
    with pytest.raises(ValueError, match="weights"):
        TrackingSampler([seqs], [0.0])


# ---------------------------------------------------------------------------------------------
# processing
# ---------------------------------------------------------------------------------------------
def _processor(flip=0.0, **proc):
    base = TinyFamily().processing_config({})
    base.update(proc)
    return Processor(from_dict(ProcessingConfig, base, "processing"),
                     AugmentConfig(flip_prob=flip, brightness_jitter=0.0, grayscale_prob=0.0))


def test_language_drop_empties_descriptions(data_root):
    _, seqs = data_root
    s = TrackingSampler([seqs], samples_per_epoch=20, max_gap=3, seed=0)
    base = TinyFamily().processing_config({})
    cfg = from_dict(ProcessingConfig, base, "processing")

    def run(p):
        proc = Processor(cfg, AugmentConfig(flip_prob=0.5, brightness_jitter=0.2, grayscale_prob=0.0,
                                            language_drop_prob=p))
        return [proc(s.sample(0, i), s, s.rng(0, i)) for i in range(6)]

    off, on = run(0.0), run(1.0)
    assert all(o["language"].startswith("box") for o in off) and all(o["language"] == "" for o in on)
    half = run(0.5)
    assert {o["language"] == "" for o in half} == {True, False}
    with pytest.raises(ValueError, match="language_drop_prob"):
        AugmentConfig(language_drop_prob=1.5)


def test_pair_processing_shapes_boxes_labels(data_root):
    _, seqs = data_root
    s = TrackingSampler([seqs], samples_per_epoch=20, max_gap=3, seed=0)
    proc = _processor()
    spec = s.sample(0, 3)
    out = proc(spec, s, s.rng(0, 3))
    assert out["template"].shape == (3, 32, 32) and out["search"].shape == (3, 64, 64)
    assert out["template"].dtype == torch.float32 and out["label_heatmap"].shape == (1, 8, 8)
    assert out["positive"] is True and out["language"].startswith("box")
    # template: no jitter, area crop of factor 2 -> target centred, sqrt(wh) = 32 / 2
    tb = out["template_box"].numpy()
    assert tb[0] + tb[2] / 2 == pytest.approx(16.0, abs=1e-4) and np.sqrt(tb[2] * tb[3]) == pytest.approx(16.0, rel=1e-4)
    # heatmap peak at the rounded centre of the search box in feature cells
    sb = out["search_box"].numpy() / 8
    cy, cx = divmod(int(out["label_heatmap"].argmax()), 8)
    assert (cx, cy) == (int(np.round(sb[0] + sb[2] / 2)), int(np.round(sb[1] + sb[3] / 2)))
    # the search crop shows the rectangle's colour at the box centre (normalised RGB)
    c = out["search"][:, int(sb[1] * 8 + sb[3] * 4), int(sb[0] * 8 + sb[2] * 4)].numpy() * IMAGENET_STD + IMAGENET_MEAN
    assert c[0] * 255 == pytest.approx(200, abs=25)
    # same (epoch, index) -> identical sample
    again = proc(s.sample(0, 3), s, s.rng(0, 3))
    assert torch.equal(again["search"], out["search"]) and torch.equal(again["search_box"], out["search_box"])


def test_flip_mirrors_image_and_box(data_root):
    _, seqs = data_root
    s = TrackingSampler([seqs], samples_per_epoch=5, seed=0)
    plain = _processor(0.0)(s.sample(0, 1), s, s.rng(0, 1))
    flipped = _processor(1.0)(s.sample(0, 1), s, s.rng(0, 1))
    assert torch.allclose(flipped["search"], plain["search"].flip(-1), atol=1e-6)
    b, fb = plain["search_box"], flipped["search_box"]
    assert fb[0].item() == pytest.approx(64 - b[0].item() - b[2].item(), abs=1e-4) and fb[1] == b[1]


def test_sequence_processing(data_root):
    _, seqs = data_root
    s = TrackingSampler([seqs], mode="sequence", samples_per_epoch=4, max_gap=5, num_support=2, num_query=3, seed=0)
    proc = _processor(sample_mode="sequence")
    out = proc(s.sample(0, 0), s, s.rng(0, 0))
    assert out["train_images"].shape == (2, 3, 64, 64) and out["test_images"].shape == (3, 3, 64, 64)
    assert out["train_boxes"].shape == (2, 4) and out["test_boxes"].shape == (3, 4)
    assert out["label_heatmap"].shape == (3, 1, 8, 8) and out["template"].shape == (3, 32, 32)


# ---------------------------------------------------------------------------------------------
# trainer
# ---------------------------------------------------------------------------------------------
def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_train_resume_is_bit_exact(setup, tmp_path):
    root, _ = setup
    cfg = tiny_config(root, ema={"enabled": True, "decay": 0.9})
    full = T.train({**cfg, "train": {**cfg["train"], "checkpoint_steps": 2, "keep_checkpoints": 2}},
                   out_dir=tmp_path / "full")
    assert full.name == "checkpoint_e0002.pth"
    # every 2 steps (s2, s4) and every epoch (e1 = step 3, e2 = step 6), newest 2 kept
    assert sorted(p.name for p in (tmp_path / "full").glob("checkpoint_*")) == ["checkpoint_e0002.pth",
                                                                               "checkpoint_s00000004.pth"]
    ck = torch.load(full, weights_only=True)
    assert set(T.CHECKPOINT_KEYS) <= set(ck) and ck["step"] == 6 and ck["epoch"] == 2
    # interrupted mid-epoch 1 (step 4 of 6), then resumed
    part = T.train(cfg, out_dir=tmp_path / "part", max_steps=4)
    assert part.name == "checkpoint_s00000004.pth"
    resumed = T.train(cfg, out_dir=tmp_path / "part", resume=part)
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ea, eb = ck["ema"], torch.load(resumed, weights_only=True)["ema"]
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    assert not all(torch.equal(a[k], ea[k]) for k in a)  # the EMA differs from the weights
    # provenance: one record per training session, the resumed session's starts at step 4
    from vtrack.provenance import cpu_model

    (one,) = ck["provenance"]
    two = torch.load(resumed, weights_only=True)["provenance"]
    assert one["from_step"] == 0 and one["commit"] and one["cpu"] == cpu_model() and one["torch"] == torch.__version__
    assert [p["from_step"] for p in two] == [0, 4]
    with open(tmp_path / "full" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {"loss", "lr", "focal", "l1"} <= set(rows[0])
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] < lrs[1] and lrs[-1] < lrs[2]  # warm-up then cosine decay
    assert (tmp_path / "full" / "config.yaml").exists()
    exported = T.export_weights(full, tmp_path / "ema.pth", ema=True)
    assert all(torch.equal(v, ea[k]) for k, v in torch.load(exported, weights_only=True).items())
    with pytest.raises(ValueError, match="holds no 'ema' weights"):
        T.export_weights(T.train(tiny_config(root, epochs=1), out_dir=tmp_path / "noema", max_steps=1),
                         tmp_path / "x.pth", ema=True)
    assert not list((tmp_path / "full").glob("*.tmp"))


def test_param_groups_schedule_and_lr_scaling():
    net = TinyNet()
    groups = T.build_param_groups(net, 1e-3, 0.01, "backbone.", 0.1)
    names = {g["name"]: g for g in groups}
    assert names["backbone"]["lr"] == pytest.approx(1e-4) and names["default"]["lr"] == pytest.approx(1e-3)
    assert len(names["backbone"]["params"]) == 6
    from vtrack.train.distributed import scaled_lr
    from vtrack.train.schema import ScheduleConfig

    assert scaled_lr(4e-4, 32, "linear", 128) == pytest.approx(1e-4)
    assert scaled_lr(4e-4, 32, "sqrt", 128) == pytest.approx(2e-4)
    step = T.LrSchedule(ScheduleConfig(name="step", milestones=[2]), steps_per_epoch=10, total_steps=30)
    assert step(19) == 1.0 and step(20) == pytest.approx(0.1)
    cos = T.LrSchedule(ScheduleConfig(name="cosine", min_lr_ratio=0.1, warmup_epochs=1, warmup_start=0.0), 10, 40)
    assert cos(0) == 0.0 and cos(5) == pytest.approx(0.5 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 5 / 40))))
    assert cos(40) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda c: c["train"].update(lr="abc"), r"train.lr: expected float, got 'abc'"),
        (lambda c: c["train"].update(lrr=1.0), r"train.lrr: unknown key"),
        (lambda c: c["data"]["sampler"].update(max_gap="x"), r"data.sampler.max_gap: expected int"),
        (lambda c: c["data"]["datasets"][0].update(root="/no/such/dir"), r"data.datasets\[0\].root: dataset path does not exist"),
        (lambda c: c["model"].update(name="nope"), r"model.name: unknown tracker family"),
        (lambda c: c.update(trian={}), r"trian: unknown config section"),
        (lambda c: c["train"].update(amp="bf16"), r"train.amp: 'bf16' needs a CUDA device"),
        (lambda c: c["train"].update(backend="reference"), r"train.backend: model TinyNet has no set_backend"),
        (lambda c: c["train"].update(backend="tritn"), r"train.backend: expected one of \['auto', .*'reference'.*got 'tritn'"),
    ],
)
def test_bad_config_fails_before_training(setup, tmp_path, mutate, match):
    root, _ = setup
    cfg = tiny_config(root)
    mutate(cfg)
    with pytest.raises((ValueError, TypeError), match=match):
        T.train(cfg, out_dir=tmp_path / "bad")
    assert not list(tmp_path.glob("bad/checkpoint_*"))


def test_empty_dataset_and_corrupt_checkpoint(setup, tmp_path, monkeypatch):
    root, seqs = setup
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = tiny_config(root)
    cfg["data"]["datasets"].append({"name": "tiny", "root": str(empty)})
    with pytest.raises(ValueError, match=r"data.datasets\[1\].*the dataset is empty"):
        T.train(cfg, out_dir=tmp_path / "o")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"resume: .*bad.pth is not a readable checkpoint"):
        T.train(tiny_config(root), out_dir=tmp_path / "o", resume=bad)
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"not a vtrack training checkpoint: missing"):
        T.train(tiny_config(root), out_dir=tmp_path / "o", resume=tmp_path / "other.pth")
    assert not (tmp_path / "o").exists()


def test_atomic_checkpoint_never_half_written(tmp_path, monkeypatch):
    target = tmp_path / "ck.pth"
    T.save_checkpoint(target, {"a": torch.ones(2)})

    def boom(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        T.save_checkpoint(target, {"a": torch.zeros(2)})
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]


def test_cli_train_with_overrides(setup, tmp_path, capsys):
    import yaml

    from vtrack import cli
    from vtrack.train import commands

    root, _ = setup
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(root)))
    rc = cli.main(["train", str(cfg_path), "train.epochs=1", "data.sampler.negative_ratio=0.0",
                   "--out-dir", str(tmp_path / "run")])
    assert rc == 0
    assert capsys.readouterr().out.strip().endswith("checkpoint_e0001.pth")
    assert cli.main(["train", str(cfg_path), "train.batch_size=two", "--out-dir", str(tmp_path / "x")]) == 2
    assert "train.batch_size: expected int, got 'two'" in capsys.readouterr().err
    assert commands.run.__doc__


WORKER = """
import sys
sys.path.insert(0, {tests!r})
import test_train_engine as E
from pathlib import Path
from vtrack.train import trainer as T
E.register_tiny_family()
root = Path({root!r})
E.patch_loader(T, {{str(root): E.make_sequences(root)}})
cfg = E.tiny_config(root, epochs=1, accum_steps=2, lr_scaling={{"rule": "linear", "reference_batch": 8}})
cfg["data"]["sampler"]["samples_per_epoch"] = 32
path = T.train(cfg, out_dir={out!r})
print("DONE", path)
"""


def test_torchrun_two_processes_cpu(tmp_path):
    script = tmp_path / "worker.py"
    out = tmp_path / "ddp"
    make_sequences(tmp_path / "data")
    script.write_text(WORKER.format(tests=str(Path(__file__).parent), root=str(tmp_path / "data"), out=str(out)))
    torchrun = Path(sys.executable).with_name("torchrun")
    argv = ([str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"])
    argv += ["--standalone", "--nproc_per_node", "2", str(script)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("DONE") == 2
    ck = torch.load(out / "checkpoint_e0001.pth", weights_only=True)
    assert ck["step"] == 2  # 32 samples / (2 ranks x batch 4 x 2 accumulated micro-batches)
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) == 2
    # linear lr scaling: global batch 16 = 2 x reference 8 (warm-up/cosine factor applied on top)
    assert copy.deepcopy(ck["config"])["train"]["lr_scaling"]["rule"] == "linear"
    assert ck["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(2e-3)


def test_bench_train_step_runs_and_reports(setup, tmp_path):
    from vtrack.bench.train import bench_train_step, format_table, make_batch

    root, _ = setup
    cfg = tiny_config(root)
    batch = make_batch(cfg, 2)
    assert batch["search"].shape == (2, 3, 64, 64) and batch["label_heatmap"].shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="has no set_backend"):
        bench_train_step(cfg, backend="reference", batch=batch, steps=1, warmup=0, measure_memory=False)
    # the default backends on a model that cannot switch kernels (e.g. DuML): one row, timed as built
    from vtrack.bench.train import run_benchmark

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (row,) = run_benchmark(path, batch_size=2, steps=1, warmup=0)
    assert row.backend == "-" and row.ms_per_step > 0
    with pytest.raises(ValueError, match=r"backends: the .* model has no kernel backends.*\['reference'\]"):
        run_benchmark(path, backends=["reference"], batch_size=2, steps=1, warmup=0)  # a named backend refuses
    TinyNet.set_backend = lambda self, name: setattr(self, "backend", name)
    try:
        row = bench_train_step(cfg, backend="reference", batch=batch, batch_size=2, steps=2, warmup=1,
                               measure_memory=False)
    finally:
        del TinyNet.set_backend
    assert row.backend == "reference" and row.ms_per_step > 0 and row.samples_per_s == pytest.approx(2000 / row.ms_per_step)
    assert "| _train_test_tiny | reference | cpu | off | 2 |" in format_table([row])


def test_bench_train_cpu_clock(setup, tmp_path, monkeypatch):
    """`vtrack bench train --clock cpu` times the process's CPU work: a step that only waits costs wall time, no CPU."""
    import time

    from vtrack.bench import train as tb
    from vtrack.cli import build_parser

    root, _ = setup
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(root)))
    (real,) = tb.run_benchmark(path, batch_size=2, steps=1, warmup=0, clock="cpu")
    assert real.clock == "cpu" and real.ms_per_step > 0 and "| CPU ms/step |" in tb.format_table([real])
    monkeypatch.setattr(tb._StepRunner, "step", lambda self: time.sleep(0.05))  # waits, does no work
    rows = {c: tb.run_benchmark(path, batch_size=2, steps=2, warmup=0, clock=c, interleave=True)[0]
            for c in ("wall", "cpu")}
    assert rows["wall"].min_ms >= 50 and rows["cpu"].min_ms < 20, rows
    with pytest.raises(ValueError, match="clock: expected one of wall, cpu"):
        tb.run_benchmark(path, batch_size=2, steps=1, warmup=0, clock="gpu")
    with pytest.raises(ValueError, match="clock: 'cpu' times"):
        tb.run_benchmark(path, batch_size=2, steps=1, warmup=0, clock="cpu", device="cuda")
    args = build_parser().parse_args(["bench", "train", "--config", str(path), "--clock", "cpu", "--interleave"])
    assert args.clock == "cpu" and args.interleave


def test_bench_train_breakdown_kernel_share(setup, tmp_path, monkeypatch):
    """`--breakdown`: the share of vtrack's custom ops in a profiled step, and the Amdahl bound."""
    from vtrack.bench import train as tb
    from vtrack.kernels import attention

    root, _ = setup
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(root)))
    with pytest.raises(ValueError, match="breakdown: needs interleave"):
        tb.run_benchmark(path, batch_size=2, steps=1, warmup=0, breakdown=True)
    q = torch.randn(1, 2, 64, 16)
    x = torch.randn(256, 256)
    monkeypatch.setattr(tb._StepRunner, "step", lambda self: x @ x)
    (row,) = tb.run_benchmark(path, batch_size=2, steps=1, warmup=0, interleave=True, breakdown=True)
    assert row.kernel_share == 0.0
    monkeypatch.setattr(tb._StepRunner, "step", lambda self: (attention(q, q, q, backend="cpp"), x @ x))
    (row,) = tb.run_benchmark(path, batch_size=2, steps=1, warmup=0, interleave=True, breakdown=True)
    assert 0.0 < row.kernel_share < 1.0
    ref = tb.TrainStepResult("c", "f", "reference", "cpu", "off", 2, 1, 300.0, 300.0, 1.0, None)
    fused = tb.TrainStepResult("c", "f", "cpp", "cpu", "off", 2, 1, 250.0, 250.0, 1.0, None, kernel_share=0.2)
    table = tb.format_table([ref, fused])
    assert "| kernel share | bound |" in table and "| 20.0 % | 1.50x |" in table  # 300 / (250 x 0.8)


def test_unreadable_frame_fails_before_training(setup, tmp_path, monkeypatch):
    root, seqs = setup
    broken = [Sequence(s.name, [str(tmp_path / "missing.png")] * len(s.frames), s.boxes, s.valid) for s in seqs]
    patch_loader(monkeypatch, {str(root): broken})
    with pytest.raises(ValueError, match=r"data: building the first training sample failed: .*(file is missing|could not be decoded)"):
        T.train(tiny_config(root), out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_grad_accumulation_matches_big_batch(setup, tmp_path):
    root, _ = setup

    def cfg(**over):
        c = tiny_config(root, epochs=1, grad_clip=None, lr_scaling={"rule": "linear", "reference_batch": 4}, **over)
        c["model"].update(dropout=0.0, loss="l1")
        c["data"]["augment"] = {"flip_prob": 0.0, "brightness_jitter": 0.0, "grayscale_prob": 0.0}
        return c

    big = torch.load(T.train(cfg(), out_dir=tmp_path / "big"), weights_only=True)
    acc = torch.load(T.train(cfg(batch_size=2, accum_steps=2), out_dir=tmp_path / "acc"), weights_only=True)
    assert big["step"] == acc["step"] == 3
    assert acc["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-3)  # global batch 2 x 2 = reference
    for k, v in big["model"].items():
        assert torch.allclose(v, acc["model"][k], atol=1e-5), k
    rows = list(csv.DictReader(open(tmp_path / "acc" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_training_and_resume(setup, tmp_path, amp):
    root, _ = setup
    cfg = tiny_config(root, epochs=1, device="cuda", amp=amp)
    part = T.train(cfg, out_dir=tmp_path / amp, max_steps=2)
    ck = torch.load(part, weights_only=True)
    assert ck["step"] == 2 and (amp == "bf16" or ck["scaler"])  # fp16 keeps a GradScaler state
    final = torch.load(T.train(cfg, out_dir=tmp_path / amp, resume=part), weights_only=True)
    assert final["step"] == 3
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())
