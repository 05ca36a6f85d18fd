"""Package foundation: compat shim, CLI table, family registry, tracker API checks."""
import numpy as np
import pytest

from vtrack import cli
from vtrack._compat import import_timm
from vtrack.models import registry
from vtrack.tracking import Tracker, TrackResult


def test_timm_imports_and_builds():
    timm = import_timm()
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    assert sum(p.numel() for p in m.parameters()) > 1_000_000


def test_cli_bad_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_registry_unknown_name():
    with pytest.raises(ValueError, match="unknown tracker family"):
        registry.get_family("definitely-not-a-tracker")


class _Fixed(Tracker):
    def _initialize(self, image, box, info):
        self.box = box

    def _track(self, image):
        return TrackResult(self.box, 1.0)


def test_tracker_api_validates():
    t = _Fixed()
    img = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(RuntimeError):
        t.track(img)
    with pytest.raises(ValueError, match="box"):
        t.initialize(img, (0, 0, 0, 5))
    with pytest.raises(TypeError, match="image"):
        t.initialize(img.astype(np.float32), (0, 0, 3, 5))
    t.initialize(img, (1, 2, 3, 4))
    assert t.track(img).box == (1.0, 2.0, 3.0, 4.0)


def test_cli_overrides_may_follow_options(monkeypatch):
    parser = cli.build_parser()
    seen = {}
    train = parser._subparsers._group_actions[0].choices["train"]
    train.set_defaults(func=lambda args: seen.update(vars(args)) or 0)  # record instead of training
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["train", "cfg.yaml", "a.b=1", "--max-steps", "3", "c.d=2"]) == 0
    assert seen["overrides"] == ["a.b=1", "c.d=2"] and seen["max_steps"] == 3
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "cfg.yaml", "--bogus"])
    assert exc.value.code == 2


def test_registry_lists_public_families_only():
    names = registry.list_families()
    assert {"ostrack", "esat", "sparsett", "duml", "vlt"} <= set(names)
    registry.register_family("_scratch_family")(_ScratchFamily)
    assert "_scratch_family" not in registry.list_families()
    assert "_scratch_family" in registry.list_families(include_private=True)


class _ScratchFamily(registry.FamilyBase):
    """A complete (if useless) family: every hook of the contract with its signature."""

    def parse_model(self, model_cfg):
        return dict(model_cfg)

    def build_model(self, model_cfg):
        raise NotImplementedError

    def build_criterion(self, cfg):
        raise NotImplementedError

    def processing_config(self, cfg):
        raise NotImplementedError

    def build_tracker(self, model, cfg, device):
        raise NotImplementedError


def test_registry_checks_the_family_contract():
    NoTracker = type("NoTracker", (registry.FamilyBase,),
                     {k: v for k, v in vars(_ScratchFamily).items() if k != "build_tracker"})
    with pytest.raises(TypeError, match=r"missing the hook\(s\) \['build_tracker'\]"):
        registry.register_family("_no_tracker")(NoTracker)

    class WrongSignature(_ScratchFamily):
        def build_tracker(self, model, cfg):  # no device
            raise NotImplementedError

    with pytest.raises(TypeError, match=r"build_tracker takes \['model', 'cfg'\]"):
        registry.register_family("_wrong_signature")(WrongSignature)
    with pytest.raises(TypeError, match="register the class, not an object"):
        registry.register_family("_instance")(_ScratchFamily())
    assert "_no_tracker" not in registry.list_families(include_private=True)


def test_every_builtin_family_implements_the_contract():
    for name in registry.list_families():
        fam = registry.get_family(name)
        assert isinstance(fam, registry.TrackerFamily) and fam.name == name
        assert registry.get_family(name) is fam  # one shared instance
        for variant, overrides in fam.variants().items():
            assert isinstance(variant, str) and all("." in key for key in overrides), (name, variant)


def test_cli_tracker_selection_is_one_set_of_arguments():
    """eval, track, vot, vot-setup and export take the tracker through cli.add_tracker_arguments."""
    sub = cli.build_parser()._subparsers._group_actions[0].choices
    expected = {"eval": {"--device", "--runtime", "--onnx-dir"}, "track": {"--device", "--runtime", "--onnx-dir"},
                "vot": {"--device", "--runtime", "--onnx-dir"}, "vot-setup": {"--device", "--runtime", "--onnx-dir"},
                "export": set()}
    helps = {}
    for name, extra in expected.items():
        actions = {opt: a for a in sub[name]._actions for opt in a.option_strings}
        for opt in {"--config", "--checkpoint"} | extra:
            helps.setdefault(opt, set()).add(actions[opt].help.replace(" (only with a single TRACKER)", ""))
        assert not ({"--device", "--runtime"} - extra) & set(actions), name
    assert all(len(texts) == 1 for texts in helps.values()), helps  # one text per option
    args = cli.build_parser().parse_args(["vot-setup", "a", "b", "--workspace", "w", "--runtime", "onnxruntime"])
    assert args.trackers == ["a", "b"] and args.device == "cpu" and args.config is None
    assert cli.build_parser().parse_args(["track", "v.mp4", "--init", "1,2,3,4", "--out", "o.mp4"]).tracker == "static"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["eval", "--dataset", "x", "--root", "r", "--out", "o"])  # --tracker required
    with pytest.raises(ValueError, match="form"):
        cli.add_tracker_arguments(cli.argparse.ArgumentParser(), tracker_help="x", form="flag")
