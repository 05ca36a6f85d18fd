"""GOT-10k reader: list.txt, labels, meta_info.ini, test split with the first box only, errors."""
import numpy as np
import pytest

from data_fakes import box_lines, write_frames, write_text
from vtrack.data import AnnotationError, load_dataset


def _seq(root, split, name, n=4, gt=None, labels=True):
    d = root / split / name
    write_frames(d, [f"{i:08d}.jpg" for i in range(1, n + 1)])
    write_text(d / "groundtruth.txt", gt if gt is not None else box_lines(n))
    if labels:
        write_text(d / "absence.label", "0\n0\n1\n0\n"[: 2 * n])
        write_text(d / "cover.label", "8\n5\n0\n3\n"[: 2 * n])
        write_text(d / "cut_by_image.label", "0\n1\n0\n0\n"[: 2 * n])
        write_text(d / "meta_info.ini", "[METAINFO]\nobject_class: dove\nresolution: (32, 24)\n")
    return d


def test_train_and_test_splits(tmp_path):
    _seq(tmp_path, "train", "GOT-10k_Train_000001")
    write_text(tmp_path / "train" / "list.txt", "GOT-10k_Train_000001\n")
    _seq(tmp_path, "test", "GOT-10k_Test_000001", labels=False)
    write_text(tmp_path / "test" / "list.txt", "GOT-10k_Test_000001\n")
    (s,) = load_dataset("got10k", tmp_path, "train")
    assert s.name == "GOT-10k_Train_000001" and len(s) == 4
    np.testing.assert_array_equal(s.boxes[1], [2, 3, 5, 6])
    assert list(s.valid) == [True, True, False, True]  # absent frame 3 is not scored
    assert list(s.attributes["cover"]) == [8, 5, 0, 3]
    assert s.attributes["resolution"] == (32, 24) and s.attributes["meta"]["object_class"] == "dove"
    (t,) = load_dataset("got10k", tmp_path, "test")
    assert t.valid[0] and not t.valid[1:].any() and np.isnan(t.boxes[1:]).all()
    assert t.attributes["first_frame_only"]


def test_errors_name_file_and_line(tmp_path):
    _seq(tmp_path, "val", "a", gt="1,2,3,4\n1,2,x,4\n1,2,3,4\n1,2,3,4\n")
    write_text(tmp_path / "val" / "list.txt", "a\n")
    with pytest.raises(AnnotationError, match=r"groundtruth.txt:2"):
        load_dataset("got10k", tmp_path, "val")
    write_text(tmp_path / "val" / "list.txt", "a\nmissing\n")
    with pytest.raises(AnnotationError, match=r"list.txt:2"):
        load_dataset("got10k", tmp_path, "val")
    with pytest.raises(ValueError, match="split"):
        load_dataset("got10k", tmp_path, "bogus")
    with pytest.raises(FileNotFoundError, match="root"):
        load_dataset("got10k", tmp_path / "nope", "val")
    with pytest.raises(ValueError, match="name"):
        load_dataset("imagenet", tmp_path, "val")


def test_box_count_mismatch_and_undecodable_frame(tmp_path):
    _seq(tmp_path, "val", "a", gt=box_lines(3))
    write_text(tmp_path / "val" / "list.txt", "a\n")
    with pytest.raises(AnnotationError, match="3 boxes"):
        load_dataset("got10k", tmp_path, "val")
    _seq(tmp_path, "val", "a")
    (tmp_path / "val" / "a" / "00000002.jpg").write_bytes(b"not a jpeg")
    (s,) = load_dataset("got10k", tmp_path, "val")
    s.frame(0)
    with pytest.raises(IOError, match="00000002.jpg"):
        s.frame(1)
