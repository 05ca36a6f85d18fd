"""Label generators: heatmap, FCOS, anchors+ATSS, ESAT position labels."""
import math

import numpy as np
import pytest
import torch

from vtrack.train import labels as LB


def _ctx(search_box, template_box=(32, 32, 64, 64), search_size=256, template_size=128, positive=True):
    return LB.LabelContext(np.asarray(search_box, float), np.asarray(template_box, float), search_size,
                           template_size, positive)


def test_gaussian_heatmap_ostrack_convention():
    gen = LB.build_label_generator({"name": "gaussian_heatmap", "stride": 16})
    out = gen(_ctx((112, 96, 32, 64)))  # feature box (7, 6, 2, 4) -> centre (8, 8)
    heat = out["label_heatmap"]
    assert heat.shape == (1, 16, 16) and heat.dtype == torch.float32
    assert heat[0, 8, 8].item() == 1.0 and int(heat.argmax()) == 8 * 16 + 8
    r = max(0, int(LB.gaussian_radius(4.0, 2.0, 0.7)))
    sigma = (2 * r + 1) / 6
    if r >= 1:
        assert heat[0, 8, 9].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-6)
    assert (heat[0] > 0).sum().item() <= (2 * r + 1) ** 2
    neg = gen(_ctx((112, 96, 32, 64), positive=False))["label_heatmap"]
    assert neg.abs().sum().item() == 0.0
    # fixed sigma, box near the border is clipped without error
    fixed = LB.build_label_generator({"name": "gaussian_heatmap", "stride": 16, "sigma": 1.0})
    edge = fixed(_ctx((-8, -8, 16, 16)))["label_heatmap"]
    assert edge[0, 0, 0].item() == 1.0 and edge[0, 0, 1].item() == pytest.approx(math.exp(-0.5))


def test_gaussian_radius_known_value():
    # CenterNet formula for a 10x10 box, min_overlap 0.7 (computed by hand from the three cases)
    h = w = 10.0
    b1, c1 = 20.0, 100 * 0.3 / 1.7
    r1 = (b1 + math.sqrt(b1 * b1 - 4 * c1)) / 2
    b2, c2 = 40.0, 30.0
    r2 = (b2 + math.sqrt(b2 * b2 - 16 * c2)) / 2
    a3, b3, c3 = 2.8, -28.0, -30.0
    r3 = (b3 + math.sqrt(b3 * b3 - 4 * a3 * c3)) / 2
    assert LB.gaussian_radius(h, w, 0.7) == pytest.approx(min(r1, r2, r3))


def test_fcos_labels():
    gen = LB.build_label_generator({"name": "fcos", "size": 25, "stride": 8})
    out = gen(_ctx((100, 110, 60, 40), search_size=255))
    cls, ltrb, ctr = out["label_cls"], out["label_ltrb"], out["label_centerness"]
    assert cls.shape == (25, 25) and ltrb.shape == (4, 25, 25) and ctr.shape == (25, 25)
    # cell (i=10, j=9) sits at pixel (31 + 72, 31 + 80) = (103, 111): inside the box
    assert cls[10, 9].item() == 1.0
    assert ltrb[:, 10, 9].tolist() == pytest.approx([3.0, 1.0, 57.0, 39.0])
    assert ctr[10, 9].item() == pytest.approx(math.sqrt(3 / 57 * 1 / 39), rel=1e-5)
    assert cls[0, 0].item() == 0.0 and ctr[0, 0].item() == 0.0
    xs = 31 + 8 * np.arange(25)
    n_in = ((xs > 100) & (xs < 160)).sum() * ((xs > 110) & (xs < 150)).sum()
    assert cls.sum().item() == n_in
    near = LB.build_label_generator({"name": "fcos", "size": 25, "stride": 8, "center_radius": 1.5})
    assert near(_ctx((100, 110, 60, 40), search_size=255))["label_cls"].sum().item() < n_in
    assert gen(_ctx((100, 110, 60, 40), search_size=255, positive=False))["label_cls"].sum().item() == 0


