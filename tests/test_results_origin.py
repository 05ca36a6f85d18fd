"""Issue 16: results know their origin, runs never destroy runs, nothing overwrites an input,
paths from data stay data, files get the umask's permissions (each test failed before the fix)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vtrack.data
from vtrack import cli
from vtrack.eval.evaluate import evaluate_results
from vtrack.eval.runner import MANIFEST_FILE, build_manifest, run_tracker
from vtrack.io import (
    FolderLock,
    FolderLockedError,
    atomic_write_text,
    load_torch_file,
    refuse_overwrite_input,
    safe_name,
)
from vtrack.tracking import StaticTracker, Tracker, TrackResult

from test_eval_runner import OracleTracker, make_sequence
from test_zoo import checkpoint, data_root, zoo_root  # noqa: F401 - fixtures


class Named:
    """A picklable factory with a display name (what the runner records as the tracker)."""

    def __init__(self, cls, name):
        self.cls, self.name = cls, name

    def __call__(self) -> Tracker:
        return self.cls()


@pytest.fixture
def seqs(tmp_path):
    return [make_sequence(tmp_path / "data", "a", n=8), make_sequence(tmp_path / "data", "b", n=6, step=1)]


# ------------------------------------------------------------------ finding 1: origin, completeness
def test_other_tracker_into_same_folder_is_refused(tmp_path, seqs):
    out = tmp_path / "res" / "mix"
    run_tracker(Named(StaticTracker, "static"), seqs, out, progress=False)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["tracker"] == "static" and manifest["protocol"] == "ope" and manifest["dataset"] == "toy"
    assert set(manifest) >= {"config_sha256", "checkpoint_sha256", "zoo", "split", "vtrack_version"}
    with pytest.raises(ValueError, match="--overwrite"):
        run_tracker(Named(OracleTracker, "oracle"), seqs, out, progress=False)
    # the static results are untouched by the refused run
    assert json.loads((out / MANIFEST_FILE).read_text())["tracker"] == "static"
    # --overwrite replaces them: the oracle's scores are the oracle's (AUC of a perfect tracker)
    report = run_tracker(Named(OracleTracker, "oracle"), seqs, out, progress=False, overwrite=True)
    assert all(r["status"] == "done" for r in report.values())
    summary = evaluate_results(out, seqs, tracker="oracle")
    assert summary["scores"]["auc"] > 0.95
    assert json.loads((out / MANIFEST_FILE).read_text())["tracker"] == "oracle"


def test_same_origin_resumes_and_other_protocol_or_dataset_refused(tmp_path, seqs):
    out = tmp_path / "res"
    f = Named(StaticTracker, "static")
    run_tracker(f, seqs, out, progress=False)
    again = run_tracker(f, seqs, out, progress=False)
    assert {r["status"] for r in again.values()} == {"skipped"}
    other = build_manifest("static", protocol="ope", dataset="lasot")
    with pytest.raises(ValueError, match="dataset=lasot.*--overwrite"):
        run_tracker(f, seqs, out, progress=False, manifest=other)


def test_results_without_manifest_are_not_adopted(tmp_path, seqs):
    out = tmp_path / "res"
    out.mkdir()
    atomic_write_text(out / "a.txt", "1\t2\t3\t4\n" * 8)
    with pytest.raises(ValueError, match="unknown origin.*--overwrite"):
        run_tracker(Named(StaticTracker, "static"), seqs, out, progress=False)


@pytest.mark.parametrize("protocol", ["ope", "got10k", "vot"])
def test_truncated_result_file_is_not_finished(tmp_path, seqs, protocol):
    out = tmp_path / protocol
    f = Named(OracleTracker, "oracle")
    run_tracker(f, seqs, out, protocol=protocol, progress=False)
    files = {"ope": out / "a.txt", "got10k": out / "a" / "a_001.txt", "vot": out / "baseline" / "a" / "a_001.txt"}
    path = files[protocol]
    full = path.read_text()
    path.write_text("".join(full.splitlines(keepends=True)[:3]))  # cut by hand
    report = run_tracker(f, seqs, out, protocol=protocol, progress=False)
    assert report["a"]["status"] == "done" and report["b"]["status"] == "skipped"
    assert path.read_text() == full


def test_result_file_names_come_from_safe_sequence_names(tmp_path):
    seq = make_sequence(tmp_path / "data", "a", n=4)
    seq.name = "../escape"
    with pytest.raises(ValueError, match="sequence name"):
        run_tracker(Named(StaticTracker, "static"), [seq], tmp_path / "res", progress=False)
    assert not (tmp_path / "escape.txt").exists()


# ------------------------------------------------------------------ finding 2: one eval per folder
def test_second_process_is_refused_while_a_lock_is_held(tmp_path, seqs):
    out = tmp_path / "res"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from vtrack.io import FolderLock
            with FolderLock({str(out)!r}, "eval"):
                print("locked", flush=True)
                time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=f"pid {child.pid}"):
            run_tracker(Named(StaticTracker, "static"), seqs, out, progress=False)
    finally:
        child.kill()
        child.wait()
    # the dead holder's lock file is still there; it is taken over
    assert (out / ".vtrack-eval.lock").read_text().split()[0] == str(child.pid)
    run_tracker(Named(StaticTracker, "static"), seqs, out, progress=False)
    assert not (out / ".vtrack-eval.lock").exists()
    assert not list(out.rglob("*.tmp"))


def test_lock_is_reentrant_in_one_process(tmp_path):
    with FolderLock(tmp_path, "eval"):
        with FolderLock(tmp_path, "eval"):
            assert (tmp_path / ".vtrack-eval.lock").exists()
        assert (tmp_path / ".vtrack-eval.lock").exists()
    assert not (tmp_path / ".vtrack-eval.lock").exists()


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path, seqs):
    out = tmp_path / "res"
    out.mkdir()
    (out / ".a.txt.x1y2.tmp").write_text("half")
    run_tracker(Named(StaticTracker, "static"), seqs, out, progress=False)
    assert not list(out.rglob("*.tmp"))


# ------------------------------------------------------------------ eval CLI: --overwrite named
@pytest.fixture
def toy_dataset(seqs, monkeypatch):
    monkeypatch.setattr(vtrack.data, "load_dataset", lambda name, root, split=None: list(seqs), raising=False)
    return seqs


def test_eval_cli_refuses_another_origin_and_names_overwrite(tmp_path, toy_dataset, capsys):
    out = tmp_path / "res" / "mix"
    args = ["eval", "--dataset", "otb", "--root", str(tmp_path), "--out", str(out), "--no-progress"]
    assert cli.main(args + ["--tracker", "static"]) == 0
    capsys.readouterr()
    assert cli.main(args + ["--tracker", "static", "--protocol", "trackingnet"]) != 0
    err = capsys.readouterr().err
    assert "--overwrite" in err and "protocol=trackingnet" in err
    assert json.loads((out / "summary.json").read_text())["protocol"] == "ope"
    assert cli.main(args + ["--tracker", "static", "--protocol", "trackingnet", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["protocol"] == "trackingnet"
    assert not (out / "a_time.txt").read_text().count("\t")  # trackingnet files replaced the ope ones
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "a_time.txt", "b.txt", "b_time.txt",
                                                      "manifest.json", "summary.json"]


# ------------------------------------------------------------------ finding 4: inputs are never outputs
def test_track_refuses_out_equal_to_its_input(tmp_path, capsys):
    from vtrack.eval.reports import write_video

    video = tmp_path / "x.mp4"
    write_video(video, [np.full((32, 48, 3), 40, np.uint8)] * 3, fps=10)
    before = video.read_bytes()
    code = cli.main(["track", str(video), "--init", "4,4,8,8", "--out", str(tmp_path / "." / "x.mp4")])
    assert code != 0 and "--out" in capsys.readouterr().err
    assert video.read_bytes() == before
    code = cli.main(["track", str(video), "--init", "4,4,8,8", "--out", str(tmp_path / "y.mp4"),
                     "--boxes", str(video)])
    assert code != 0 and video.read_bytes() == before


def test_refuse_overwrite_input_follows_links(tmp_path):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"v")
    (tmp_path / "link.mp4").symlink_to(a)
    with pytest.raises(ValueError, match="--out: .*inputs"):
        refuse_overwrite_input(tmp_path / "link.mp4", [None, a])
    refuse_overwrite_input(tmp_path / "b.mp4", [a, None])


def test_report_refuses_out_equal_to_a_results_folder(tmp_path, seqs):
    out = tmp_path / "res"
    run_tracker(Named(StaticTracker, "static"), seqs, out, progress=False)
    evaluate_results(out, seqs, tracker="static")
    from vtrack.eval.reports import write_report

    with pytest.raises(ValueError, match="--out"):
        write_report([out], out)
    assert not (out / "report.md").exists()


# ------------------------------------------------------------------ finding 5: paths from data stay data
def test_report_file_names_from_dataset_strings_stay_inside_out(tmp_path, seqs):
    res = tmp_path / "a" / "b" / "res"
    run_tracker(Named(StaticTracker, "static"), seqs, res, progress=False)
    evaluate_results(res, seqs, tracker="static", dataset="../../x")
    from vtrack.eval.reports import write_report

    out = tmp_path / "a" / "b" / "report"
    write_report([res], out)
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*_ope_*.png")}
    assert written and all(p.parts[:3] == ("a", "b", "report") for p in written)
    assert not list(tmp_path.glob("x_*"))


def test_safe_name():
    for bad in ("../../x", "/etc/passwd", "a/b", ".hidden", "a\\b", "a..b"):
        name = safe_name(bad)
        assert "/" not in name and "\\" not in name and not name.startswith(".") and ".." not in name
    assert safe_name("got10k-val") == "got10k-val"
    for bad in ("///", "..", ""):
        with pytest.raises(ValueError, match="dataset"):
            safe_name(bad, what="dataset")


@pytest.mark.parametrize("entry", ["../outside", "/abs/path", "a/../../b", "..\\win"])
def test_list_entries_that_leave_the_dataset_root_are_refused(tmp_path, entry):
    from vtrack.data._io import AnnotationError, read_list

    p = tmp_path / "list.txt"
    p.write_text(f"ok\n{entry}\n")
    with pytest.raises(AnnotationError, match=r"list.txt:2: .*leaves the dataset folder"):
        read_list(p)


def test_got10k_list_with_dotdot_is_refused(tmp_path):
    from data_fakes import box_lines, write_frames, write_text

    from vtrack.data import load_dataset

    split = tmp_path / "val"
    outside = tmp_path / "secret"
    write_frames(outside, [f"{i:08d}.jpg" for i in range(1, 4)])
    write_text(outside / "groundtruth.txt", box_lines(3))
    write_text(split / "list.txt", "../secret\n")
    with pytest.raises(ValueError, match="leaves the dataset folder"):
        load_dataset("got10k", tmp_path, "val")


# ------------------------------------------------------------------ finding 8: umask permissions
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_get_the_umask_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        p = atomic_write_text(tmp_path / "x.txt", "hi\n")
        ref = tmp_path / "ref.txt"
        ref.write_text("hi\n")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == (ref.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_checkpoints_and_plots_get_the_umask_permissions(tmp_path, seqs):
    import torch

    from vtrack.eval.reports import write_report
    from vtrack.train.trainer import save_checkpoint

    old = os.umask(0o022)
    try:
        ck = save_checkpoint(tmp_path / "c.pth", {"a": torch.ones(1)})
        res = tmp_path / "res"
        run_tracker(Named(StaticTracker, "static"), seqs, res, progress=False)
        evaluate_results(res, seqs, tracker="static")
        write_report([res], tmp_path / "rep")
    finally:
        os.umask(old)
    files = [ck, *res.iterdir(), *(tmp_path / "rep").iterdir()]
    assert files and all((f.stat().st_mode & 0o777) == 0o644 for f in files), [
        (f.name, oct(f.stat().st_mode & 0o777)) for f in files]


# ------------------------------------------------------------------ finding 7: checkpoint errors
def test_checkpoint_errors_say_what_is_wrong(tmp_path):
    rnd = tmp_path / "random.pth"
    rnd.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError) as err:
        load_torch_file(rnd)
    assert "weights_only=False" not in str(err.value) and "not a PyTorch file" in str(err.value)
    with pytest.raises(ValueError, match="is a directory"):
        load_torch_file(tmp_path)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty \(0 bytes\)"):
        load_torch_file(empty)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_torch_file(tmp_path / "missing.pth")


class Evil:
    """Any class: unpickling it would import and run code."""


def test_checkpoint_with_code_is_refused_without_suggesting_unsafe_load(tmp_path):
    import torch

    p = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, p)
    with pytest.raises(ValueError) as err:
        load_torch_file(p)
    msg = str(err.value)
    assert "weights_only=False" not in msg and "never runs code" in msg


def test_tracker_loader_uses_the_checkpoint_messages(tmp_path):
    from vtrack.tracking.loader import load_model_weights

    with pytest.raises(ValueError, match="is a directory"):
        load_model_weights(torch_module(), tmp_path)


def torch_module():
    import torch

    return torch.nn.Linear(2, 2)


# ------------------------------------------------------------------ finding 7: family mismatch
def test_tracker_family_name_must_match_the_config(tmp_path):
    from vtrack.tracking import build_tracker

    cfg = {"model": {"name": "ostrack"}, "tracker": {}}
    with pytest.raises(ValueError, match="'sparsett' names a tracker family.*model.name is 'ostrack'"):
        build_tracker("sparsett", config=cfg, checkpoint=tmp_path / "x.pth")


# ------------------------------------------------------------------ zoo trackers: the zoo name is the origin
def test_eval_by_zoo_name_records_the_zoo_entry(zoo_root, data_root, tmp_path, capsys):
    from vtrack import zoo

    out = tmp_path / "res"
    rc = cli.main(["eval", "--tracker", "tiny_zoo", "--dataset", "synthetic", "--root", str(data_root),
                   "--split", "val", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["zoo"] == "tiny_zoo" and manifest["checkpoint_sha256"] == zoo.get_entry("tiny_zoo").sha256
    assert manifest["dataset"] == "synthetic" and manifest["split"] == "val" and manifest["protocol"] == "got10k"
