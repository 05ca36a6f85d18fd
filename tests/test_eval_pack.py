"""`vtrack pack`: the GOT-10k and TrackingNet server zips, read back, and the refusals."""
import os
import zipfile

import cv2
import numpy as np
import pytest

from vtrack import cli
from vtrack.eval.pack import IncompleteResultsError, pack_results

N_FRAMES = 5


def _frames(folder, names):
    folder.mkdir(parents=True)
    for k, name in enumerate(names):
        img = np.full((40, 64, 3), 30, np.uint8)
        img[10:20, 4 + 3 * k : 14 + 3 * k] = 220
        cv2.imwrite(str(folder / name), img)


def _got10k_test(root):
    """A GOT-10k test split: list.txt, frames 00000001.jpg.., the first box only."""
    names = ["GOT-10k_Test_000001", "GOT-10k_Test_000002"]
    split = root / "test"
    for name in names:
        _frames(split / name, [f"{t + 1:08d}.jpg" for t in range(N_FRAMES)])
        (split / name / "groundtruth.txt").write_text("4,10,10,10\n")
    (split / "list.txt").write_text("\n".join(names) + "\n")
    return names


def _trackingnet_test(root):
    """A TrackingNet TEST chunk: frames/<seq>/0.jpg.. and anno/<seq>.txt with the first box."""
    names = ["-3TIfnTSM6c_2", "a1qoB1eERn0_0"]
    for name in names:
        _frames(root / "TEST" / "frames" / name, [f"{t}.jpg" for t in range(N_FRAMES)])
        (root / "TEST" / "anno").mkdir(parents=True, exist_ok=True)
        (root / "TEST" / "anno" / f"{name}.txt").write_text("4,10,10,10\n")
    return names


def _eval(dataset, root, out):
    argv = ["eval", "--tracker", "static", "--dataset", dataset, "--root", str(root), "--split", "test",
            "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0


def _rows(data: bytes) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in data.decode().splitlines() if line.strip()])


def test_pack_got10k_test_layout(tmp_path, capsys):
    names = _got10k_test(tmp_path / "GOT-10k")
    res = tmp_path / "res"
    _eval("got10k", tmp_path / "GOT-10k", res)
    assert "vtrack pack" in capsys.readouterr().out
    out = tmp_path / "sub" / "static.zip"
    argv = ["pack", "--format", "got10k-test", str(res), "--root", str(tmp_path / "GOT-10k"), "--out", str(out)]
    assert cli.main(argv) == 0
    assert "packed 2 sequences (4 files" in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [f"{n}/{n}{suffix}" for n in names for suffix in ("_001.txt", "_time.txt")]
        for n in names:
            boxes = _rows(zf.read(f"{n}/{n}_001.txt"))
            assert boxes.shape == (N_FRAMES, 4) and boxes[0].tolist() == [4, 10, 10, 10]
            times = [float(v) for v in zf.read(f"{n}/{n}_time.txt").split()]
            assert len(times) == N_FRAMES and min(times) >= 0
            assert zf.read(f"{n}/{n}_001.txt") == (res / n / f"{n}_001.txt").read_bytes()
    first = out.read_bytes()
    assert cli.main(argv) == 2  # the zip exists
    assert "exists" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite"]) == 0
    assert out.read_bytes() == first  # same results, same bytes
    assert sorted(p.name for p in out.parent.iterdir()) == ["static.zip"]  # no temporary file left


def test_pack_trackingnet_layout(tmp_path, capsys):
    names = _trackingnet_test(tmp_path / "TN")
    res = tmp_path / "res"
    _eval("trackingnet", tmp_path / "TN", res)
    assert (res / f"{names[0]}_time.txt").is_file()
    out = tmp_path / "tn.zip"
    assert cli.main(["pack", "--format", "trackingnet", str(res), "--root", str(tmp_path / "TN"), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == sorted(f"{n}.txt" for n in names)  # no time files, no folders
        for n in names:
            assert _rows(zf.read(f"{n}.txt")).shape == (N_FRAMES, 4)


def test_pack_refuses_incomplete_results_listing_every_problem(tmp_path, capsys):
    names = _got10k_test(tmp_path / "GOT-10k")
    res = tmp_path / "res"
    _eval("got10k", tmp_path / "GOT-10k", res)
    (res / names[0] / f"{names[0]}_time.txt").unlink()
    boxes = res / names[1] / f"{names[1]}_001.txt"
    boxes.write_text("".join(boxes.read_text().splitlines(keepends=True)[:-1]))  # one row short
    out = tmp_path / "x.zip"
    argv = ["pack", "--format", "got10k-test", str(res), "--root", str(tmp_path / "GOT-10k"), "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and f"{names[0]}: missing" in err and f"{names[0]}_time.txt" in err
    assert f"{names[1]}_001.txt: {N_FRAMES - 1} boxes for {N_FRAMES} frames" in err
    assert not out.exists() and not list(tmp_path.glob(".x.zip*"))
    # a whole sequence missing, and a malformed row
    sequences = {names[1]: None, "GOT-10k_Test_000009": N_FRAMES}
    boxes.write_text("1,2,3\n")
    with pytest.raises(IncompleteResultsError) as info:
        pack_results(res, out, fmt="got10k-test", sequences=sequences)
    assert len(info.value.problems) == 3
    assert "not 4 comma-separated finite numbers" in info.value.problems[0]
    assert "GOT-10k_Test_000009: missing" in info.value.problems[1]


def test_pack_refuses_an_output_that_is_an_input(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    (res / "a.txt").write_text("1,2,3,4\n")
    with pytest.raises(ValueError, match="one of this command's inputs"):
        pack_results(res, res / "a.txt", fmt="trackingnet", sequences={"a": 1}, overwrite=True)
    os.link(res / "a.txt", tmp_path / "hard.zip")  # another name of an input file is that input
    with pytest.raises(ValueError, match=r"out: .*hard\.zip is one of this command's inputs"):
        pack_results(res, tmp_path / "hard.zip", fmt="trackingnet", sequences={"a": 1}, overwrite=True)
    assert (res / "a.txt").read_text() == "1,2,3,4\n"
    (res / "b.zip").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        pack_results(res, res / "b.zip", fmt="trackingnet", sequences={"a": 1})
    with pytest.raises(ValueError, match=r"\.zip"):
        pack_results(res, tmp_path / "a.tar", fmt="trackingnet", sequences={"a": 1})
    with pytest.raises(ValueError, match="fmt"):
        pack_results(res, tmp_path / "a.zip", fmt="got10k", sequences={"a": 1})
    with pytest.raises(ValueError, match="plain sequence names"):
        pack_results(res, tmp_path / "a.zip", fmt="trackingnet", sequences={"../a": 1})
    assert pack_results(res, tmp_path / "a.zip", fmt="trackingnet", sequences={"a": 1})["files"] == ["a.txt"]
