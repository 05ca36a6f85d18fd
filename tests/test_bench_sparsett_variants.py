"""benchmarks/sparsett_loop_variants.py (issue 15): its variants parse strictly, and the box rules do
what docs/deploy.md says (argmax: the release's box; nbhd: a pscore-weighted mean of the 3x3 cells
around the best cell; soft: a softmax-weighted mean that tends to argmax as tau -> 0)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_sparsett_variants", ROOT / "benchmarks" / "sparsett_loop_variants.py")
V = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = V
_spec.loader.exec_module(V)


def test_parse_variant_types_and_errors():
    assert V.parse_variant("refine=nbhd,update.size_lr=0.5,pos_lr=1") == {"refine": "nbhd", "update.size_lr": 0.5,
                                                                          "pos_lr": 1.0}
    assert V.parse_variant("") == {}
    assert V.parse_variant("crop.align=pixel") == {"crop.align": "pixel"}
    with pytest.raises(ValueError, match="refine"):
        V.parse_variant("refine=median")
    with pytest.raises(ValueError, match="key=value"):
        V.parse_variant("refine")
    with pytest.raises(ValueError):
        V.parse_variant("pos_lr=fast")


def _map(side: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pscore = rng.uniform(0.0, 0.5, side * side)
    cand = rng.uniform(10.0, 50.0, (side * side, 4))
    return pscore, cand


def test_argmax_is_the_best_cell():
    pscore, cand = _map()
    best = int(np.argmax(pscore))
    assert np.array_equal(V.peak_box(pscore, cand, best, "argmax", 0.05), cand[best])


def test_nbhd_weights_the_3x3_cells_around_the_best():
    pscore, cand = _map()
    pscore[2 * 5 + 3] = 1.0  # best cell (row 2, col 3)
    idx = [r * 5 + c for r in (1, 2, 3) for c in (2, 3, 4)]
    w = pscore[idx]
    expected = (w[:, None] * cand[idx]).sum(0) / w.sum()
    assert np.allclose(V.peak_box(pscore, cand, 13, "nbhd", 0.05), expected)
    pscore[0] = 2.0  # a corner cell: its neighbourhood is clipped to the map (4 cells)
    idx = [0, 1, 5, 6]
    w = pscore[idx]
    assert np.allclose(V.peak_box(pscore, cand, 0, "nbhd", 0.05), (w[:, None] * cand[idx]).sum(0) / w.sum())


def test_soft_tends_to_argmax_and_is_continuous():
    pscore, cand = _map()
    best = int(np.argmax(pscore))
    assert np.allclose(V.peak_box(pscore, cand, best, "soft", 1e-6), cand[best])
    wide = V.peak_box(pscore, cand, best, "soft", 1e6)
    assert np.allclose(wide, cand.mean(0))  # infinite temperature: the plain mean
    # swapping which of two near-tied cells is the argmax moves the soft box by a tiny amount only
    second = int(np.argsort(pscore)[-2])
    pscore[second] = pscore[best] - 1e-9
    p2 = pscore.copy()
    p2[second] = pscore[best] + 1e-9
    assert np.abs(V.peak_box(p2, cand, second, "soft", 0.05) - V.peak_box(pscore, cand, best, "soft", 0.05)).max() < 1e-6


def test_topk_keep_ties_to_lower_index_and_rounding():
    x = np.array([[1.0, 3.0, 2.0, 3.0, 0.5]])
    assert V.topk_keep(x, 2).tolist() == [[False, True, False, True, False]]
    assert V.topk_keep(x, 1).tolist() == [[False, True, False, False, False]]  # tie: the lower index
    # rounded to 1.5: 1.0 -> 0, 3.0 -> 3.0, 2.0 -> 1.5; the 3-way pick among (0, 3, 1.5, 3, 0) keeps 1, 3, 2
    assert V.topk_keep(x, 3, 1.5).tolist() == [[False, True, True, True, False]]


def test_rounding_logits_does_not_prevent_topk_flips():
    rates = V.topk_flip_rates(2e-3, (0.0, 1e-2), rows=3000)
    assert rates[0.0] > 0 and rates[1e-2] > 0  # both selections flip on some rows
    assert rates[1e-2] > 0.3 * rates[0.0]  # rounding does not make flips rare
