"""Issue 16 finding 3: a new `vtrack train` never destroys an earlier run in its --out-dir."""
from __future__ import annotations

import pytest
import torch

from vtrack import cli
from vtrack.train import trainer as T

from test_train_engine import data_root, setup, tiny_config  # noqa: F401 - fixtures


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_new_run_into_a_non_empty_out_dir_is_refused(setup, tmp_path):
    root, _ = setup
    out = tmp_path / "run"
    T.train(tiny_config(root, epochs=2), out_dir=out)
    before = {p.name: p.read_bytes() for p in out.glob("checkpoint_*.pth")}
    assert len(before) == 2
    with pytest.raises(ValueError, match=r"not empty.*--resume .*--overwrite"):
        T.train(tiny_config(root, epochs=2, lr=5e-3, keep_checkpoints=1), out_dir=out)
    assert {p.name: p.read_bytes() for p in out.glob("checkpoint_*.pth")} == before
    # an unrelated file also makes the folder non-empty
    other = tmp_path / "notes"
    other.mkdir()
    (other / "README").write_text("mine")
    with pytest.raises(ValueError, match="README"):
        T.train(tiny_config(root, epochs=1), out_dir=other)


def test_overwrite_replaces_the_previous_run(setup, tmp_path):
    root, _ = setup
    out = tmp_path / "run"
    T.train(tiny_config(root, epochs=2, checkpoint_steps=2), out_dir=out)
    assert "checkpoint_s00000002.pth" in _names(out)
    T.train(tiny_config(root, epochs=1), out_dir=out, overwrite=True)
    assert [n for n in _names(out) if n.startswith("checkpoint_")] == ["checkpoint_e0001.pth"]


def test_cli_train_names_overwrite_and_resume(setup, tmp_path, capsys):
    import yaml

    root, _ = setup
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(root, epochs=1)))
    out = tmp_path / "run"
    assert cli.main(["train", str(cfg_path), "--out-dir", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["train", str(cfg_path), "--out-dir", str(out)]) != 0
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" in err
    assert cli.main(["train", str(cfg_path), "--out-dir", str(out), "--overwrite"]) == 0


def test_pruning_touches_only_this_runs_checkpoints(setup, tmp_path):
    root, _ = setup
    cfg = tiny_config(root, epochs=2, checkpoint_steps=1, keep_checkpoints=2)
    out = tmp_path / "run"
    ck = T.train(cfg, out_dir=out, max_steps=3)  # 3 steps per epoch: s1, s2, e1 -> keeps s2, e1
    assert [n for n in _names(out) if n.startswith("checkpoint_")] == ["checkpoint_e0001.pth",
                                                                       "checkpoint_s00000002.pth"]
    foreign = out / "checkpoint_x_mine.pth"  # put there by hand: older than what the resume writes
    torch.save({"a": torch.ones(1)}, foreign)
    T.train(cfg, out_dir=out, resume=ck)
    names = [n for n in _names(out) if n.startswith("checkpoint_")]
    assert names == ["checkpoint_e0002.pth", "checkpoint_s00000005.pth", "checkpoint_x_mine.pth"]


def test_stale_temp_files_are_removed_on_start(setup, tmp_path):
    root, _ = setup
    out = tmp_path / "run"
    ck = T.train(tiny_config(root, epochs=2), out_dir=out, max_steps=2)
    stale = out / ".checkpoint_e0002.pth.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    T.train(tiny_config(root, epochs=2), out_dir=out, resume=ck)
    assert not list(out.glob("*.tmp"))


def _log_steps(folder):
    import csv

    with (folder / "log.csv").open(newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_resume_after_a_kill_logs_each_step_once(setup, tmp_path):
    root, _ = setup
    cfg = tiny_config(root, epochs=2, checkpoint_steps=1)
    ref = tmp_path / "ref"
    T.train(cfg, out_dir=ref)
    out = tmp_path / "run"
    ck = T.train(cfg, out_dir=out, max_steps=2)
    # the killed run had logged step 3 after its last checkpoint and was cut while writing step 4
    with (out / "log.csv").open("a") as fh:
        fh.write((ref / "log.csv").read_text().splitlines()[3] + "\n4,0.00")
    T.train(cfg, out_dir=out, resume=ck)
    assert _log_steps(out) == _log_steps(ref) == [1, 2, 3, 4, 5, 6]
    assert (out / "log.csv").read_text().endswith("\n")


def test_resume_prunes_what_a_killed_run_had_not_pruned(setup, tmp_path, monkeypatch):
    root, _ = setup
    cfg = tiny_config(root, epochs=2, checkpoint_steps=1, keep_checkpoints=2)
    written = T._RunCheckpoints.written

    def killed_after_the_last_checkpoint(self, name, keep):
        if name == "checkpoint_e0002.pth":
            raise SystemExit(137)  # the last checkpoint is on disk, its pruning never ran
        written(self, name, keep)

    monkeypatch.setattr(T._RunCheckpoints, "written", killed_after_the_last_checkpoint)
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        T.train(cfg, out_dir=out)
    assert len(list(out.glob("checkpoint_*.pth"))) == 3
    monkeypatch.setattr(T._RunCheckpoints, "written", written)
    T.train(cfg, out_dir=out, resume=out)
    assert [n for n in _names(out) if n.startswith("checkpoint_")] == ["checkpoint_e0002.pth",
                                                                       "checkpoint_s00000005.pth"]
