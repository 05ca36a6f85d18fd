"""OSTrack / ESAT: model shapes, candidate elimination bookkeeping, backends, training step,
tracker, checkpoints, pretrained ViT loading, ESAT position labels and losses."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import vtrack.kernels as kernels
from vtrack.config import load_yaml
from vtrack.models import get_family
from vtrack.models.layers.attention import Attention
from vtrack.models.layers.heads import decode_center_boxes
from vtrack.models.ostrack.ce import keep_ratio_schedule, restore_search_tokens, template_centre_index
from vtrack.train.labels import LabelContext, build_label_generator

ROOT = Path(__file__).resolve().parents[1]


def _cfg(name: str) -> dict:
    return load_yaml(ROOT / "configs" / name)


def _tiny(**backbone) -> dict:
    cfg = copy.deepcopy(_cfg("ostrack/ostrack_tiny.yaml"))
    cfg["model"]["backbone"].update(backbone)
    return cfg


def _batch(cfg: dict, n: int = 2, seed: int = 0) -> dict:
    """A fixed training batch with labels from the family's label generators."""
    m = cfg["model"]
    zs, xs = m["template_size"], m["search_size"]
    g = torch.Generator().manual_seed(seed)
    fam = get_family(m["name"])
    proc = fam.processing_config(cfg)
    gens = [build_label_generator(spec) for spec in proc["labels"]]
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        w, h = rng.uniform(0.15, 0.35, 2) * xs
        cx, cy = rng.uniform(0.35, 0.65, 2) * xs
        sbox = np.array([cx - w / 2, cy - h / 2, w, h])
        tbox = np.array([zs / 4, zs / 4, zs / 2, zs / 2])
        ctx = LabelContext(search_box=sbox, template_box=tbox, search_size=xs, template_size=zs)
        labels = {}
        for gen in gens:
            labels.update(gen(ctx))
        items.append((sbox, tbox, labels))
    batch = {
        "template": torch.randn(n, 3, zs, zs, generator=g),
        "search": torch.randn(n, 3, xs, xs, generator=g),
        "search_box": torch.tensor(np.stack([i[0] for i in items]), dtype=torch.float32),
        "template_box": torch.tensor(np.stack([i[1] for i in items]), dtype=torch.float32),
        "positive": torch.ones(n, dtype=torch.bool),
    }
    for key in items[0][2]:
        batch[key] = torch.stack([i[2][key] for i in items])
    return batch


def _ce_keeps(ns: int, n_layers: int, ratio: float) -> int:
    for _ in range(n_layers):
        ns = math.ceil(ratio * ns)
    return ns


# --------------------------------------------------------------------------------------------- shapes
def test_tiny_shapes_train_and_eval():
    cfg = _tiny()
    model = get_family("ostrack").build_model(cfg["model"])
    batch = _batch(cfg)
    model.set_epoch(100)  # past the warm-up: training keep ratio = target
    for train in (True, False):
        model.train(train)
        out = model(batch)
        assert out["score_map"].shape == (2, 1, 8, 8)
        assert out["size_map"].shape == out["offset_map"].shape == (2, 2, 8, 8)
        assert out["boxes"].shape == (2, 4)
        assert out["keep_index"].shape == (2, _ce_keeps(64, 2, 0.7))
        score = out["score_map"].detach()
        assert float(score.min()) > 0 and float(score.max()) < 1
        assert torch.isfinite(out["boxes"]).all()


def test_vitb_256_geometry_forward():
    cfg = _cfg("ostrack/ostrack_256.yaml")
    model = get_family("ostrack").build_model(cfg["model"]).eval()
    assert sum(p.numel() for p in model.backbone.parameters()) > 85e6  # ViT-B/16 body
    with torch.no_grad():
        out = model({"template": torch.randn(1, 3, 128, 128), "search": torch.randn(1, 3, 256, 256)})
    assert out["score_map"].shape == (1, 1, 16, 16)
    assert out["keep_index"].shape == (1, _ce_keeps(256, 3, 0.7))  # 256 -> 180 -> 126 -> 89
    assert out["keep_index"].shape[1] == 89


def test_wrong_input_size_is_an_error():
    model = get_family("ostrack").build_model(_tiny()["model"])
    with pytest.raises(ValueError, match="template/search"):
        model({"template": torch.randn(1, 3, 64, 64), "search": torch.randn(1, 3, 96, 96)})
    with pytest.raises(ValueError, match="search"):
        model({"template": torch.randn(1, 3, 64, 64)})


