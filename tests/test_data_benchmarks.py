"""Readers of the benchmark layouts on tiny fake folders written here, one quirk per check."""
import numpy as np
import pytest

from data_fakes import box_lines, write_frames, write_text
from vtrack.data import AnnotationError, load_dataset
from vtrack.data.benchmarks import polygon_to_box


def test_lasot_flags_language_split_lists_and_short_groundtruth(tmp_path):
    for name, n_img, n_box in (("cat-1", 3, 3), ("monkey-17", 4, 3)):
        d = tmp_path / name.split("-")[0] / name
        write_frames(d / "img", [f"{i:08d}.jpg" for i in range(1, n_img + 1)])
        write_text(d / "groundtruth.txt", box_lines(n_box))
        write_text(d / "full_occlusion.txt", ",".join(["0", "1", "0"]) + "\n")
        write_text(d / "out_of_view.txt", "0,0,1")
        write_text(d / "nlp.txt", "  the white cat\n")
    write_text(tmp_path / "testing_set.txt", "monkey-17\n")
    write_text(tmp_path / "training_set.txt", "cat-1\n")
    (m,) = load_dataset("lasot", tmp_path, "test")
    assert m.name == "monkey-17" and len(m) == 3  # monkey-17: frames after the last box dropped
    assert list(m.valid) == [True, False, False] and m.language == "the white cat"
    assert list(m.attributes["out_of_view"]) == [False, False, True]
    assert [s.name for s in load_dataset("lasot", tmp_path)] == ["cat-1", "monkey-17"]
    write_text(tmp_path / "cat" / "cat-1" / "full_occlusion.txt", "0,1\n")
    with pytest.raises(AnnotationError, match="full_occlusion.txt:1: expected 3 flags"):
        load_dataset("lasot", tmp_path, "train")
    (tmp_path / "testing_set.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_set.txt"):
        load_dataset("lasot", tmp_path, "test")


def test_trackingnet_unpadded_frames_and_test_first_box(tmp_path):
    tr = tmp_path / "TRAIN_0"
    write_frames(tr / "frames" / "seqA", [f"{i}.jpg" for i in range(12)])
    write_text(tr / "anno" / "seqA.txt", box_lines(12))
    te = tmp_path / "TEST"
    write_frames(te / "frames" / "seqB", [f"{i}.jpg" for i in range(3)])
    write_text(te / "anno" / "seqB.txt", "1,2,3,4\n")
    (a,) = load_dataset("trackingnet", tmp_path, "train")
    assert [f.split("/")[-1] for f in a.frames[:3]] == ["0.jpg", "1.jpg", "2.jpg"]
    assert a.frames[10].endswith("/10.jpg")  # numeric, not lexicographic order
    np.testing.assert_array_equal(a.boxes[10], [11, 12, 5, 6])
    (b,) = load_dataset("trackingnet", tmp_path, "TEST")
    assert b.valid.tolist() == [True, False, False] and b.attributes["first_frame_only"]


