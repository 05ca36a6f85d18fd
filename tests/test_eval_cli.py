"""`vtrack eval` and `vtrack report` through vtrack.cli.main (no subprocess)."""
import json

import pytest

import vtrack.data
from vtrack import cli
from vtrack.tracking.baselines import opencv_tracker_available

from test_eval_runner import make_sequence


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    """Replace the dataset readers with two toy sequences (the readers have their own tests)."""
    seqs = [
        make_sequence(tmp_path / "data", "a", n=8, attributes={"motion": "fast"}),
        make_sequence(tmp_path / "data", "b", n=6, step=1, attributes={"motion": "slow"}),
    ]
    calls = []

    def fake_load(name, root, split=None):
        calls.append((name, str(root), split))
        return list(seqs)

    monkeypatch.setattr(vtrack.data, "load_dataset", fake_load, raising=False)
    return seqs, calls


@pytest.mark.parametrize("command", ["eval", "report"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_eval_then_report(tmp_path, toy_dataset, capsys):
    seqs, calls = toy_dataset
    out = tmp_path / "res" / "static"
    argv = ["eval", "--tracker", "static", "--dataset", "lasot", "--root", str(tmp_path), "--split", "test",
            "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| static |" in printed and "AUC" in printed
    assert calls == [("lasot", str(tmp_path), "test")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "ope" and summary["dataset"] == "lasot-test"
    assert (out / "a.txt").is_file() and (out / "b_time.txt").is_file()

    got = tmp_path / "res" / "static_got"
    assert cli.main(["eval", "--tracker", "static", "--dataset", "got10k", "--root", str(tmp_path),
                     "--out", str(got), "--no-progress", "--sequences", "b"]) == 0
    assert (got / "b" / "b_001.txt").is_file() and not (got / "a").exists()
    assert json.loads((got / "summary.json").read_text())["protocol"] == "got10k"

    rep = tmp_path / "report"
    assert cli.main(["report", str(out), str(got), "--out", str(rep)]) == 0
    text = (rep / "report.md").read_text()
    assert "## lasot-test (ope)" in text and "## got10k (got10k)" in text
    assert (rep / "lasot-test_ope_success.png").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--protocol", "otb"], "argument --protocol: invalid choice"),
        (["--workers", "0"], "argument --workers: expected a positive integer"),
        (["--eao-interval", "5"], "argument --eao-interval"),
    ],
)
def test_eval_bad_arguments_exit_2(tmp_path, capsys, extra, message):
    argv = ["eval", "--tracker", "static", "--dataset", "otb", "--root", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv + extra)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_eval_runtime_errors_one_line(tmp_path, toy_dataset, capsys):
    base = ["eval", "--dataset", "otb", "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"]
    cases = [
        (["--tracker", "bogus"], "unknown tracker"),
        (["--tracker", "x", "--config", str(tmp_path / "none.yaml")], "--config: file not found"),
        (["--tracker", "static", "--sequences", "zz"], "unknown sequence"),
    ]
    if not opencv_tracker_available("kcf"):
        cases.append((["--tracker", "kcf"], "opencv-contrib"))
    for extra, message in cases:
        assert cli.main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_report_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "summary.json" in capsys.readouterr().err


def test_eval_test_split_without_ground_truth(tmp_path, toy_dataset, capsys):
    seqs, _ = toy_dataset
    for s in seqs:
        s.attributes["first_frame_only"] = True
    out = tmp_path / "sub"
    argv = ["eval", "--tracker", "static", "--dataset", "got10k", "--root", str(tmp_path), "--out", str(out),
            "--no-progress"]
    assert cli.main(argv) == 0
    assert "submit it to the benchmark's server" in capsys.readouterr().out
    assert (out / "a" / "a_001.txt").is_file() and not (out / "summary.json").exists()


def test_eval_trained_tracker_from_config_and_checkpoint(tmp_path, toy_dataset, capsys):
    from test_tracking_baselines import _trained  # registers the tiny test family

    cfg, ckpt = _trained(tmp_path)
    out = tmp_path / "tiny"
    base = ["eval", "--tracker", "tiny", "--config", str(cfg), "--dataset", "otb", "--root", str(tmp_path),
            "--out", str(out), "--no-progress"]
    assert cli.main(base) == 2 and "--checkpoint" in capsys.readouterr().err
    assert cli.main(base + ["--checkpoint", str(ckpt)]) == 0
    assert "| tiny |" in capsys.readouterr().out
    # the tiny tracker shifts the box by 2.5 px per frame (weights loaded from the checkpoint)
    first = (out / "a.txt").read_text().splitlines()[1].split("\t")
    assert float(first[0]) == pytest.approx(2 + 2.5)
