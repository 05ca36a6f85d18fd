"""`vtrack track` through vtrack.cli.main (no subprocess)."""
import cv2
import numpy as np
import pytest

from vtrack import cli
from vtrack.tracking.baselines import opencv_tracker_available


def _frames(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        img = np.full((40, 72, 3), 30, np.uint8)
        img[10:18, 2 + 3 * t : 10 + 3 * t] = 220
        cv2.imwrite(str(folder / f"{t}.png"), img)
    return folder


def test_track_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["track", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--init" in out and "VIDEO" in out


def test_track_folder_writes_video_and_boxes(tmp_path, capsys):
    src = _frames(tmp_path / "frames")
    out = tmp_path / "out.mp4"
    boxes = tmp_path / "boxes.txt"
    code = cli.main(["track", str(src), "--init", "2,10,8,8", "--out", str(out), "--boxes", str(boxes)])
    assert code == 0
    assert "tracked 6 frames" in capsys.readouterr().out
    lines = boxes.read_text().splitlines()
    assert len(lines) == 6 and lines[-1] == "2.00,10.00,8.00,8.00"
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (40, 72, 3)
    # a video file works as the source too
    code = cli.main(["track", str(out), "--init", "2,10,8,8", "--out", str(tmp_path / "again.mp4"), "--max-frames", "3"])
    assert code == 0 and "tracked 3 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--init", "1,2,3"], "argument --init: expected x,y,w,h"),
        (["--init", "1,2,0,4"], "positive width and height"),
        (["--init", "a,b,c,d"], "expected x,y,w,h"),
    ],
)
def test_track_bad_init_exits_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["track", str(tmp_path), "--out", str(tmp_path / "o.mp4")] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_track_runtime_errors_one_line(tmp_path, capsys):
    src = _frames(tmp_path / "frames", 2)
    cases = [
        ([str(tmp_path / "missing")], "not found"),
        ([str(src), "--tracker", "bogus"], "unknown tracker"),
        ([str(src), "--init", "500,10,8,8"], "outside"),
    ]
    if not opencv_tracker_available("csrt"):
        cases.append(([str(src), "--tracker", "csrt"], "opencv-contrib"))
    for extra, message in cases:
        argv = ["track"] + extra + ["--out", str(tmp_path / "o.mp4")]
        if "--init" not in extra:
            argv += ["--init", "2,10,8,8"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o.mp4").exists()
    assert cli.main(["track", str(src), "--init", "2,10,8,8", "--out", str(tmp_path / "o.avi")]) == 2
    assert ".mp4" in capsys.readouterr().err
