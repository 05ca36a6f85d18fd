"""SparseTT: layers, backbone loading, model shapes, double head, loss, training step, tracker."""
import math

import numpy as np
import pytest
import torch

from data_fakes import moving_box
from vtrack import kernels
from vtrack.models import get_family
from vtrack.models.backbones.swin import SwinBackbone, swin_feature_size
from vtrack.models.layers.transformer import (MultiHeadAttention, TransformerDecoderLayer, TransformerEncoderLayer,
                                              sine_position_encoding)
from vtrack.models.sparsett import (SparseTT, SparseTTCriterion, dense_labels, fuse_scores, score_map_points,
                                    siamfcpp_penalty)
from vtrack.bench.sparsett import available_topk_backends

TINY = {
    "name": "sparsett",
    "backbone_kwargs": {"embed_dim": 24, "depths": [1, 1, 2], "num_heads": [1, 2, 4], "window_size": 4},
    "drop_path_rate": 0.0,
    "template_size": 64,
    "search_size": 128,
    "dim": 32,
    "num_heads": 4,
    "ffn_dim": 64,
    "dropout": 0.0,
    "topk": 8,
    "head_channels": 32,
    "head_conv_blocks": 3,
    "backend": "reference",
}


@pytest.fixture(scope="module")
def family():
    return get_family("sparsett")


@pytest.fixture(scope="module")
def tiny_model(family):
    torch.manual_seed(0)
    return family.build_model(TINY)


def _batch(b=2, positive=None):
    g = torch.Generator().manual_seed(1)
    batch = {
        "template": torch.randn(b, 3, 64, 64, generator=g),
        "search": torch.randn(b, 3, 128, 128, generator=g),
        "search_box": torch.tensor([[40.0, 44.0, 48.0, 36.0]] * b),
    }
    if positive is not None:
        batch["positive"] = torch.tensor(positive)
    return batch


