"""vtrack ablate: grids and experiment specs; the import rules that keep experiments out of the models."""
from pathlib import Path

import pytest

from vtrack.config import apply_overrides, override_strings
from vtrack.configs import CONFIG_DIR
from vtrack.experiments.ablate import grid_points, load_experiment, point_config, slug
from vtrack.models import get_family


def test_grid_is_the_cartesian_product_of_the_axes():
    pts = grid_points(["model.mode=ofc,dual", "tracker.score_voting=true,false"])
    assert list(pts) == ['model.mode="ofc",tracker.score_voting=true', 'model.mode="ofc",tracker.score_voting=false',
                         'model.mode="dual",tracker.score_voting=true', 'model.mode="dual",tracker.score_voting=false']
    assert pts['model.mode="dual",tracker.score_voting=false'] == {"model.mode": "dual", "tracker.score_voting": False}
    with pytest.raises(ValueError, match="--grid: expected key=v1,v2"):
        grid_points(["model.mode="])
    assert slug("dual+voting") == "dual_voting" and slug("language model, no caption at test") == "language_model_no_caption_at_test"


def test_a_tracker_config_with_a_grid_is_an_experiment():
    exp = load_experiment(CONFIG_DIR / "duml" / "duml_tiny.yaml", ["model.mode=ofc,onr"], steps=5)
    assert exp.steps == 5 and exp.protocols == ["ope"] and len(exp.points) == 2
    with pytest.raises(ValueError, match="points: expected at least one point"):
        load_experiment(CONFIG_DIR / "duml" / "duml_tiny.yaml")
    with pytest.raises(ValueError, match="protocols"):
        load_experiment(CONFIG_DIR / "duml" / "duml_tiny.yaml", ["model.mode=ofc"], protocols=["nope"])


@pytest.mark.parametrize("spec", sorted((CONFIG_DIR / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_experiments_give_valid_configs(spec: Path):
    exp = load_experiment(spec)
    assert exp.points
    for name, over in exp.points.items():
        cfg = point_config(exp, over)
        fam = get_family(cfg["model"]["name"])
        fam.parse_model(cfg["model"])  # every override names a real model option
        fam.processing_config(cfg)
        assert apply_overrides(cfg, override_strings(over)) == cfg, name


def test_markdown_table_has_every_protocol_column():
    from vtrack.experiments.ablate import to_markdown

    exp = load_experiment(CONFIG_DIR / "experiments" / "duml_modes.yaml")
    rows = {"static": {"vot": {"accuracy": 0.31, "robustness": 3.3, "failures": 5.0}, "got10k": {"ao": 0.208, "sr50": 0.2}},
            "ofc": {"got10k": {"ao": 0.052}}}
    md = to_markdown(rows, exp)
    assert "| tracker | vot accuracy | vot robustness | vot failures | vot eao | got10k ao | got10k sr50 |" in md
    assert "| static | 0.310 | 3.300 | 5.000 | - | 0.208 | 0.200 |" in md and "| ofc | - | - | - | - | 0.052 | - |" in md