def test_config_errors_name_the_key():
    fam = get_family("ostrack")
    with pytest.raises(ValueError, match="model.backbone.bogus"):
        fam.build_model({"backbone": {"bogus": 1}})
    with pytest.raises(TypeError, match="model.backbone.depth"):
        fam.build_model({"backbone": {"depth": "deep"}})
    with pytest.raises(ValueError, match="ce_layers"):
        fam.build_model({"backbone": {"depth": 4, "ce_layers": [5]}})


# --------------------------------------------------------------------------------------------- CE
def test_keep_ratio_schedule():
    kw = dict(target=0.7, start_epoch=20, warmup_epochs=80)
    assert keep_ratio_schedule(0, **kw) == 1.0
    assert keep_ratio_schedule(19.9, **kw) == 1.0
    assert keep_ratio_schedule(20, **kw) == pytest.approx(1.0)
    assert keep_ratio_schedule(60, **kw) == pytest.approx(0.85)
    assert keep_ratio_schedule(100, **kw) == pytest.approx(0.7)
    assert keep_ratio_schedule(300, **kw) == pytest.approx(0.7)
    model = get_family("ostrack").build_model(_tiny(ce_start_epoch=2, ce_warmup_epochs=4)["model"])
    model.set_epoch(0)
    assert model.backbone.current_keep_ratio() == 1.0
    model.set_epoch(4)
    assert model.backbone.current_keep_ratio() == pytest.approx(0.85)
    model.eval()
    assert model.backbone.current_keep_ratio() == pytest.approx(0.7)


def test_template_centre_index():
    assert template_centre_index(8, 8) == 36  # floor(8/2) + 8 * floor(8/2)
    assert template_centre_index(4, 4) == 10
    assert template_centre_index(3, 5) == 7


def test_restore_search_tokens_places_tokens_and_zero_pads():
    tokens = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2) + 1
    index = torch.tensor([[4, 0, 2], [1, 3, 5]])
    out = restore_search_tokens(tokens, index, 6)
    assert out.shape == (2, 6, 2)
    assert torch.equal(out[0, 4], tokens[0, 0]) and torch.equal(out[0, 0], tokens[0, 1])
    assert torch.equal(out[1, 5], tokens[1, 2])
    assert torch.equal(out[0, [1, 3, 5]], torch.zeros(3, 2)) and torch.equal(out[1, [0, 2, 4]], torch.zeros(3, 2))
    with pytest.raises(TypeError, match="int64"):
        restore_search_tokens(tokens, index.int(), 6)


def test_ce_keep_ratio_one_equals_no_ce():
    """With keep ratio 1 the CE path permutes the search tokens by score; restoring the original
    order must reproduce the CE-off model exactly (up to float reassociation)."""
    cfg = _tiny(ce_keep_ratio=1.0)
    model = get_family("ostrack").build_model(cfg["model"]).eval()
    batch = _batch(cfg)
    with torch.no_grad():
        out_ce = model(batch)
        # the kept indices are a real permutation (sorted by score), not the identity
        idx = out_ce["keep_index"]
        assert torch.equal(idx.sort(dim=1).values, torch.arange(64).expand(2, 64))
        assert not torch.equal(idx, torch.arange(64).expand(2, 64))
        model.set_ce(False)
        out_plain = model(batch)
    for key in ("score_map", "size_map", "offset_map", "boxes"):
        torch.testing.assert_close(out_ce[key], out_plain[key], rtol=1e-4, atol=1e-5)


def test_ce_eliminated_positions_are_zero_and_scores_rank_kept_tokens():
    cfg = _tiny()
    model = get_family("ostrack").build_model(cfg["model"]).eval()
    batch = _batch(cfg)
    with torch.no_grad():
        feats = model.backbone(batch["template"], batch["search"])
    search = feats["search"].flatten(2).transpose(1, 2)  # [B, Ns, C]
    kept = torch.zeros(2, 64, dtype=torch.bool)
    kept.scatter_(1, feats["keep_index"], True)
    assert int(kept.sum(1)[0]) == _ce_keeps(64, 2, 0.7)
    assert torch.all(search[~kept] == 0)
    assert torch.all(search[kept].abs().sum(-1) > 0)
    # first elimination keeps the best-scored tokens of layer 2
    score = feats["ce_scores"][0]
    k1 = math.ceil(0.7 * 64)
    top = score.topk(k1, dim=1).indices
    first_kept = torch.zeros_like(kept).scatter_(1, top, True)
    assert torch.all(first_kept | ~kept)  # every finally kept token survived the first elimination


