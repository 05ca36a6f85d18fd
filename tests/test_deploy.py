"""ONNX export of vtrack's custom ops and tracker branches, and the onnxruntime tracker."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

import vtrack.kernels as K
from vtrack.data.synthetic import SyntheticConfig, render_sequence
from vtrack.deploy import OrtEngine, TorchEngine, export_engine, use_onnxruntime
from vtrack.deploy.engine import Branch
from vtrack.deploy.export import kernel_backend, model_key
from vtrack.extras import MissingExtraError
from vtrack.models import get_family
from vtrack.tracking import build_tracker


def _export_run(module: torch.nn.Module, inputs: tuple, tmp_path) -> tuple[list[np.ndarray], onnx.ModelProto]:
    """Export ``module`` (a Branch) through export_engine and run it with onnxruntime."""
    engine = TorchEngine({"b": module})
    export_engine(engine, tmp_path / "x")
    model = onnx.load(str(tmp_path / "x" / "b.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "x" / "b.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {n: t.numpy() for n, t in zip(module.input_names, inputs)})
    return outs, model


class _OpBranch(Branch):
    input_names = ("q", "k", "v", "mask")

    def __init__(self, fn, inputs, outputs=("out",)):
        super().__init__()
        self.fn, self._inputs, self.output_names = fn, inputs, outputs

    def forward(self, q, k, v, mask):
        out = self.fn(q, k, v, mask)
        return out if isinstance(out, tuple) else (out,)

    def example_inputs(self):
        return self._inputs


def _qkvm(n=20, m=20, d=8, masked=(3, 7)):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, s, d, generator=g) for s in (n, m, m))
    k[:, :, 5] = k[:, :, 4]  # equal keys: ties in top-K and CE are broken toward the lower index
    mask = torch.zeros(2, m, dtype=torch.bool)
    mask[1, list(masked)] = True
    return q, k, v, mask


@pytest.mark.parametrize("kind", ["dense", "topk", "fda", "topk_fda"])
def test_attention_ops_translate_to_standard_onnx(tmp_path, kind):
    q, k, v, mask = _qkvm()
    fda = {"alpha": torch.tensor([0.1, 0.3, 0.2]), "beta": 0.1, "delta": 1 / 8} if "fda" in kind else None
    topk = 5 if "topk" in kind else None
    fn = lambda q, k, v, m: K.attention(q, k, v, topk=topk, fda=fda, key_padding_mask=m, backend="auto")  # noqa: E731
    branch = _OpBranch(fn, (q, k, v, mask))
    outs, model = _export_run(branch, (q, k, v, mask), tmp_path)
    ref = K.attention(q, k, v, topk=topk, fda=fda, key_padding_mask=mask, backend="reference")
    assert np.abs(outs[0] - ref.numpy()).max() < 1e-5
    ops = {n.op_type for n in model.graph.node}
    assert {n.domain for n in model.graph.node} <= {""}
    if topk:
        assert "TopK" in ops and "ScatterElements" in ops
    if fda:
        assert "Exp" in ops


@pytest.mark.parametrize("with_fda", [False, True])
def test_ce_attention_translates_to_topk_and_gather(tmp_path, with_fda):
    q, k, v, _ = _qkvm(n=25, m=25)
    fda = {"alpha": 0.1, "beta": 0.2, "delta": 1 / 8} if with_fda else None
    ce = dict(num_template=9, keep=7, template_index=[4, 0])
    fn = lambda q, k, v, m: K.ce_attention(q, k, v, fda=fda, backend="auto", **ce)  # noqa: E731
    branch = _OpBranch(fn, (q, k, v, torch.zeros(2, 25, dtype=torch.bool)), ("out", "keep_index", "score"))
    branch.input_names = ("q", "k", "v", "mask")
    outs, model = _export_run(branch, (q, k, v, torch.zeros(2, 25, dtype=torch.bool)), tmp_path)
    out, keep, score = K.ce_attention(q, k, v, fda=fda, backend="reference", **ce)
    assert np.abs(outs[0] - out.numpy()).max() < 1e-5
    np.testing.assert_array_equal(outs[1], keep.numpy())
    assert np.abs(outs[2] - score.numpy()).max() < 1e-6
    ops = {n.op_type for n in model.graph.node}
    assert {"TopK", "Gather"} <= ops


def _tiny_cfg(path: str, **model) -> dict:
    with open(path) as f:
        cfg = yaml.safe_load(f)
    for key, val in model.items():
        section = cfg["model"]
        *parents, leaf = key.split(".")
        for p in parents:
            section = section[p]
        section[leaf] = val
    if cfg["model"].get("arch") == "random":  # VLT: a fixed path through the supernet, drawn seeded
        import random

        from vtrack.models.vlt.supernet import Architecture

        spec = get_family("vlt").build_model({**cfg["model"], "arch": None}).spec
        cfg["model"]["arch"] = Architecture.random(spec, random.Random(0)).to_list()
    return cfg


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


@pytest.fixture(scope="module")
def sequence():
    return render_sequence(SyntheticConfig(frames=10, train=0, val=0, test=1, width=160, height=160), "test", 0)


CASES = {
    "esat": ("configs/esat/esat_tiny.yaml", {"backbone.depth": 3, "backbone.embed_dim": 96, "backbone.ce_layers": [2, 3]}),
    "ostrack": ("configs/ostrack/ostrack_tiny.yaml", {"backbone.depth": 3, "backbone.embed_dim": 96,
                                                      "backbone.ce_layers": [2]}),
    "duml": ("configs/duml/duml_tiny.yaml", {"channels": 32, "onr_feature_dim": 32}),
    "vlt": ("configs/vlt/vlt_tt_tiny.yaml", {"depths": [1, 1, 1, 1], "arch": "random"}),
    "sparsett": ("configs/sparsett/sparsett_tiny.yaml", {"num_encoder_layers": 1, "num_decoder_layers": 1,
                                                         "head_conv_blocks": 2,
                                                         "backbone_kwargs": {"patch_size": 8, "embed_dim": 16,
                                                                             "depths": [1, 1], "num_heads": [1, 2],
                                                                             "window_size": 4}}),
}


# VLT's supernet makes its export slow (minutes on a loaded 2-core machine): slow-marked
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "vlt" else c for c in sorted(CASES)])
def test_onnxruntime_tracker_matches_pytorch(tmp_path, monkeypatch, sequence, case):
    """Seeded untrained tiny model: same branch outputs, same boxes (mean IoU >= 0.99) on both
    runtimes; the export is cached by config + weights and reused.

    An untrained model's tracking loop amplifies 1e-6 differences from frame to frame (a random box
    regressor reacting to its own crop), so each frame both runtimes start from the same tracker
    state (the PyTorch tracker's): the per-frame boxes compare the whole pipeline - crop,
    normalisation, network, post-processing - on each runtime. The free-running IoU of the trained
    zoo trackers is in docs/deploy.md.
    """
    monkeypatch.setenv("VTRACK_CACHE", str(tmp_path / "cache"))
    path, over = CASES[case]
    cfg = _tiny_cfg(path, **over)
    fam = get_family(cfg["model"]["name"])
    torch.manual_seed(0)
    model = fam.build_model(cfg["model"]).eval()
    with torch.no_grad():  # untrained heads give degenerate boxes: make the scores informative
        for p in model.parameters():  # (SparseTT's scaled regression sends every box out of the image)
            p.mul_(1.0 if case == "sparsett" else 1.5)
    pt = fam.build_tracker(model, cfg, "cpu")
    ort_tracker = use_onnxruntime(fam.build_tracker(model, cfg, "cpu"), cfg, threads=1)
    assert isinstance(ort_tracker.engine, OrtEngine) and isinstance(pt.engine, TorchEngine)
    frames = sequence["frames"]
    pt.initialize(frames[0], sequence["boxes"][0])
    ious, boxes = [], []
    for frame in frames[1:]:
        twin = copy.deepcopy(pt, memo={id(pt.engine): ort_tracker.engine, id(pt.model): pt.model})
        a, b = pt.track(frame).box, twin.track(frame).box
        ious.append(_iou(a, b))
        boxes.append(a)
    assert np.mean(ious) >= 0.99, ious
    assert np.ptp(np.asarray(boxes), axis=0).max() > 1.0  # the boxes move: not a degenerate comparison
    torch_engine = pt.engine
    # the branches agree numerically on the same inputs
    for name, branch in torch_engine.branches.items():
        inputs = dict(zip(branch.input_names, branch.example_inputs()))
        a = torch_engine.run(name, **inputs)
        b = ort_tracker.engine.run(name, **inputs)
        for key in branch.output_names:
            assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-4), (name, key)
    # cached: a second tracker reuses the files (no second export)
    folder = next((tmp_path / "cache" / "onnx").iterdir())
    assert folder.name == model_key(cfg, torch_engine)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["opset"] >= 17 and set(manifest["branches"]) == set(torch_engine.branches) >= {"search"}
    monkeypatch.setattr("vtrack.deploy.export.export_engine", lambda *a, **k: pytest.fail("exported twice"))
    use_onnxruntime(fam.build_tracker(model, cfg, "cpu"), cfg, threads=1)


@pytest.mark.parametrize("case", ["ostrack", "sparsett"])
def test_pixel_aligned_crops_keep_free_running_runtimes_together(tmp_path, monkeypatch, sequence, case):
    """``tracker.crop.align: pixel`` rounds every crop window to whole pixels, so the two runtimes'
    1e-6 box differences give the same next patch: free-running (no resynchronisation, unlike the
    test above), the onnxruntime and PyTorch trackers keep the same boxes frame after frame."""
    monkeypatch.setenv("VTRACK_CACHE", str(tmp_path / "cache"))
    path, over = CASES[case]
    cfg = _tiny_cfg(path, **over)
    cfg.setdefault("tracker", {})["crop"] = {"align": "pixel"}
    fam = get_family(cfg["model"]["name"])
    torch.manual_seed(0)
    model = fam.build_model(cfg["model"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0 if case == "sparsett" else 1.5)
    pt = fam.build_tracker(model, cfg, "cpu")
    ort_tracker = use_onnxruntime(fam.build_tracker(model, cfg, "cpu"), cfg, threads=1)
    assert pt.cfg.crop.align == "pixel"
    frames, init = sequence["frames"], sequence["boxes"][0]
    pt.initialize(frames[0], init)
    ort_tracker.initialize(frames[0], init)
    a = np.array([pt.track(f).box for f in frames[1:]])
    b = np.array([ort_tracker.track(f).box for f in frames[1:]])
    assert np.ptp(a, axis=0).max() > 1.0  # the boxes move
    assert min(_iou(x, y) for x, y in zip(a, b)) > 0.9999, np.abs(a - b).max()


def test_template_branch_caches_tokens_after_embedding():
    """OSTrack/ESAT cache the template tokens (patch + position embedding) and the search branch
    gives the full model's outputs."""
    cfg = _tiny_cfg(CASES["esat"][0], **CASES["esat"][1])
    model = get_family("esat").build_model(cfg["model"]).eval()
    z, x = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        tokens = model.embed_template(z)
        patches, _ = model.backbone.embed(z)
        assert torch.allclose(tokens, patches + model.backbone.pos_embed_z)
        full = model({"template": z, "search": x})
        split = model.forward_search(tokens, x)
    for key in ("score_map", "size_map", "offset_map"):
        assert torch.equal(full[key], split[key])


def test_export_restores_backend_and_refuses_existing_folder(tmp_path):
    cfg = _tiny_cfg(CASES["ostrack"][0], **CASES["ostrack"][1])
    model = get_family("ostrack").build_model(cfg["model"]).eval()
    model.set_backend("reference")
    tracker = get_family("ostrack").build_tracker(model, cfg, "cpu")
    with kernel_backend(tracker.engine.branches["search"], "cpp"):
        assert model.backbone.blocks[0].attn.backend == "cpp"
    assert model.backbone.blocks[0].attn.backend == "reference"
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="exists already"):
        export_engine(tracker.engine, tmp_path / "out")