def _sparsett_style_topk(q, k, v, topk):
    """SparseTT release's composite: dense logits, topk, scatter into -inf, softmax, matmul."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    val, idx = s.topk(topk, dim=-1)
    sparse = torch.full_like(s, float("-inf")).scatter(-1, idx, val)
    return torch.softmax(sparse, dim=-1) @ v


# ----------------------------------------------------------------------------- layers
def test_sparse_attention_matches_composite_and_reference():
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4, topk=5, backend="reference")
    x = torch.randn(2, 20, 32)
    out = attn(x, x, x)
    q, k, v = (attn._split(p(x)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    manual = _sparsett_style_topk(q, k, v, 5).transpose(1, 2).reshape(2, 20, 32)
    torch.testing.assert_close(out, attn.out_proj(manual), atol=1e-5, rtol=1e-5)
    # sparse differs from dense when K < M
    dense = MultiHeadAttention(32, 4, topk=None)
    dense.load_state_dict(attn.state_dict())
    assert (dense(x, x, x) - out).abs().max() > 1e-3


# fused backends at layer level (Triton only on a GPU: its interpreter is covered by the kernel tests)
_FUSED = [b for b in available_topk_backends() if b != "reference" and (b != "triton" or torch.cuda.is_available())]


@pytest.mark.parametrize("backend", _FUSED or [pytest.param("none", marks=pytest.mark.skip(reason="no fused backend"))])
def test_topk_layer_backends_match_reference(backend):
    torch.manual_seed(0)
    ref = MultiHeadAttention(32, 4, topk=6, backend="reference")
    fused = MultiHeadAttention(32, 4, topk=6, backend=backend)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(2, 24, 32)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, out = ref(x1, x1, x1), fused(x2, x2, x2)
    torch.testing.assert_close(out, out_ref, atol=1e-4, rtol=1e-4)
    out_ref.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-4, rtol=1e-4)
    for (name, p_ref), p in zip(ref.named_parameters(), fused.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_topk_all_equals_dense_attention():
    torch.manual_seed(0)
    dense = MultiHeadAttention(32, 4, topk=None)
    x = torch.randn(2, 12, 32)
    mem = torch.randn(2, 9, 32)
    q = dense._split(dense.q_proj(x))
    k, v = dense._split(dense.k_proj(mem)), dense._split(dense.v_proj(mem))
    via_kernel = kernels.topk_attention(q, k, v, 9, backend="reference").transpose(1, 2).reshape(2, 12, 32)
    torch.testing.assert_close(dense(x, mem, mem), dense.out_proj(via_kernel), atol=1e-5, rtol=1e-5)
    # a layer whose K covers every key takes the dense path and gives the same numbers
    all_k = MultiHeadAttention(32, 4, topk=9)
    all_k.load_state_dict(dense.state_dict())
    assert not all_k.is_sparse(9) and all_k.is_sparse(10)
    torch.testing.assert_close(all_k(x, mem, mem), dense(x, mem, mem))


def test_attention_key_padding_mask_and_errors():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2, topk=3, backend="reference")
    x = torch.randn(1, 6, 16)
    mem = torch.randn(1, 5, 16)
    mask = torch.tensor([[False, False, False, True, True]])
    torch.testing.assert_close(attn(x, mem, mem, key_padding_mask=mask), attn(x, mem[:, :3], mem[:, :3]))
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="topk"):
        MultiHeadAttention(16, 2, topk=0)
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn(x, mem, mem, key_padding_mask=mask.float())
    with pytest.raises(ValueError, match="query"):
        attn(torch.randn(6, 16), mem, mem)


def test_post_norm_layers():
    torch.manual_seed(0)
    enc = TransformerEncoderLayer(16, 2, 32, dropout=0.0)
    dec = TransformerDecoderLayer(16, 2, 32, dropout=0.0, self_topk=4, backend="reference")
    z = torch.randn(2, 9, 16)
    x = torch.randn(2, 25, 16)
    ez = enc(z)
    y = dec(x, ez)
    assert ez.shape == z.shape and y.shape == x.shape
    # post-norm: every output token is layer-normalised (zero mean, unit variance before the affine)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 25), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 25), atol=1e-3, rtol=0)
    # eq. 3 by hand
    h = dec.norm1(x + dec.self_attn(x, x, x))
    h = dec.norm2(h + dec.cross_attn(h, ez, ez))
    torch.testing.assert_close(y, dec.norm3(h + dec.ffn(h)))


def test_sine_position_encoding():
    pos = sine_position_encoding(3, 5, 16)
    assert pos.shape == (15, 16)
    assert len({tuple(r) for r in pos.round(decimals=5).tolist()}) == 15  # every position distinct
    with pytest.raises(ValueError, match="dim"):
        sine_position_encoding(3, 3, 10)


# ----------------------------------------------------------------------------- backbone
def _tiny_swin_kwargs():
    return {"embed_dim": 24, "depths": (1, 1, 2, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}


def test_swin_feature_sizes():
    assert swin_feature_size(127, 2) == 8 and swin_feature_size(289, 2) == 19
    assert swin_feature_size(128, 2) == 8 and swin_feature_size(160, 2) == 10
    bb = SwinBackbone(model_kwargs=_tiny_swin_kwargs())
    assert bb.stride == 16 and bb.out_channels == 96
    assert bb(torch.randn(1, 3, 127, 127)).shape == (1, 96, 8, 8)


def test_pretrained_swin_loads_from_file(tmp_path):
    from vtrack._compat import import_timm

    timm = import_timm()
    torch.manual_seed(3)
    full = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10,
                             strict_img_size=False, **_tiny_swin_kwargs())
    path = tmp_path / "swin_timm.pth"
    torch.save({"model": full.state_dict()}, path)
    bb = SwinBackbone(pretrained=str(path), model_kwargs=_tiny_swin_kwargs())
    x = torch.randn(1, 3, 64, 64)
    full.eval(), bb.eval()
    expected = full.forward_intermediates(x, indices=[2], intermediates_only=True)[0]
    torch.testing.assert_close(bb(x), expected)
    # the original Microsoft layout (downsample at the end of a stage) converts to the same weights
    old = {}
    for k, v in full.state_dict().items():
        for i in range(1, 4):
            k = k.replace(f"layers.{i}.downsample", f"layers.{i - 1}.downsample")
        old[k] = v
    old_path = tmp_path / "swin_orig.pth"
    torch.save(old, old_path)
    bb2 = SwinBackbone(pretrained=str(old_path), model_kwargs=_tiny_swin_kwargs()).eval()
    torch.testing.assert_close(bb2(x), expected)
    with pytest.raises(FileNotFoundError):
        SwinBackbone(pretrained=str(tmp_path / "missing.pth"), model_kwargs=_tiny_swin_kwargs())
    wrong = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, strict_img_size=False,
                              **{**_tiny_swin_kwargs(), "embed_dim": 32})
    bad = tmp_path / "wrong.pth"
    torch.save(wrong.state_dict(), bad)
    with pytest.raises(ValueError, match="shape"):
        SwinBackbone(pretrained=str(bad), model_kwargs=_tiny_swin_kwargs())


# ----------------------------------------------------------------------------- model
def test_model_shapes_train_and_eval(tiny_model):
    batch = _batch(2)
    for mode in (True, False):
        tiny_model.train(mode)
        out = tiny_model(batch)
        assert out["cls_fc"].shape == out["cls_conv"].shape == (2, 1, 8, 8)
        assert out["ltrb_fc"].shape == out["ltrb_conv"].shape == (2, 4, 8, 8)
        assert out["box"].shape == (2, 64, 4) and out["score"].shape == (2, 8, 8)
        assert torch.isfinite(out["box"]).all() and bool((out["ltrb_conv"] > 0).all())
    tiny_model.train()


def test_paper_geometry():
    pts = score_map_points(19, 16, 289)
    assert pts.shape == (361, 2)
    torch.testing.assert_close(pts[180], torch.tensor([144.5, 144.5]))  # centre point at the crop centre
    assert pts[0, 0] == 0.5 and pts[1, 0] - pts[0, 0] == 16


def test_double_head_fusion_rule(tiny_model):
    p_fc = torch.tensor([0.0, 0.5, 0.9, 1.0])
    p_conv = torch.tensor([0.3, 0.5, 0.5, 0.2])
    torch.testing.assert_close(fuse_scores(p_fc, p_conv), torch.tensor([0.3, 0.75, 0.95, 1.0]))
    tiny_model.eval()
    out = tiny_model(_batch(1))
    tiny_model.train()
    fused = 1 - (1 - torch.sigmoid(out["cls_fc"])) * (1 - torch.sigmoid(out["cls_conv"]))
    torch.testing.assert_close(out["score"], fused[:, 0])
    # boxes come from the conv-head only
    ltrb = out["ltrb_conv"].flatten(2).transpose(1, 2)[0]
    pts = tiny_model.points
    torch.testing.assert_close(out["box"][0], torch.cat((pts - ltrb[:, :2], pts + ltrb[:, 2:]), 1))


def test_dense_labels_and_loss_weights(family):
    pts = score_map_points(4, 10, 40)  # points at 5, 15, 25, 35
    cls, ltrb = dense_labels(pts, torch.tensor([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 40.0, 40.0]]),
                             torch.tensor([True, False]))
    assert cls[0].reshape(4, 4).tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert cls[1].sum() == 0  # negative pair
    torch.testing.assert_close(ltrb[0, 5], torch.tensor([5.0, 5.0, 15.0, 15.0]))
    # eq. 4 combination of the four terms
    crit = family.build_criterion({"model": TINY})
    out = {"cls_fc": torch.zeros(1, 1, 8, 8), "cls_conv": torch.zeros(1, 1, 8, 8),
           "ltrb_fc": torch.full((1, 4, 8, 8), 10.0), "ltrb_conv": torch.full((1, 4, 8, 8), 20.0)}
    loss, st = crit(out, {"search_box": torch.tensor([[40.0, 40.0, 48.0, 48.0]])})
    expected = 2.0 * (0.7 * st["cls_fc"] + 0.3 * st["box_fc"]) + 2.5 * (0.2 * st["cls_conv"] + 0.8 * st["box_conv"])
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    assert st["num_pos"] == 4  # points 56 and 72 in x and y and st["box_fc"] > 0 and st["cls_fc"] > 0
    # labels from the fcos generator path give the same loss
    cls_l, ltrb_l = dense_labels(score_map_points(8, 16, 128), torch.tensor([[40.0, 40.0, 48.0, 48.0]]))
    loss2, _ = crit(out, {"label_cls": cls_l.reshape(1, 8, 8), "label_ltrb": ltrb_l.transpose(1, 2).reshape(1, 4, 8, 8)})
    torch.testing.assert_close(loss2, loss)


def test_one_training_step_reduces_loss(family):
    torch.manual_seed(0)
    model = family.build_model(TINY)
    crit = family.build_criterion({"model": TINY})
    model.train()
    batch = _batch(4, positive=[True, True, True, False])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss, _ = crit(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = crit(model(batch), batch)[0].item()
    assert final < losses[0], (losses, final)


def test_config_errors(family):
    with pytest.raises(ValueError, match="model.topk_k"):
        family.build_model({**TINY, "topk_k": 3})
    with pytest.raises(TypeError, match="model.dim"):
        family.build_model({**TINY, "dim": "wide"})
    with pytest.raises(ValueError, match="topk"):
        family.build_model({**TINY, "topk": 0})
    with pytest.raises(ValueError, match="tracker.window_influences"):
        family.build_tracker(None, {"tracker": {"window_influences": 0.3}}, "cpu")


def test_processing_config_matches_model(family, tiny_model):
    pc = family.processing_config({"model": TINY})
    assert pc["sample_mode"] == "pair" and pc["crop_mode"] == "siamfc"
    spec = pc["labels"][0]
    assert spec["name"] == "fcos" and spec["size"] == tiny_model.score_size == 8 and spec["stride"] == 16
    grid = spec["offset"] + torch.arange(spec["size"]) * spec["stride"]
    torch.testing.assert_close(tiny_model.points[: spec["size"], 0], grid.float())
    paper = family.processing_config({"model": {"name": "sparsett"}})
    assert (paper["template"]["size"], paper["search"]["size"], paper["labels"][0]["size"]) == (127, 289, 19)
    assert paper["search"]["factor"] == pytest.approx(289 / 127) and paper["sampler"]["max_gap"] == 100
    from vtrack.config import from_dict
    from vtrack.train.schema import ProcessingConfig

    from_dict(ProcessingConfig, {k: v for k, v in paper.items() if k != "sampler"}, "processing")


# ----------------------------------------------------------------------------- tracker
def test_siamfcpp_penalty():
    boxes = np.array([[0, 0, 20, 10], [0, 0, 40, 20], [0, 0, 10, 20]], dtype=np.float64)
    pen = siamfcpp_penalty(boxes, (20, 10), 0.04)
    assert pen[0] == pytest.approx(1.0) and pen[1] < 1.0 and pen[2] < pen[1]


def _moving_square(n=6, size=96):
    bg = np.random.default_rng(0).integers(0, 60, (size, size, 3), dtype=np.uint8)
    return moving_box(bg, n, (30, 34), (16, 20), (230, 40, 40))


def test_tracker_runs_on_synthetic_sequence(family, tiny_model):
    frames, boxes = _moving_square()
    tracker = family.build_tracker(tiny_model, {"tracker": {"window_influence": 0.3}}, "cpu")
    tracker.initialize(frames[0], boxes[0])
    for img in frames[1:]:
        res = tracker.track(img)
        x, y, w, h = res.box
        assert all(math.isfinite(v) for v in res.box) and 0 <= res.score <= 1
        assert 10 <= w <= 96 and 10 <= h <= 96 and 0 <= x + w / 2 <= 96 and 0 <= y + h / 2 <= 96
    assert not tiny_model.training


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", ["sparsett_swin_t", "sparsett_tiny"])
def test_configs_validate(family, name):
    from pathlib import Path

    from vtrack.config import from_dict, load_config
    from vtrack.models.sparsett import SparseTTModelConfig, SparseTTTrackerConfig
    from vtrack.train.schema import DataConfig, TrainConfig

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "sparsett" / f"{name}.yaml")
    assert set(cfg) == {"model", "data", "train", "tracker"}
    mc = from_dict(SparseTTModelConfig, cfg["model"], "model")
    from_dict(DataConfig, cfg["data"], "data")
    from_dict(TrainConfig, cfg["train"], "train")
    from_dict(SparseTTTrackerConfig, cfg["tracker"], "tracker")
    size = family.processing_config(cfg)["labels"][0]["size"]
    assert family.build_criterion(cfg).points.shape == (size * size, 2)
    if name == "sparsett_swin_t":
        assert (mc.topk, mc.num_encoder_layers, mc.num_decoder_layers, mc.ffn_dim, mc.head_conv_blocks) == (32, 2, 2, 2048, 8)
        assert family.processing_config(cfg)["labels"][0]["size"] == 19


def test_paper_model_shapes(family):
    cfg = {"name": "sparsett", "head_channels": 64, "ffn_dim": 256}  # paper geometry, narrower heads/FFN
    model = family.build_model(cfg).eval()
    assert model.backbone.out_channels == 384 and model.template_feat == 8 and model.score_size == 19
    with torch.no_grad():
        out = model({"template": torch.randn(1, 3, 127, 127), "search": torch.randn(1, 3, 289, 289)})
    assert out["cls_fc"].shape == (1, 1, 19, 19) and out["box"].shape == (1, 361, 4)
    sparse = [m for m in model.decoder.modules() if isinstance(m, MultiHeadAttention) and m.topk == 32]
    assert len(sparse) == 2 and all(m.is_sparse(361) for m in sparse)


def test_loader_and_speed_benchmark_drive_sparsett(tmp_path, tiny_model):
    from vtrack.bench.trackers import bench_tracker
    from vtrack.tracking.loader import build_tracker

    ckpt = tmp_path / "model.pth"
    torch.save({"model": tiny_model.state_dict()}, ckpt)
    cfg = {"model": TINY, "tracker": {"penalty_k": 0.05}}
    tracker = build_tracker("sparsett_tiny", config=cfg, checkpoint=str(ckpt))
    frames, boxes = _moving_square(3)
    tracker.initialize(frames[0], boxes[0])
    assert len(tracker.track(frames[1]).box) == 4 and tracker.name == "sparsett_tiny"
    row = bench_tracker(cfg, backend="reference", frames=2, warmup=0, image_size=(96, 96), model=tiny_model)
    assert row.family == "sparsett" and row.fps > 0


def _iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_tracker_geometry_with_an_oracle_head(family, tiny_model):
    """A stand-in network that finds the red target in the search crop exactly: the tracker's
    crop -> score map -> box -> image mapping and post-processing must then follow the target."""
    from vtrack.models.sparsett.tracker import SparseTTTracker

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    pts = tiny_model.points

    def oracle(search, memory):
        img = search[0] * std + mean
        ys, xs = torch.nonzero((img[0] > 0.8) & (img[1] < 0.3), as_tuple=True)
        x1, y1, x2, y2 = xs.min().float(), ys.min().float(), xs.max().float() + 1, ys.max().float() + 1
        ltrb = torch.stack((pts[:, 0] - x1, pts[:, 1] - y1, x2 - pts[:, 0], y2 - pts[:, 1]), 1)
        inside = (ltrb > 0).all(1)
        score = torch.where(inside, 0.9, 0.01)
        ltrb = ltrb.clamp_min(0.5)
        return {"score": score.reshape(1, 8, 8), "box": torch.cat((pts - ltrb[:, :2], pts + ltrb[:, 2:]), 1)[None]}

    tracker = SparseTTTracker(tiny_model, {"update": {"size_lr": 1.0, "size_lr_by_score": True}, "window_influence": 0.1}, "cpu")
    tracker.model.decode_search = oracle
    try:
        rng = np.random.default_rng(0)
        bg = rng.integers(0, 60, (160, 200, 3), dtype=np.uint8)
        tracker.initialize(bg, (50, 60, 24, 18))
        for t in range(1, 9):
            img = bg.copy()
            box = (50 + 5 * t, 60 + 3 * t, 24, 18)
            img[box[1]:box[1] + box[3], box[0]:box[0] + box[2]] = (240, 20, 20)
            res = tracker.track(img)
            assert _iou(res.box, box) > 0.9, (t, res.box, box)
    finally:
        del tracker.model.decode_search