# --------------------------------------------------------------------------------------------- backends
def test_attention_layer_matches_sdpa_and_timm_layout():
    torch.manual_seed(0)
    attn = Attention(64, 4, backend="reference")
    x = torch.randn(2, 10, 64)
    q, k, v = attn.qkv(x).reshape(2, 10, 3, 4, 16).permute(2, 0, 3, 1, 4)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    expected = attn.proj(ref.transpose(1, 2).reshape(2, 10, 64))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)
    assert set(attn.state_dict()) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    ctx = torch.randn(2, 7, 64)
    assert attn(x, ctx).shape == (2, 10, 64)
    with pytest.raises(ValueError, match="backend"):
        attn.set_backend("fast")
    with pytest.raises(ValueError, match="topk/fda"):
        Attention(64, 4, topk=8, fda={"alpha": 0.1, "beta": 0.1, "delta": 0.1})


def _fused_backends() -> list[str]:
    return [b for b in kernels.registered_backends() if b != "reference"]


@pytest.mark.parametrize("family", ["ostrack", "esat"])
def test_fused_backends_match_reference(family):
    fused = _fused_backends()
    if not fused:
        pytest.skip("no fused attention backend registered")
    cfg = _tiny()
    cfg["model"]["name"] = family
    cfg["model"]["backbone"].update(depth=4, ce_layers=[2, 3])
    model = get_family(family).build_model(cfg["model"]).eval()
    batch = _batch(cfg, n=1)
    model.set_backend("reference")
    with torch.no_grad():
        ref = model(batch)
    checked = 0
    for backend in fused:
        model.set_backend(backend)
        try:
            with torch.no_grad():
                out = model(batch)
        except (RuntimeError, ValueError, NotImplementedError) as err:
            if "cannot run" in str(err) or "not available" in str(err) or "unsupported" in str(err).lower():
                continue
            raise
        checked += 1
        torch.testing.assert_close(out["score_map"], ref["score_map"], rtol=2e-3, atol=2e-4)
        torch.testing.assert_close(out["boxes"], ref["boxes"], rtol=2e-3, atol=2e-3)
        assert torch.equal(out["keep_index"].sort(1).values, ref["keep_index"].sort(1).values)
    if not checked:
        pytest.skip(f"no fused backend can run on this machine ({fused})")


