"""DuML: shapes, the Gauss-Newton step, meta-gradients, ATSS, score voting, online tracking."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_fakes import moving_box
from vtrack.models import get_family
from vtrack.models.duml import DuML, DuMLCriterion, model_config, tracker_config
from vtrack.models.duml.anchors import atss_assign, decode, encode, make_anchors
from vtrack.models.duml.onr import SteepestDescentGN, apply_feat_transpose, apply_filter
from vtrack.models.layers.score_voting import score_voting
from vtrack.models.layers.xcorr import xcorr_depthwise

TINY = dict(
    name="duml", backbone="resnet18", channels=32, template_size=47, search_size=95, template_window=4,
    anchor_scales=[3.0], onr_feature_dim=32, onr_filter_size=3, onr_num_dist_bins=12, onr_bin_displacement=0.5,
    onr_label_sigma=0.8, onr_train_iters=2,
)


def _batch(b: int = 2, s: int = 3, q: int = 2, size: int = 95) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "train_images": torch.randn(b, s, 3, size, size, generator=g),
        "test_images": torch.randn(b, q, 3, size, size, generator=g),
        "train_boxes": torch.tensor([36.0, 35.0, 24.0, 26.0]).repeat(b, s, 1),
        "test_boxes": torch.tensor([42.0, 30.0, 21.0, 27.0]).repeat(b, q, 1),
    }


@pytest.fixture(scope="module")
def dual_model() -> DuML:
    torch.manual_seed(0)
    return DuML(model_config({"model": dict(TINY)}))


def test_family_registered_and_processing() -> None:
    fam = get_family("duml")
    cfg = {"model": dict(TINY)}
    proc = fam.processing_config(cfg)
    assert proc["sample_mode"] == "sequence"
    assert proc["sampler"]["num_support"] == 3 and proc["sampler"]["num_query"] == 2
    assert proc["search"]["size"] == 95 and proc["search"]["factor"] == pytest.approx(95 / 47)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="model.bogus"):
        model_config({"model": {"name": "duml", "bogus": 1}})
    with pytest.raises(TypeError, match="model.channels"):
        model_config({"model": {"name": "duml", "channels": "wide"}})
    with pytest.raises(ValueError, match="model.mode"):
        model_config({"model": {"name": "duml", "mode": "triple"}})
    with pytest.raises(ValueError, match="tracker.mu"):
        tracker_config({"tracker": {"mu": 1.5}})


def test_forward_shapes_and_loss(dual_model: DuML) -> None:
    batch = _batch()
    out = dual_model(batch)
    # 95 crop -> 12x12 stride-8 features; 4-cell template window -> 9x9 score map
    assert out["cls"].shape == (4, 5, 9, 9)
    assert out["box"].shape == (4, 5, 4, 9, 9)
    assert out["iou"].shape == (4, 5, 9, 9)
    assert out["anchors"].shape == (5, 9, 9, 4)
    assert out["onr_scores"].shape == (3, 2, 2, 12, 12)  # init + 2 iterations, Q, B
    loss, stats = DuMLCriterion(dual_model.cfg)(out, batch)
    assert torch.isfinite(loss) and loss.item() > 0
    for key in ("loss_ofc", "loss_box", "loss_iou", "loss_onr"):
        assert key in stats and math.isfinite(stats[key])
    dual_model.eval()
    with torch.no_grad():
        out_eval = dual_model(batch)
    dual_model.train()
    assert out_eval["cls"].shape == out["cls"].shape


def test_backbone_interpolates_deeper_blocks() -> None:
    from vtrack.models.backbones.resnet import ResNetBackbone

    bb = ResNetBackbone("resnet18", out_channels=16)
    feats = bb(torch.randn(1, 3, 255, 255))
    assert [tuple(f.shape) for f in feats] == [(1, 16, 32, 32)] * 3
    with pytest.raises(ValueError, match="name"):
        ResNetBackbone("vit_base_patch16_224")


def test_backbone_width_scales_the_stages() -> None:
    from vtrack.models.backbones.resnet import ResNetBackbone

    full, half = ResNetBackbone("resnet18", out_channels=16), ResNetBackbone("resnet18", out_channels=16, width=0.5)
    assert full.in_channels == [128, 256, 512] and half.in_channels == [64, 128, 256]
    n_full, n_half = (sum(p.numel() for p in b.body.parameters()) for b in (full, half))
    assert 0.2 < n_half / n_full < 0.3  # a quarter of the trunk's weights, the stem kept
    feats = half(torch.randn(1, 3, 95, 95))
    assert [tuple(f.shape) for f in feats] == [(1, 16, 12, 12)] * 3
    for bad in (0, -0.5, True, "half"):
        with pytest.raises(ValueError, match="width"):
            ResNetBackbone("resnet18", width=bad)
    with pytest.raises(ValueError, match="backbone_width"):
        model_config({"model": {**TINY, "backbone_width": 0}})


def test_xcorr_depthwise_matches_loops() -> None:
    x, k = torch.randn(2, 3, 6, 7), torch.randn(2, 3, 3, 2)
    out = xcorr_depthwise(x, k)
    ref = torch.stack([torch.stack([F.conv2d(x[b, c][None, None], k[b, c][None, None])[0, 0] for c in range(3)]) for b in range(2)])
    torch.testing.assert_close(out, ref)


def test_feat_transpose_is_the_filter_gradient() -> None:
    feat = torch.randn(3, 2, 4, 7, 7, dtype=torch.float64)
    act = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    for k in (4, 5):
        w = torch.randn(2, 4, k, k, dtype=torch.float64, requires_grad=True)
        (apply_filter(feat, w) * act).sum().backward()
        torch.testing.assert_close(apply_feat_transpose(feat, act, (k, k)), w.grad)


def _jacobian(feat: torch.Tensor, k: int) -> torch.Tensor:
    """Explicit matrix J with scores.flatten() = J @ filter.flatten() (one sequence)."""
    c = feat.shape[2]
    cols = []
    for i in range(c * k * k):
        e = torch.zeros(c * k * k, dtype=feat.dtype)
        e[i] = 1.0
        cols.append(apply_filter(feat, e.reshape(1, c, k, k)).flatten())
    return torch.stack(cols, 1)


@pytest.mark.parametrize("mask_value", [1.0, 0.3])
def test_steepest_descent_matches_hand_gauss_newton(mask_value: float) -> None:
    torch.manual_seed(3)
    s, c, h, k = 2, 2, 5, 3
    feat = torch.randn(s, 1, c, h, h, dtype=torch.float64)
    theta = torch.randn(1, c, k, k, dtype=torch.float64)
    label = torch.rand(s, 1, h, h, dtype=torch.float64)
    mask = torch.full((s, 1, h, h), mask_value, dtype=torch.float64)
    sw = torch.rand(s, 1, h, h, dtype=torch.float64) + 0.5
    opt = SteepestDescentGN(init_filter_reg=0.3).double()
    lam = float(opt.filter_reg.detach()) ** 2  # (the parameter was stored in float32 before .double())
    new, _ = opt.step(theta, feat, label, mask, sw, step_length=1.0)

    # by hand: r = sw * (m p + (1-m) relu(p) - y); GN Jacobian Jr = diag(sw * dact/dp) J
    J = _jacobian(feat, k)
    t = theta.flatten()
    p = J @ t
    m, y, w = mask.flatten(), label.flatten(), sw.flatten()
    act = m * p + (1 - m) * p.clamp(min=0)
    dact = m + (1 - m) * (p > 0).double()
    r = w * (act - y)
    Jr = (w * dact)[:, None] * J
    g = Jr.T @ r + lam * t
    Q = Jr.T @ Jr + lam * torch.eye(t.numel(), dtype=torch.float64)
    alpha = (g @ g) / (g @ Q @ g)
    expected = t - alpha * g
    torch.testing.assert_close(new.flatten(), expected, rtol=1e-10, atol=1e-12)
    if mask_value == 1.0:  # linear residual: the GN step is exact line search, loss must drop
        def loss(v: torch.Tensor) -> torch.Tensor:
            return 0.5 * ((w * (J @ v - y)) ** 2).sum() + 0.5 * lam * (v @ v)

        assert loss(expected) < loss(t)


def test_gradients_flow_through_the_inner_loop() -> None:
    torch.manual_seed(0)
    model = DuML(model_config({"model": dict(TINY, mode="onr")}))
    batch = _batch(b=1)
    out = model(batch)
    loss, _ = DuMLCriterion(model.cfg)(out, batch)
    loss.backward()
    opt = model.optimizer
    # these parameters only act inside the inner loop (the filter optimisation)
    for name, p in (("log_step_length", opt.log_step_length), ("filter_reg", opt.filter_reg),
                    ("label", opt.label_map_predictor.weight), ("mask", opt.target_mask_predictor.weight),
                    ("spatial", opt.spatial_weight_predictor.weight)):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.feat_weight.grad.abs().sum() > 0
    assert model.backbone.body.conv1.weight.grad.abs().sum() > 0
    assert not hasattr(model, "cls_heads")


def test_atss_max_iou_on_hand_made_boxes() -> None:
    # one 10x10 anchor shape on a 5x5 grid of stride 5 centred on a 50-pixel crop (centres 15..35)
    anchors = make_anchors(5, 5, 50, torch.tensor([[10.0, 10.0]]))
    assert anchors[0, 2, 2].tolist() == [25.0, 25.0, 10.0, 10.0]
    # gt = the central anchor: IoUs 1 (centre), 1/3 (4 edge neighbours), 1/7 (4 diagonals)
    gt = torch.tensor([[20.0, 20.0, 10.0, 10.0]])
    cand = torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 3, 1 / 3])  # top-5 by IoU
    thr = cand.mean() + cand.std()  # 0.7648
    assert 1 / 3 < thr < 1.0
    pos = atss_assign(anchors, gt, topk=5)
    assert pos.shape == (1, 1, 5, 5)
    assert pos.sum() == 1 and pos[0, 0, 2, 2]
    # gt straddling two anchors horizontally: (cx=27.5) IoU 0.6 with the two nearest each
    gt2 = torch.tensor([[22.5, 20.0, 10.0, 10.0]])
    pos2 = atss_assign(anchors, gt2, topk=6)
    # candidates: 0.6, 0.6 and four at 37.5/162.5 = 0.23; threshold mean + std = 0.54
    assert pos2.sum() == 2 and pos2[0, 0, 2, 2] and pos2[0, 0, 2, 3]
    # a small box containing no anchor centre still keeps one (its best) anchor
    pos3 = atss_assign(anchors, torch.tensor([[21.0, 21.0, 3.0, 3.0]]), topk=3)
    assert pos3.sum() == 1
    ai = anchors[0][pos3[0, 0]][0]
    assert abs(ai[0] - 22.5) <= 2.5 and abs(ai[1] - 22.5) <= 2.5


def test_box_coding_roundtrip() -> None:
    anchors = make_anchors(3, 8, 64, torch.tensor([[16.0, 8.0], [8.0, 16.0]]))
    gt = torch.tensor([30.0, 33.0, 20.0, 12.0]).expand_as(anchors)
    torch.testing.assert_close(decode(encode(gt, anchors), anchors), gt)


def test_score_voting_on_hand_made_predictions() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 11.0], [50.0, 50.0, 60.0, 60.0], [1.0, 0.0, 11.0, 10.0]])
    scores = torch.tensor([0.9, 0.6, 0.99, 0.5])
    ious = torch.tensor([0.8, 0.7, 0.9, 0.4])
    sigma = 0.0025
    iou_b = 10 / 11  # box 1 vs box 0
    iou_d = 90 / 110  # box 3 vs box 0
    w = torch.tensor([0.9 * 1.0 * 0.8, 0.6 * math.exp(-((1 - iou_b) ** 2) / sigma) * 0.7, 0.0,
                      0.5 * math.exp(-((1 - iou_d) ** 2) / sigma) * 0.4])
    expected = (w[:, None] * boxes).sum(0) / w.sum()
    out = score_voting(boxes, scores, ious, 0, eps=0.01, sigma=sigma)
    torch.testing.assert_close(out, expected)
    # the far box (IoU 0 with the selected one) never votes, whatever its score
    assert out[2] < 11
    # with eps above every neighbour's IoU only the selected box is left
    torch.testing.assert_close(score_voting(boxes, scores, ious, 0, eps=0.95), boxes[0])


def _synthetic_frames(n: int = 24, size: tuple[int, int] = (160, 200)) -> tuple[list[np.ndarray], np.ndarray]:
    bg = np.random.default_rng(0).integers(40, 90, (*size, 3), dtype=np.uint8)
    frames, boxes = moving_box(bg, n, (60, 50), (24, 30), (230, 60, 40))
    return frames, np.array(boxes, dtype=np.float64)


def test_tracker_runs_with_online_updates(dual_model: DuML) -> None:
    fam = get_family("duml")
    cfg = {"tracker": {"update_interval": 5, "target_not_found_threshold": -1e9, "memory_size": 14}}
    trk = fam.build_tracker(dual_model, cfg, "cpu")
    frames, gt = _synthetic_frames(16)
    trk.initialize(frames[0], gt[0])
    n_init = trk.memory.count
    assert n_init == 10  # identity, flip, 2 blurs, 2 rotations, 4 shifts
    f0 = trk.filter.clone()
    flags = []
    for img in frames[1:]:
        res = trk.track(img)
        x, y, w, h = res.box
        assert all(math.isfinite(v) for v in res.box) and w >= 10 and h >= 10
        flags.append(res.extra["flag"])
    assert trk.memory.count == 14  # filled up, then replacing
    assert not torch.allclose(trk.filter, f0)  # the filter was re-optimised online
    assert torch.isclose(trk.memory.weights.sum(), torch.tensor(1.0))
    assert trk.memory.weights[:n_init].sum() >= 0.25 - 1e-6  # initial samples keep their share
    assert set(flags) <= {"normal", "hard_negative"}


def test_tracker_rejects_wrong_mu(dual_model: DuML) -> None:
    ofc_only = DuML(model_config({"model": dict(TINY, mode="ofc")}))
    with pytest.raises(ValueError, match="tracker.mu"):
        get_family("duml").build_tracker(ofc_only, {"tracker": {"mu": 0.8}}, "cpu")
    trk = get_family("duml").build_tracker(ofc_only, {}, "cpu")
    frames, gt = _synthetic_frames(3)
    trk.initialize(frames[0], gt[0])
    assert trk.track(frames[1]).extra["flag"] == "offline"


def test_backbone_loads_a_local_checkpoint(tmp_path) -> None:
    from vtrack._compat import import_timm
    from vtrack.models.backbones.resnet import ResNetBackbone

    src = import_timm().create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    bb = ResNetBackbone("resnet18", out_channels=8, pretrained=str(path))
    torch.testing.assert_close(bb.body.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    with pytest.raises(ValueError, match="pretrained"):
        ResNetBackbone("resnet18", pretrained=str(tmp_path / "missing.pth"))


def test_sample_memory_weights_follow_dimp() -> None:
    from vtrack.models.duml.tracker import SampleMemory

    mem = SampleMemory.create(torch.zeros(2, 1, 2, 2), torch.zeros(2, 2), size=4, init_min_weight=0.25)
    mem.add(torch.ones(1, 2, 2), torch.zeros(2), lr=0.1)  # first: old /(1-lr), new = lr
    w = torch.tensor([0.5 / 0.9, 0.5 / 0.9, 0.1])
    torch.testing.assert_close(mem.weights[:3], w / w.sum())
    mem.add(torch.ones(1, 2, 2), torch.zeros(2), lr=0.1)  # newest = previous newest / (1 - lr)
    w = torch.cat([w / w.sum(), (w[2] / w.sum() / 0.9)[None]])
    torch.testing.assert_close(mem.weights, w / w.sum())
    assert mem.weights[3] > mem.weights[2]
    mem.add(torch.full((1, 2, 2), 5.0), torch.ones(2), lr=0.1)  # full: replaces the lightest non-initial (2)
    assert mem.last == 2 and mem.feats[2].max() == 5.0 and mem.count == 4
    assert mem.weights[:2].sum() >= 0.25 - 1e-6
