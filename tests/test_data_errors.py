"""Error paths of the benchmark readers: missing and malformed files are named, never skipped."""
import pytest

from data_fakes import box_lines, write_frames, write_text
from vtrack.data import AnnotationError, load_dataset


def test_trackingnet_malformed_and_missing_anno(tmp_path):
    tr = tmp_path / "TRAIN_0"
    write_frames(tr / "frames" / "seqA", [f"{i}.jpg" for i in range(3)])
    write_text(tr / "anno" / "seqA.txt", "1,2,3,4\n1,2,3\n1,2,3,4\n")
    with pytest.raises(AnnotationError, match=r"seqA.txt:2: expected 4 numbers"):
        load_dataset("trackingnet", tmp_path, "train")
    (tr / "anno" / "seqA.txt").unlink()
    with pytest.raises(FileNotFoundError, match="seqA.txt"):
        load_dataset("trackingnet", tmp_path, "train")


def test_otb_row_count_must_match_frame_range(tmp_path):
    write_frames(tmp_path / "David" / "img", [f"{i:04d}.jpg" for i in range(1, 771)], size=(4, 4))
    write_text(tmp_path / "David" / "groundtruth_rect.txt", box_lines(470))  # 300..770 needs 471 rows
    with pytest.raises(ValueError, match="groundtruth_rect.txt"):
        load_dataset("otb", tmp_path)


def test_otb_bad_separator_token_names_line(tmp_path):
    write_frames(tmp_path / "Car4" / "img", [f"{i:04d}.jpg" for i in range(1, 3)])
    write_text(tmp_path / "Car4" / "groundtruth_rect.txt", "1 2 3 4\n1 2 three 4\n")
    with pytest.raises(AnnotationError, match=r"groundtruth_rect.txt:2"):
        load_dataset("otb", tmp_path)


def test_lasot_nlp_missing_is_named(tmp_path):
    d = tmp_path / "cat" / "cat-1"
    write_frames(d / "img", [f"{i:08d}.jpg" for i in range(1, 3)])
    write_text(d / "groundtruth.txt", box_lines(2))
    write_text(d / "full_occlusion.txt", "0,0\n")
    write_text(d / "out_of_view.txt", "0,x\n")
    write_text(d / "nlp.txt", "a cat\n")
    with pytest.raises(AnnotationError, match=r"out_of_view.txt:1"):
        load_dataset("lasot", tmp_path)


def test_tnl2k_undecodable_png_is_reported(tmp_path):
    d = tmp_path / "seq1"
    write_frames(d / "imgs", ["00001.png", "00002.png"])
    (d / "imgs" / "00002.png").write_bytes(b"\x89PNG broken")
    write_text(d / "groundtruth.txt", box_lines(2))
    write_text(d / "language.txt", "the dog\n")
    (s,) = load_dataset("tnl2k", tmp_path)
    assert s.frame(0).shape == (24, 32, 3)
    with pytest.raises(IOError, match=r"00002.png"):
        s.frame(1)


def test_vot_wrong_column_count_and_missing_sequence_dir(tmp_path):
    d = tmp_path / "sequences" / "ball"
    write_frames(d / "color", [f"{i:08d}.jpg" for i in range(1, 3)])
    write_text(d / "sequence", "channels.color=color/%08d.jpg\n")
    write_text(d / "groundtruth.txt", "1,1,5,1,5,4,1,4\n1,2,3,4,5,6\n")
    write_text(tmp_path / "sequences" / "list.txt", "ball\n")
    with pytest.raises(AnnotationError, match=r"groundtruth.txt:2"):
        load_dataset("vot", tmp_path)
    write_text(d / "groundtruth.txt", "1,1,5,1,5,4,1,4\n1,1,5,1,5,4,1,4\n")
    write_text(tmp_path / "sequences" / "list.txt", "ball\nghost\n")
    with pytest.raises((FileNotFoundError, AnnotationError), match="ghost"):
        load_dataset("vot", tmp_path)


def test_nfs_missing_annotation_is_named(tmp_path):
    write_frames(tmp_path / "Bee" / "30" / "Bee", [f"{i:05d}.jpg" for i in range(1, 3)])
    with pytest.raises(FileNotFoundError, match="Bee.txt"):
        load_dataset("nfs", tmp_path, "30")