# --------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("family", ["ostrack", "esat"])
def test_one_training_step_reduces_loss(family):
    cfg = _tiny(depth=4, ce_layers=[2, 3], backend="reference")
    cfg["model"]["name"] = family
    fam = get_family(family)
    torch.manual_seed(0)
    model = fam.build_model(cfg["model"]).train()
    model.set_epoch(100)
    crit = fam.build_criterion(cfg)
    batch = _batch(cfg, n=4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss0, stats0 = crit(model(batch), batch)
    assert set(stats0) >= {"loss", "loss/focal", "loss/giou", "loss/l1", "iou"}
    if family == "esat":
        assert {"loss/pos_abs", "loss/pos_pn"} <= set(stats0)
        assert stats0["loss/pos_abs"] == pytest.approx(math.log(64), rel=0.3)  # ~uniform over 64 positions
    opt.zero_grad()
    loss0.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()
    loss1, _ = crit(model(batch), batch)
    assert float(loss1.detach()) < float(loss0.detach())


def test_esat_fda_in_every_layer_and_learnable_delta_gets_gradient():
    cfg = _cfg("esat/esat_tiny.yaml")
    cfg["model"]["backbone"].update(depth=2, ce_layers=[2], fda={"alpha": 0.1, "beta": 0.1, "delta": 0.015625, "learnable": True})
    fam = get_family("esat")
    model = fam.build_model(cfg["model"]).train()
    assert all(b.attn.use_fda for b in model.backbone.blocks)
    batch = _batch(cfg)
    loss, _ = fam.build_criterion(cfg)(model(batch), batch)
    loss.backward()
    attn = model.backbone.blocks[0].attn
    for p in (attn.fda_alpha, attn.fda_beta, attn.fda_log_delta):
        assert p.requires_grad and p.grad is not None and torch.isfinite(p.grad).all()
    assert float(attn.fda_params()["delta"].detach()) == pytest.approx(0.015625)


def test_esat_position_labels_and_head_shapes():
    cfg = _cfg("esat/esat_tiny.yaml")
    fam = get_family("esat")
    proc = fam.processing_config(cfg)
    assert [s["name"] for s in proc["labels"]] == ["gaussian_heatmap", "position"]
    assert proc["template"]["size"] == 64 and proc["search"]["factor"] == 4.0
    batch = _batch(cfg, n=2)
    assert batch["label_heatmap"].shape == (2, 1, 8, 8)
    assert batch["label_pos_abs"].shape == batch["label_pos_pn"].shape == (2, 16 + 64)
    # template tokens all positive; search positives inside the box
    assert torch.all(batch["label_pos_pn"][:, :16] == 1)
    assert 0 < int(batch["label_pos_pn"][:, 16:].sum()) < 2 * 64
    model = fam.build_model(cfg["model"]).eval()
    with torch.no_grad():
        out = model(batch)
    assert out["pos_abs_logits"].shape == (2, 80, 64)
    assert out["pos_pn_logits"].shape == (2, 80, 2)
    # tracking (eval mode, no labels) skips the position head
    with torch.no_grad():
        plain = model({"template": batch["template"], "search": batch["search"]})
    assert "pos_abs_logits" not in plain
    torch.testing.assert_close(plain["score_map"], out["score_map"])
    # ostrack configs have no position head, esat's preset adds it
    assert "pos_abs_logits" not in get_family("ostrack").build_model(_tiny()["model"]).eval()(batch)


def test_criterion_decodes_box_at_ground_truth_peak():
    score = torch.zeros(1, 1, 4, 4)
    score[0, 0, 1, 2] = 1.0
    size = torch.full((1, 2, 4, 4), 0.5)
    offset = torch.full((1, 2, 4, 4), 0.25)
    boxes, peak = decode_center_boxes(score, size, offset)
    torch.testing.assert_close(boxes, torch.tensor([[(2 + 0.25) / 4, (1 + 0.25) / 4, 0.5, 0.5]]))
    assert float(peak) == 1.0


# --------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path):
    cfg = _tiny()
    fam = get_family("ostrack")
    model = fam.build_model(cfg["model"]).eval()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict(), "config": cfg}, path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model2 = fam.build_model(ckpt["config"]["model"]).eval()
    model2.load_state_dict(ckpt["model"])
    batch = _batch(cfg, n=1)
    with torch.no_grad():
        a, b = model(batch), model2(batch)
    torch.testing.assert_close(a["score_map"], b["score_map"])
    torch.testing.assert_close(a["boxes"], b["boxes"])


@pytest.mark.parametrize("layout", ["timm", "mae"])
def test_load_pretrained_vit_resamples_pos_embed(tmp_path, layout):
    from vtrack._compat import import_timm
    from vtrack.models.layers.pos_embed import resample_pos_embed

    timm = import_timm()
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=96, patch_size=16, embed_dim=192, depth=2, num_heads=3, num_classes=10
    )
    sd = vit.state_dict()
    assert sd["pos_embed"].shape == (1, 1 + 36, 192)
    if layout == "mae":
        sd = {"model": {**sd, "decoder_embed.weight": torch.zeros(4, 192), "mask_token": torch.zeros(1, 1, 4)}}
    path = tmp_path / f"vit_{layout}.pth"
    torch.save(sd, path)
    cfg = _tiny(depth=2, ce_layers=[2], pretrained=str(path))
    model = get_family("ostrack").build_model(cfg["model"])
    bb = model.backbone
    torch.testing.assert_close(bb.blocks[1].attn.qkv.weight, vit.blocks[1].attn.qkv.weight)
    torch.testing.assert_close(bb.patch_embed.proj.weight, vit.patch_embed.proj.weight)
    torch.testing.assert_close(bb.norm.weight, vit.norm.weight)
    pos = vit.pos_embed.detach()
    torch.testing.assert_close(bb.pos_embed_z, resample_pos_embed(pos, (4, 4), num_prefix_tokens=1))
    torch.testing.assert_close(bb.pos_embed_x, resample_pos_embed(pos, (8, 8), num_prefix_tokens=1))
    assert bb.pos_embed_z.shape == (1, 16, 192) and bb.pos_embed_x.shape == (1, 64, 192)
    # a width mismatch is a clear error
    bad = _tiny(embed_dim=96, num_heads=3, depth=2, ce_layers=[2], pretrained=str(path))
    with pytest.raises(ValueError, match="checkpoint|pos_embed"):
        get_family("ostrack").build_model(bad["model"])


