"""The shared state update: bounded, smoothed size and the lost-target search growth."""
import math

import numpy as np
import pytest
import torch

from vtrack.tracking.postprocess import StateUpdateConfig, TrackState, blend_window, update_state


def test_defaults_reproduce_the_raw_prediction():
    state = TrackState.start([50, 50, 20, 10])
    new = update_state(state, [60, 40, 30, 12], 0.3, StateUpdateConfig(), (200, 100))
    np.testing.assert_allclose(new.box, [60, 40, 30, 12])


def test_size_follows_with_confidence_scaled_rate():
    cfg = StateUpdateConfig(size_lr=0.5, size_lr_by_score=True)
    state = TrackState.start([50, 50, 20, 20])
    new = update_state(state, [50, 50, 40, 40], 1.0, cfg, (200, 200))
    # lr = 0.5 * 1.0: size halfway, centre from the prediction (70, 70)
    np.testing.assert_allclose(new.box, [70 - 15, 70 - 15, 30, 30])
    low = update_state(state, [50, 50, 40, 40], 0.2, cfg, (200, 200))
    assert low.box[2] == pytest.approx(20 * 0.9 + 40 * 0.1)


def test_scale_step_and_size_bounds():
    cfg = StateUpdateConfig(max_scale_step=1.25, min_size_ratio=0.5, max_size_ratio=2.0)
    state = TrackState.start([100, 100, 40, 40])
    shrunk = update_state(state, [118, 118, 4, 4], 1.0, cfg, (400, 400))
    assert shrunk.box[2] == pytest.approx(32.0)  # 40 / 1.25, not 4
    for _ in range(10):
        shrunk = update_state(shrunk, [118, 118, 4, 4], 1.0, cfg, (400, 400))
    assert shrunk.box[2] == pytest.approx(20.0)  # floor: 0.5 x the initial 40
    grown = state
    for _ in range(10):
        grown = update_state(grown, [0, 0, 300, 300], 1.0, cfg, (400, 400))
    assert grown.box[2] == pytest.approx(80.0)


def test_lost_target_keeps_box_and_grows_search():
    cfg = StateUpdateConfig(lost_threshold=0.3, lost_search_growth=1.5, max_search_growth=2.0)
    state = TrackState.start([10, 10, 20, 20])
    lost = update_state(state, [100, 100, 5, 5], 0.1, cfg, (200, 200))
    np.testing.assert_allclose(lost.box, state.box)
    assert lost.lost_frames == 1 and lost.search_growth(cfg) == pytest.approx(1.5)
    lost = update_state(lost, [100, 100, 5, 5], 0.1, cfg, (200, 200))
    assert lost.search_growth(cfg) == pytest.approx(2.0)  # capped
    found = update_state(lost, [100, 100, 20, 20], 0.9, cfg, (200, 200))
    assert found.lost_frames == 0 and found.search_growth(cfg) == 1.0
    np.testing.assert_allclose(found.box, [100, 100, 20, 20])


def test_box_stays_in_image_with_minimum_size():
    state = TrackState.start([10, 10, 20, 20])
    new = update_state(state, [-50, -50, 2, 2], 1.0, StateUpdateConfig(), (100, 80))
    assert new.box[0] >= 0 and new.box[1] >= 0 and new.box[2] >= 10 and new.box[3] >= 10


def test_blend_window():
    score = torch.full((1, 1, 3, 3), 0.5)
    window = torch.zeros(1, 1, 3, 3)
    assert torch.equal(blend_window(score, window, 1.0), torch.zeros_like(score))
    assert torch.equal(blend_window(score, window, 0.0), score)
    with pytest.raises(ValueError, match="window_influence"):
        blend_window(score, window, 1.5)


@pytest.mark.parametrize("field,value", [("size_lr", 1.5), ("max_scale_step", 0.5), ("min_size_ratio", -0.1),
                                         ("max_size_ratio", 0.5), ("lost_threshold", 2.0), ("lost_search_growth", 0.9),
                                         ("max_search_growth", math.nan)])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"update.{field}"):
        StateUpdateConfig(**{field: value})


def test_bad_prediction_is_refused():
    state = TrackState.start([10, 10, 20, 20])
    with pytest.raises(ValueError, match="predicted"):
        update_state(state, [1, 2, float("nan"), 3], 0.5, StateUpdateConfig(), (100, 100))
    with pytest.raises(ValueError, match="score"):
        update_state(state, [1, 2, 3, 3], float("nan"), StateUpdateConfig(), (100, 100))