@pytest.mark.parametrize("criterion,k", [("center_distance", 9), ("iou", 15)])
def test_anchors_atss(criterion, k):
    gen = LB.build_label_generator({"name": "anchors_atss", "size": 25, "stride": 8, "topk": k,
                                    "criterion": criterion})
    box = (100.0, 90.0, 70.0, 50.0)
    out = gen(_ctx(box, search_size=255))
    cls, reg, iou = out["label_anchor_cls"], out["label_anchor_reg"], out["label_anchor_iou"]
    assert cls.shape == (5, 25, 25) and reg.shape == (4, 5, 25, 25) and iou.shape == (5, 25, 25)
    pos = cls > 0
    assert 1 <= pos.sum().item() <= k
    anc = torch.from_numpy(gen.anchors(255)).float()  # [A, F, F, 4] cx cy w h
    # decoding the regression targets of every anchor gives the ground truth back
    cx = anc[..., 0] + reg[0] * anc[..., 2]
    cy = anc[..., 1] + reg[1] * anc[..., 3]
    w = anc[..., 2] * torch.exp(reg[2])
    h = anc[..., 3] * torch.exp(reg[3])
    assert torch.allclose(cx, torch.full_like(cx, 135.0), atol=1e-3)
    assert torch.allclose(h, torch.full_like(h, 50.0), rtol=1e-4) and torch.allclose(w, torch.full_like(w, 70.0), rtol=1e-4)
    assert torch.allclose(cy, torch.full_like(cy, 115.0), atol=1e-3)
    # positives have their centre inside the box and high IoU
    assert ((anc[..., 0][pos] > 100) & (anc[..., 0][pos] < 170)).all()
    assert iou[pos].min() >= iou.flatten().topk(k).values.mean() - 1e-6
    # base anchors follow pysot: stride 8, ratio 0.33 -> w=int(sqrt(64/0.33))=13, h=int(13*0.33)=4, times scale 8
    assert LB.generate_anchors(8, [0.33], [8])[0].tolist() == [104.0, 32.0]
    assert gen(_ctx(box, search_size=255, positive=False))["label_anchor_cls"].sum().item() == 0


def test_position_labels():
    gen = LB.build_label_generator({"name": "position", "stride": 16})
    out = gen(_ctx((96, 96, 64, 64), (32, 32, 64, 64)))
    ab, pn = out["label_pos_abs"], out["label_pos_pn"]
    assert ab.dtype == torch.int64 and ab.shape == (64 + 256,) and pn.shape == (320,)
    tmpl = ab[:64].view(8, 8)
    # without jitter the template maps onto the central 8x8 search tokens (rows/cols 4..11)
    expected = torch.tensor([[r * 16 + c for c in range(4, 12)] for r in range(4, 12)])
    assert torch.equal(tmpl, expected)
    assert torch.equal(ab[64:], torch.arange(256))
    assert pn[:64].eq(1).all()
    sp = pn[64:].view(16, 16)
    assert sp[6:10, 6:10].eq(1).all() and sp.sum().item() == 16
    # shifted target in the search crop: the template maps onto the target area
    shifted = gen(_ctx((160, 32, 64, 64), (32, 32, 64, 64)))["label_pos_abs"][:64].view(8, 8)
    assert shifted[2, 2].item() == (0 + 2) * 16 + (8 + 2)
    # partly outside the search grid: those template tokens are ignored
    edge = gen(_ctx((192, 16, 64, 64), (32, 32, 64, 64)))["label_pos_abs"][:64].view(8, 8)
    assert edge[2, 2].item() == 1 * 16 + 12
    assert edge[0].eq(-100).all() and edge[:, 7].eq(-100).all() and edge[1, 5].item() == 15 and edge[:, 6].eq(-100).all()
    neg = gen(_ctx((96, 96, 64, 64), positive=False))
    assert neg["label_pos_abs"][:64].eq(-100).all() and neg["label_pos_pn"][64:].sum().item() == 0


def test_registry_errors_and_custom():
    with pytest.raises(ValueError, match=r"labels\[0\].name: unknown label generator 'nope'"):
        LB.build_label_generator({"name": "nope"}, "labels[0]")
    with pytest.raises(ValueError, match=r"labels.sigmaa: unknown parameter"):
        LB.build_label_generator({"name": "gaussian_heatmap", "sigmaa": 2})
    with pytest.raises(ValueError, match="prefix"):
        LB.build_label_generator({"name": "fcos", "prefix": "cls_"})

    @LB.register_label("test_const")
    class Const:
        def __init__(self, value=1.0):
            self.value = value

        def __call__(self, ctx):
            return {"label_const": torch.tensor(self.value)}

    assert "test_const" in LB.list_labels()
    assert LB.build_label_generator({"name": "test_const", "value": 2.0})(_ctx((0, 0, 4, 4)))["label_const"] == 2.0