def test_pretrained_missing_file_is_an_error(tmp_path):
    cfg = _tiny(pretrained=str(tmp_path / "none.pth"))
    with pytest.raises(FileNotFoundError, match="none.pth"):
        get_family("ostrack").build_model(cfg["model"])


# --------------------------------------------------------------------------------------------- tracker
def _moving_square_sequence(n: int = 8, size: int = 160) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    frames, boxes = [], []
    for t in range(n):
        img = rng.integers(0, 60, (size, size + 40, 3), dtype=np.uint8)
        x, y = 40 + 4 * t, 50 + 2 * t
        img[y:y + 30, x:x + 24] = (220, 40, 40)
        frames.append(img)
        boxes.append((x, y, 24, 30))
    return frames, np.asarray(boxes, dtype=np.float64)


@pytest.mark.parametrize("family", ["ostrack", "esat"])
def test_tracker_runs_on_a_sequence(family):
    cfg = _tiny() if family == "ostrack" else _cfg("esat/esat_tiny.yaml")
    fam = get_family(family)
    model = fam.build_model(cfg["model"])
    tracker = fam.build_tracker(model, cfg, "cpu")
    frames, gt = _moving_square_sequence()
    tracker.initialize(frames[0], gt[0])
    for img in frames[1:]:
        res = tracker.track(img)
        x, y, w, h = res.box
        H, W = img.shape[:2]
        assert np.isfinite(res.box).all() and 0 <= res.score <= 1
        assert 0 <= x and 0 <= y and w >= 10 and h >= 10 and x + w <= W + 1e-6 and y + h <= H + 1e-6
    assert not model.training
    with pytest.raises(RuntimeError):
        fam.build_tracker(fam.build_model(cfg["model"]), cfg).track(frames[0])


def test_variants_are_config_overrides_the_family_declares():
    from vtrack.bench.trackers import bench_tracker, format_table

    fam = get_family("esat")
    assert fam.variants() == {"CE on": {"model.backbone.ce_enabled": True},
                              "CE off": {"model.backbone.ce_enabled": False}}
    cfg = _tiny()
    cfg["model"]["name"] = "esat"
    model = fam.build_model(cfg["model"])
    rows = [bench_tracker(cfg, backend="reference", variant=v, frames=1, warmup=0, image_size=(96, 96), model=model)
            for v in fam.variants()]
    assert [r.variant for r in rows] == ["CE on", "CE off"] and all(r.fps > 0 for r in rows)
    table = format_table(rows)
    assert "| config | device | backend | FPS CE on | FPS CE off | CE speed-up |" in table
    with pytest.raises(ValueError, match="variant: expected one of"):
        bench_tracker(cfg, backend="reference", variant="fast", frames=1, warmup=0)
    assert get_family("sparsett").variants() == {}


@pytest.mark.parametrize("every,threshold,updates", [(0, 0.0, 0), (2, 0.0, 3), (1, 1.0, 0)])
def test_online_template_update(every, threshold, updates):
    cfg = _tiny()
    cfg["tracker"] = {**cfg.get("tracker", {}), "template_update_interval": every,
                      "template_update_threshold": threshold}
    fam = get_family("ostrack")
    tracker = fam.build_tracker(fam.build_model(cfg["model"]), cfg, "cpu")
    frames, gt = _moving_square_sequence(n=7)
    tracker.initialize(frames[0], gt[0])
    seen = [tracker._template]
    for img in frames[1:]:
        tracker.track(img)
        if tracker._template is not seen[-1]:
            seen.append(tracker._template)
    assert len(seen) - 1 == updates  # every 2nd of 6 frames; never at interval 0 or an unreachable threshold


@pytest.mark.parametrize("key,value", [("template_update_interval", -1), ("template_update_threshold", 1.5),
                                       ("window_influence", -0.1)])
def test_tracker_section_checks(key, value):
    from vtrack.models.ostrack.config import parse_tracker

    with pytest.raises(ValueError, match=f"tracker.{key}"):
        parse_tracker({key: value})