def _tiny_files(case: str, tmp_path: Path) -> Path:
    """A seeded tiny ``case`` model written as ``tmp_path/<case>.yaml`` + ``tmp_path/w.pth``; the config path."""
    cfg = _tiny_cfg(CASES[case][0], **CASES[case][1])
    cfg_path = tmp_path / f"{case}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    model = get_family(cfg["model"]["name"]).build_model(cfg["model"])
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    return cfg_path


def test_export_cli_and_build_tracker_onnx_dir(tmp_path, capsys, monkeypatch, sequence):
    from vtrack.cli import main

    cfg_path = _tiny_files("esat", tmp_path)
    out = tmp_path / "onnx"
    assert main(["export", "esat", "--config", str(cfg_path), "--checkpoint", str(tmp_path / "w.pth"),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "template:" in text and "search:" in text
    for name in ("template", "search"):
        m = onnx.load(str(out / f"{name}.onnx"))
        onnx.checker.check_model(m, full_check=True)
        assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert main(["export", "esat", "--config", str(cfg_path), "--checkpoint", str(tmp_path / "w.pth"),
                 "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    with monkeypatch.context() as m:  # a missing extra: one line naming the pip command
        m.setitem(sys.modules, "onnx", None)
        assert main(["export", "esat", "--config", str(cfg_path), "--checkpoint", str(tmp_path / "w.pth"),
                     "--out", str(tmp_path / "other")]) == 2
    assert "pip install 'vtrack[deploy]'" in capsys.readouterr().err
    kw = dict(config=str(cfg_path), checkpoint=str(tmp_path / "w.pth"))
    ort_tracker = build_tracker("esat", runtime="onnxruntime", onnx_dir=str(out), **kw)
    pt_tracker = build_tracker("esat", **kw)
    assert isinstance(ort_tracker.engine, OrtEngine) and isinstance(pt_tracker.engine, TorchEngine)
    for t in (ort_tracker, pt_tracker):
        t.initialize(sequence["frames"][0], sequence["boxes"][0])
    a, b = ort_tracker.track(sequence["frames"][1]), pt_tracker.track(sequence["frames"][1])
    assert _iou(a.box, b.box) > 0.99


def test_runtime_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="runtime: expected one of"):
        build_tracker("static", runtime="tensorrt")
    with pytest.raises(ValueError, match="no network"):
        build_tracker("static", runtime="onnxruntime")
    with pytest.raises(ValueError, match="onnx_dir: ONNX files are only used"):
        build_tracker("static", onnx_dir=str(tmp_path))
    with monkeypatch.context() as m:  # onnxruntime missing: one error naming the pip command
        m.setitem(sys.modules, "onnxruntime", None)
        with pytest.raises(MissingExtraError, match=r"pip install 'vtrack\[deploy\]'"):
            OrtEngine({"b": tmp_path / "b.onnx"})
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        cfg = _tiny_cfg(CASES["ostrack"][0], **CASES["ostrack"][1])
        fam = get_family("ostrack")
        use_onnxruntime(fam.build_tracker(fam.build_model(cfg["model"]), cfg, "cpu"), cfg, onnx_dir=tmp_path)


def test_runtime_option_on_eval_track_and_bench(tmp_path, monkeypatch, capsys):
    """--runtime onnxruntime on `vtrack eval` (ONNX from `vtrack export`), `vtrack track` (exported on
    first use into the cache) and `vtrack bench trackers` (an onnxruntime row beside the backends)."""
    from vtrack.bench.trackers import TrackerCase, bench_case
    from vtrack.cli import main
    from vtrack.data.synthetic import generate_synthetic

    monkeypatch.setenv("VTRACK_CACHE", str(tmp_path / "cache"))
    cfg = _tiny_cfg(CASES["ostrack"][0], **CASES["ostrack"][1])
    cfg_path = tmp_path / "ostrack.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    torch.save({"model": get_family("ostrack").build_model(cfg["model"]).state_dict()}, tmp_path / "w.pth")
    kw = ["--config", str(cfg_path), "--checkpoint", str(tmp_path / "w.pth")]
    assert main(["export", "tiny", *kw, "--out", str(tmp_path / "onnx")]) == 0
    generate_synthetic(tmp_path / "synth", SyntheticConfig(train=0, val=0, test=1, frames=8, width=128, height=128),
                       progress=False)
    for runtime in ("pytorch", "onnxruntime"):
        extra = ["--runtime", runtime] + (["--onnx-dir", str(tmp_path / "onnx")] if runtime == "onnxruntime" else [])
        assert main(["eval", "--tracker", "tiny", *kw, *extra, "--dataset", "synthetic", "--root",
                     str(tmp_path / "synth"), "--split", "test", "--out", str(tmp_path / runtime), "--no-progress"]) == 0
    res = {r: np.loadtxt(next((tmp_path / r).rglob("*_001.txt")), delimiter=",") for r in ("pytorch", "onnxruntime")}
    assert res["pytorch"].shape == res["onnxruntime"].shape == (8, 4)
    assert not (tmp_path / "cache").exists()  # --onnx-dir: nothing exported
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2

    for i, img in enumerate(render_sequence(SyntheticConfig(frames=8, train=0, val=0, test=1), "test", 0)["frames"][:4]):
        cv2.imwrite(str(frames / f"{i:04d}.png"), img[..., ::-1])
    assert main(["track", str(frames), "--init", "100,100,30,30", "--out", str(tmp_path / "t.mp4"), "--tracker",
                 "tiny", *kw, "--runtime", "onnxruntime", "--boxes", str(tmp_path / "b.txt")]) == 0
    assert len((tmp_path / "b.txt").read_text().splitlines()) == 4
    assert len(list((tmp_path / "cache" / "onnx").iterdir())) == 1  # exported on first use
    capsys.readouterr()
    rows = bench_case(TrackerCase(str(cfg_path)), backends=["reference"], frames=2, warmup=1, throughput_batch=0,
                      repeat=1, macs=False, runtimes=["pytorch", "onnxruntime"])
    variants = {r.variant for r in rows}  # e.g. CE on / off: a row per backend and runtime in each
    assert sorted((r.variant, r.backend) for r in rows) == sorted((v, b) for v in variants
                                                                  for b in ("reference", "onnxruntime"))
    assert all(r.fps and r.fps > 0 for r in rows)


def test_export_dynamic_batch_runs_many_crops_per_call(tmp_path, capsys):
    """``vtrack export --dynamic-batch``: a symbolic batch axis on every input; a batch of 3 gives
    each item's batch-1 outputs (onnxruntime, to GEMM blocking) and the PyTorch branch's."""
    from vtrack.cli import main

    cfg_path = _tiny_files("ostrack", tmp_path)
    out = tmp_path / "onnx"
    assert main(["export", "ostrack", "--config", str(cfg_path), "--checkpoint", str(tmp_path / "w.pth"),
                 "--out", str(out), "--dynamic-batch"]) == 0
    assert "(a dynamic batch)" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["dynamic_batch"] is True
    branches = build_tracker("ostrack", config=str(cfg_path), checkpoint=str(tmp_path / "w.pth")).engine.branches
    g = torch.Generator().manual_seed(3)
    for name, branch in branches.items():
        sess = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert all(isinstance(i.shape[0], str) for i in sess.get_inputs())  # symbolic, not 1
        batch = [torch.cat([torch.randn(t.shape, generator=g) for _ in range(3)]) for t in branch.example_inputs()]
        outs = sess.run(None, {n: t.numpy() for n, t in zip(branch.input_names, batch)})
        for i in range(3):
            item = [t[i:i + 1] for t in batch]
            single = sess.run(None, {n: t.numpy() for n, t in zip(branch.input_names, item)})
            with torch.no_grad():
                expected = branch(*item)
            for o, s1, e in zip(outs, single, expected):
                assert o.shape[0] == 3
                np.testing.assert_allclose(o[i:i + 1], s1, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(o[i:i + 1], e.numpy(), rtol=1e-4, atol=1e-4)


def test_export_dynamic_batch_refused_with_the_reason(tmp_path):
    """DuML and VLT correlate through a grouped Conv whose groups hold the batch: refused, nothing written."""
    cfg = _tiny_cfg(CASES["duml"][0], **CASES["duml"][1])
    tracker = get_family("duml").build_tracker(get_family("duml").build_model(cfg["model"]), cfg, "cpu")
    with pytest.raises(ValueError, match=r"dynamic_batch: .*branch 'search'.*group"):
        export_engine(tracker.engine, tmp_path / "x", dynamic_batch=True)
    assert not (tmp_path / "x").exists()
    with pytest.raises(TypeError, match="dynamic_batch: expected a bool"):
        export_engine(tracker.engine, tmp_path / "x", dynamic_batch="yes")