def test_otb_separators_multi_target_ranges_and_board(tmp_path):
    write_frames(tmp_path / "Basketball" / "img", [f"{i:04d}.jpg" for i in range(1, 4)])
    write_text(tmp_path / "Basketball" / "groundtruth_rect.txt", "1\t2\t3\t4\n5 6 7 8\n9,10,11,12\n")
    write_frames(tmp_path / "Jogging" / "img", [f"{i:04d}.jpg" for i in range(1, 3)])
    write_text(tmp_path / "Jogging" / "groundtruth_rect.1.txt", box_lines(2))
    write_text(tmp_path / "Jogging" / "groundtruth_rect.2.txt", box_lines(2, start=50))
    write_frames(tmp_path / "Human4" / "img", [f"{i:04d}.jpg" for i in range(1, 3)])
    write_text(tmp_path / "Human4" / "groundtruth_rect.1.txt", "")
    write_text(tmp_path / "Human4" / "groundtruth_rect.2.txt", box_lines(2))
    write_frames(tmp_path / "Board" / "img", [f"{i:05d}.jpg" for i in range(1, 3)])
    write_text(tmp_path / "Board" / "groundtruth_rect.txt", box_lines(2))
    write_frames(tmp_path / "David" / "img", [f"{i:04d}.jpg" for i in range(295, 772)])
    write_text(tmp_path / "David" / "groundtruth_rect.txt", box_lines(471))
    write_frames(tmp_path / "Tiger1" / "img", [f"{i:04d}.jpg" for i in range(1, 355)])
    write_text(tmp_path / "Tiger1" / "groundtruth_rect.txt", box_lines(354))
    seqs = {s.name: s for s in load_dataset("otb", tmp_path)}
    assert sorted(seqs) == ["Basketball", "Board", "David", "Human4", "Jogging-1", "Jogging-2", "Tiger1"]
    np.testing.assert_array_equal(seqs["Basketball"].boxes, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert seqs["Jogging-2"].boxes[0, 0] == 50 and seqs["Jogging-1"].boxes[0, 0] == 1
    assert seqs["Board"].frames[0].endswith("00001.jpg")
    assert seqs["David"].frames[0].endswith("0300.jpg") and len(seqs["David"]) == 471
    tiger = seqs["Tiger1"]
    assert tiger.frames[0].endswith("0006.jpg") and tiger.boxes[0, 0] == 6  # first 5 frames and rows dropped


def test_uav123_config_ranges_and_nan_rows(tmp_path):
    write_frames(tmp_path / "data_seq" / "UAV123" / "bird1", [f"{i:06d}.jpg" for i in range(1, 11)])
    write_text(tmp_path / "anno" / "UAV123" / "bird1_2.txt", "1,2,3,4\nNaN,NaN,NaN,NaN\n5,6,7,8\n")
    with pytest.raises(FileNotFoundError, match="configSeqs.m"):
        load_dataset("uav123", tmp_path)
    write_text(tmp_path / "configSeqs.m",
               "seqs={struct('name','bird1_2','path','D:\\data_seq\\UAV123\\bird1\\','startFrame',6,'endFrame',8,"
               "'nz',6,'ext','jpg','init_rect',[0,0,0,0]),...\n};\n")
    (s,) = load_dataset("uav123", tmp_path)
    assert [f[-10:] for f in s.frames] == ["000006.jpg", "000007.jpg", "000008.jpg"]
    assert s.valid.tolist() == [True, False, True] and np.isnan(s.boxes[1]).all()


def test_nfs_corner_columns_and_240_rows_in_30_fps(tmp_path):
    seq = tmp_path / "Gymnastics"
    write_frames(seq / "30" / "Gymnastics", [f"{i:05d}.jpg" for i in range(1, 4)])
    rows = "".join(f'1 {10 + i} 20 {30 + i} 60 {i} 0 0 0 "person"\n' for i in range(24))
    write_text(seq / "30" / "Gymnastics.txt", rows)  # 240 fps rows in the 30 fps file
    (s,) = load_dataset("nfs", tmp_path, "30")
    np.testing.assert_array_equal(s.boxes, [[10, 20, 20, 40], [18, 20, 20, 40], [26, 20, 20, 40]])
    with pytest.raises(ValueError, match="split"):
        load_dataset("nfs", tmp_path, "60")


def test_nfs_off_by_one_lengths_are_trimmed_with_a_warning(tmp_path, caplog):
    """As the got10k toolkit: one box more or fewer than frames trims both (naming the
    sequence); after 240 fps rows are subsampled too; larger differences are an error."""
    for name, n_frames, n_rows in (("Bee", 4, 5), ("Cat", 5, 4), ("Dog", 3, 25)):
        seq = tmp_path / name
        write_frames(seq / "30" / name, [f"{i:05d}.jpg" for i in range(1, n_frames + 1)])
        write_text(seq / "30" / f"{name}.txt", "".join(f"1 {i} 0 {i + 5} 5 0 0 0\n" for i in range(n_rows)))
    with caplog.at_level("WARNING", logger="vtrack.data.benchmarks"):
        bee, cat, dog = load_dataset("nfs", tmp_path, "30")
    assert (len(bee), len(bee.frames), len(cat), len(cat.frames), len(dog)) == (4, 4, 4, 4, 3)
    assert cat.frames[-1].endswith("00004.jpg") and dog.boxes[:, 0].tolist() == [0, 8, 16]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "NfS sequence Bee (30 fps): 5 boxes for 4 frames" in warned and "Cat" in warned and "Dog" in warned
    write_text(tmp_path / "Bee" / "30" / "Bee.txt", "1 0 0 5 5 0 0 0\n" * 6)
    with pytest.raises(AnnotationError, match="Bee.txt.*6 boxes but the sequence has 4 frames"):
        load_dataset("nfs", tmp_path, "30")


def test_tnl2k_png_frames_and_language(tmp_path):
    d = tmp_path / "test" / "advSamp_Baseball"
    write_frames(d / "imgs", ["00001.png", "00002.png"])
    write_text(d / "groundtruth.txt", box_lines(2))
    write_text(d / "language.txt", "the baseball thrown by the pitcher\n")
    (s,) = load_dataset("tnl2k", tmp_path, "test")
    assert s.language == "the baseball thrown by the pitcher" and s.frames[1].endswith("00002.png")


def test_vot_polygons_sequence_file_and_tags(tmp_path):
    d = tmp_path / "sequences" / "ball"
    write_frames(d / "color", [f"{i:08d}.jpg" for i in range(1, 4)])
    write_text(d / "sequence", "channels.color=color/%08d.jpg\nfps=30\n")
    write_text(d / "groundtruth.txt", "1,1,5,1,5,4,1,4\n2,2,6,2,6,5,2,5\n0,0,3,0,3,3,0,3\n")
    write_text(d / "occlusion.tag", "0\n1\n")
    write_text(tmp_path / "sequences" / "list.txt", "ball\n")
    (s,) = load_dataset("vot", tmp_path)
    np.testing.assert_array_equal(s.boxes[0], [1, 1, 4, 3])
    assert s.attributes["polygons"].shape == (3, 8)
    assert s.attributes["occlusion"].tolist() == [False, True, False]
    rotated = polygon_to_box(np.array([[3, 0, 6, 3, 3, 6, 0, 3]], float))
    np.testing.assert_array_equal(rotated, [[0, 0, 6, 6]])
    write_text(d / "groundtruth.txt", "m1,2,3\n")
    with pytest.raises(AnnotationError, match="mask"):
        load_dataset("vot", tmp_path)
