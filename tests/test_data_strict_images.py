"""Issue 16 finding 7: a JPEG cut short or an undecodable frame is an error naming the file."""
import cv2
import numpy as np
import pytest

from vtrack.data._io import read_image
from vtrack.data.sequence import Sequence
from vtrack.tracking.video import iter_frames


def _jpeg(path, seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return img


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    p = tmp_path / "00000001.jpg"
    _jpeg(p)
    data = p.read_bytes()
    assert read_image(p).shape == (120, 160, 3)
    p.write_bytes(data[: int(len(data) * 0.6)])
    assert cv2.imread(str(p)) is not None  # OpenCV alone decodes it silently
    with pytest.raises(OSError, match="truncated.*00000001.jpg"):
        read_image(p)
    seq = Sequence("s", [str(p)], np.array([[1.0, 1, 5, 5]]))
    with pytest.raises(OSError, match="s: frame 0: JPEG file is truncated.*00000001.jpg"):
        seq.frame(0)
    with pytest.raises(OSError, match="video: .*truncated"):
        list(iter_frames(tmp_path))


def test_jpeg_with_trailer_after_eoi_still_reads(tmp_path):
    p = tmp_path / "a.jpg"
    _jpeg(p)
    ref = read_image(p)
    p.write_bytes(p.read_bytes() + b"\x00" * 16 + b"camera trailer")
    np.testing.assert_array_equal(read_image(p), ref)


def test_undecodable_empty_and_missing_images(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xda garbage \xff\xd9")
    with pytest.raises(OSError, match="could not be decoded.*bad.jpg"):
        read_image(bad)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(OSError, match="empty.*empty.png"):
        read_image(empty)
    with pytest.raises(FileNotFoundError, match="missing.*nope.jpg"):
        read_image(tmp_path / "nope.jpg")
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.zeros((8, 8, 3), np.uint8))
    png.write_bytes(png.read_bytes()[:-20])
    with pytest.raises(OSError, match="PNG file is truncated.*x.png"):
        read_image(png)
