"""Readers for the evaluation benchmarks' official layouts: LaSOT, TrackingNet, OTB-100, UAV123,
NfS, TNL2K and VOT (GOT-10k and the synthetic benchmark live in :mod:`vtrack.data.got10k`).

Each reader takes ``(root, split)`` and returns a list of :class:`~vtrack.data.sequence.Sequence`
with lazily read frames. Every quirk of the official layouts is handled here, in one place, and
documented in docs/datasets.md; a missing or malformed file raises an error naming it.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from vtrack.data._io import (
    AnnotationError,
    check_length,
    list_images,
    read_boxes,
    read_flag_line,
    read_label_column,
    read_list,
    read_numbers,
    read_sentence,
    require_dir,
    require_file,
    valid_from_boxes,
)
from vtrack.data.sequence import Sequence

logger = logging.getLogger(__name__)


def _split_error(dataset: str, allowed: tuple[str, ...], split: str | None) -> ValueError:
    return ValueError(f"split: expected one of {', '.join(allowed)} for {dataset}, got {split!r}")


def _frames_in_range(folder: Path, start: int, end: int | None) -> list[str]:
    """Numerically named frames of ``folder`` with start <= number <= end (1-based file numbers)."""
    frames = list_images(folder, numeric=True)
    picked = [f for f in frames if start <= int(Path(f).stem) and (end is None or int(Path(f).stem) <= end)]
    if not picked:
        raise FileNotFoundError(f"no frames numbered {start}..{end} in {folder}")
    return picked


def _fit_boxes(gt_path: Path, boxes: np.ndarray, frames: list[str], where: str) -> list[str]:
    """Boxes and frames must pair up; extra frames beyond the last box are dropped with a warning
    (LaSOT monkey-17), extra boxes are an error."""
    if len(boxes) < len(frames):
        logger.warning("%s: %d boxes for %d frames; the frames after the last box are dropped", gt_path,
                       len(boxes), len(frames))
        return frames[: len(boxes)]
    check_length(gt_path, boxes, len(frames), f"frames in {where}")
    return frames


# --------------------------------------------------------------------------------------- LaSOT
LASOT_SPLITS = ("train", "test")
_LASOT_SPLIT_FILES = {"test": "testing_set.txt", "train": "training_set.txt"}


def read_lasot_sequence(seq_dir: str | Path) -> Sequence:
    """One LaSOT sequence ``<class>/<class>-<n>``: img/, groundtruth.txt, one-line
    full_occlusion.txt and out_of_view.txt, nlp.txt. Frames that are fully occluded or out of
    view are flagged invalid (they still count as failures in LaSOT's OPE, see docs/evaluation.md)."""
    seq_dir = require_dir(seq_dir, "LaSOT sequence directory")
    gt_path = seq_dir / "groundtruth.txt"
    boxes = read_boxes(gt_path, separators=",")
    frames = _fit_boxes(gt_path, boxes, list_images(seq_dir / "img"), str(seq_dir))
    n = len(frames)
    occlusion = read_flag_line(seq_dir / "full_occlusion.txt", expected=n)
    out_of_view = read_flag_line(seq_dir / "out_of_view.txt", expected=n)
    valid = valid_from_boxes(boxes) & ~occlusion & ~out_of_view
    language = read_sentence(seq_dir / "nlp.txt") if (seq_dir / "nlp.txt").is_file() else None
    return Sequence(seq_dir.name, frames, boxes, valid, language=language,
                    attributes={"full_occlusion": occlusion, "out_of_view": out_of_view,
                                "class": seq_dir.parent.name}, dataset="lasot")


def load_lasot(root: str | Path, split: str | None = None) -> list[Sequence]:
    """LaSOT. ``split`` ``test``/``train`` reads the official ``testing_set.txt``/``training_set.txt``
    list at the root (shipped with the dataset's toolkit); None reads every sequence found."""
    root = require_dir(root, "LaSOT root")
    if split is None:
        dirs = sorted(p for c in root.iterdir() if c.is_dir() for p in c.iterdir() if (p / "groundtruth.txt").is_file())
        if not dirs:
            raise FileNotFoundError(f"no LaSOT sequences (<class>/<class>-<n>/groundtruth.txt) under {root}")
    else:
        if split not in LASOT_SPLITS:
            raise _split_error("lasot", LASOT_SPLITS, split)
        list_file = require_file(root / _LASOT_SPLIT_FILES[split], f"LaSOT {split} list")
        dirs = []
        for number, name in enumerate(read_list(list_file), start=1):
            cls = name.rsplit("-", 1)[0]
            if not (root / cls / name).is_dir():
                raise AnnotationError(list_file, number, f"sequence directory {root / cls / name} does not exist")
            dirs.append(root / cls / name)
    return [read_lasot_sequence(d) for d in dirs]


# --------------------------------------------------------------------------------- TrackingNet
def _trackingnet_chunks(root: Path, split: str | None) -> list[Path]:
    chunks = sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"TRAIN_\d+", p.name)),
                    key=lambda p: int(p.name.split("_")[1]))
    if split in (None, "train"):
        if not chunks:
            raise FileNotFoundError(f"no TRAIN_<i> folders under TrackingNet root {root}")
        return chunks
    if split in ("test", "TEST"):
        return [require_dir(root / "TEST", "TrackingNet TEST folder")]
    if re.fullmatch(r"TRAIN_\d+", split):
        return [require_dir(root / split, f"TrackingNet {split} folder")]
    raise ValueError(f"split: expected train, test, TEST or TRAIN_<i> for trackingnet, got {split!r}")


def load_trackingnet(root: str | Path, split: str | None = None) -> list[Sequence]:
    """TrackingNet: ``<chunk>/frames/<seq>/<k>.jpg`` numbered from 0 without padding (sorted
    numerically) and ``<chunk>/anno/<seq>.txt``; TEST annotations hold the first box only."""
    root = require_dir(root, "TrackingNet root")
    out = []
    for chunk in _trackingnet_chunks(root, split):
        anno_dir = require_dir(chunk / "anno", "TrackingNet anno folder")
        test = chunk.name == "TEST"
        frames_dir = chunk / "frames"
        if frames_dir.is_dir():  # a frame folder without its annotation is an error, not a skip
            for seq_dir in sorted(p for p in frames_dir.iterdir() if p.is_dir()):
                require_file(anno_dir / f"{seq_dir.name}.txt", f"TrackingNet annotation of {seq_dir}")
        for anno in sorted(anno_dir.glob("*.txt")):
            frames = list_images(chunk / "frames" / anno.stem, numeric=True)
            if test:
                first = read_boxes(anno, separators=",", max_rows=1)
                boxes = np.full((len(frames), 4), np.nan)
                boxes[0] = first[0]
                valid = np.zeros(len(frames), bool)
                valid[0] = bool(valid_from_boxes(first)[0])
                attrs: dict[str, Any] = {"first_frame_only": True, "chunk": chunk.name}
            else:
                boxes = read_boxes(anno, separators=",")
                check_length(anno, boxes, len(frames), f"frames in {chunk / 'frames' / anno.stem}")
                valid = valid_from_boxes(boxes)
                attrs = {"chunk": chunk.name}
            out.append(Sequence(anno.stem, frames, boxes, valid, attributes=attrs, dataset="trackingnet"))
    return out


# ---------------------------------------------------------------------------------------- OTB
# Frame ranges (first, last file number) that differ from "all frames", and the ground-truth rows
# to skip at the start (Tiger1), from the OTB-100 benchmark's configuration.
OTB_RANGES: dict[str, tuple[int, int]] = {
    "David": (300, 770), "Football1": (1, 74), "Freeman3": (1, 460), "Freeman4": (1, 283),
    "Diving": (1, 215), "BlurCar1": (247, 988), "BlurCar3": (3, 359), "BlurCar4": (18, 397),
    "Tiger1": (6, 354),
}
OTB_INIT_OMIT: dict[str, int] = {"Tiger1": 5}
# sequences whose ground truth is split per target: folder -> [(sequence name, file)]
OTB_MULTI: dict[str, list[tuple[str, str]]] = {
    "Jogging": [("Jogging-1", "groundtruth_rect.1.txt"), ("Jogging-2", "groundtruth_rect.2.txt")],
    "Skating2": [("Skating2-1", "groundtruth_rect.1.txt"), ("Skating2-2", "groundtruth_rect.2.txt")],
    "Human4": [("Human4", "groundtruth_rect.2.txt")],  # the .1 file is empty
}


def load_otb(root: str | Path, split: str | None = None) -> list[Sequence]:
    """OTB-100: ``<Seq>/img/%04d.jpg`` (Board: 5 digits) and ``groundtruth_rect.txt`` with comma,
    tab or space separators; Jogging/Skating2 give two sequences each, Human4 uses its ``.2`` file,
    frame ranges and Tiger1's skipped rows as in the benchmark's configuration."""
    root = require_dir(root, "OTB root")
    if split is not None:
        raise ValueError(f"split: OTB has no splits, expected None, got {split!r}")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "img").is_dir()):
        targets = OTB_MULTI.get(folder.name, [(folder.name, "groundtruth_rect.txt")])
        start, end = OTB_RANGES.get(folder.name, (1, None))
        frames = _frames_in_range(folder / "img", start, end)
        for name, gt_file in targets:
            gt_path = folder / gt_file
            boxes = read_boxes(gt_path)[OTB_INIT_OMIT.get(folder.name, 0):]
            check_length(gt_path, boxes, len(frames), f"frames of {name} ({start}..{end or 'last'})")
            out.append(Sequence(name, frames, boxes, valid_from_boxes(boxes), dataset="otb"))
    if not out:
        raise FileNotFoundError(f"no OTB sequences (<Seq>/img/) under {root}")
    return out


# ------------------------------------------------------------------------------------- UAV123
_UAV_ENTRY = re.compile(
    r"struct\(\s*'name'\s*,\s*'(?P<name>[^']+)'\s*,\s*'path'\s*,\s*'(?P<path>[^']+)'\s*,\s*"
    r"'startFrame'\s*,\s*(?P<start>\d+)\s*,\s*'endFrame'\s*,\s*(?P<end>\d+)"
)


def read_uav_config(path: str | Path) -> dict[str, tuple[str, int, int]]:
    """Parse UAV123's ``configSeqs.m`` into {sequence: (frame folder name, first, last)}."""
    path = require_file(path, "UAV123 configSeqs.m")
    table = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        m = _UAV_ENTRY.search(line)
        if m:
            folder = Path(m["path"].replace("\\", "/").rstrip("/")).name
            table[m["name"]] = (folder, int(m["start"]), int(m["end"]))
        elif "struct(" in line and "'name'" in line:
            raise AnnotationError(path, number, f"cannot parse the sequence entry {line.strip()!r}")
    if not table:
        raise AnnotationError(path, None, "no struct('name',...,'startFrame',...,'endFrame',...) entries")
    return table


def load_uav123(root: str | Path, split: str | None = None) -> list[Sequence]:
    """UAV123 (``split`` None or ``UAV123``) or UAV20L (``UAV20L``): ``anno/<set>/<seq>.txt``
    (NaN rows where the target is absent) over ``data_seq/UAV123/<folder>/%06d.jpg``. Sub-sequences
    (``bird1_1``, ...) take their frame ranges from the official ``configSeqs.m`` (at the root or
    under ``configs/``); without it only sequences whose annotation covers the whole folder load."""
    root = require_dir(root, "UAV123 root")
    subset = split or "UAV123"
    if subset not in ("UAV123", "UAV20L"):
        raise _split_error("uav123", ("UAV123", "UAV20L"), split)
    anno_dir = require_dir(root / "anno" / subset, f"UAV123 annotation folder ({subset})")
    frames_root = require_dir(root / "data_seq" / "UAV123", "UAV123 frame folder")
    config = next((p for p in (root / "configSeqs.m", root / "configs" / "configSeqs.m") if p.is_file()), None)
    ranges = read_uav_config(config) if config is not None else {}
    out = []
    for anno in sorted(anno_dir.glob("*.txt")):
        boxes = read_boxes(anno, separators=",")
        if anno.stem in ranges:
            folder, start, end = ranges[anno.stem]
            frames = _frames_in_range(frames_root / folder, start, end)
        elif (frames_root / anno.stem).is_dir():
            frames = _frames_in_range(frames_root / anno.stem, 1, len(boxes))
        else:
            raise FileNotFoundError(
                f"{anno}: no frame folder {frames_root / anno.stem} and no entry in configSeqs.m "
                f"({config or 'not found at ' + str(root)}) giving its folder and frame range")
        check_length(anno, boxes, len(frames), "frames in its range")
        out.append(Sequence(anno.stem, frames, boxes, valid_from_boxes(boxes), dataset="uav123"))
    return out


# ---------------------------------------------------------------------------------------- NfS
def load_nfs(root: str | Path, split: str | None = None) -> list[Sequence]:
    """Need for Speed: ``<seq>/<fps>/<seq>/*.jpg`` and ``<seq>/<fps>/<seq>.txt`` whose columns 2-5
    are xmin ymin xmax ymax. ``split`` is the frame rate, ``"30"`` (default) or ``"240"``.

    Length mismatches are handled as the got10k toolkit's NfS reader: an annotation with about 8x
    the frames (240 fps rows, ``|rows / frames - 8| < 1``) is subsampled to every 8th row; then a
    difference of one between boxes and frames trims both to the shorter, with a warning that
    names the sequence. Larger differences are an error."""
    root = require_dir(root, "NfS root")
    fps = split or "30"
    if fps not in ("30", "240"):
        raise _split_error("nfs", ("30", "240"), split)
    out = []
    for seq in sorted(p for p in root.iterdir() if (p / fps).is_dir()):
        gt_path = require_file(seq / fps / f"{seq.name}.txt", "NfS annotation")
        rows = []
        for number, line in enumerate(gt_path.read_text().splitlines(), start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                rows.append([float(t) for t in tokens[1:5]])
            except ValueError:
                raise AnnotationError(gt_path, number, f"expected numbers in columns 2-5, got {line.strip()!r}") from None
            if len(rows[-1]) != 4:
                raise AnnotationError(gt_path, number, f"expected at least 5 columns, got {len(tokens)}")
        xyxy = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
        frames = list_images(seq / fps / seq.name, numeric=True)
        if frames and len(xyxy) != len(frames) and abs(len(xyxy) / len(frames) - 8) < 1:
            xyxy = xyxy[::8]
        if abs(len(xyxy) - len(frames)) == 1:
            n = min(len(xyxy), len(frames))
            logger.warning("NfS sequence %s (%s fps): %d boxes for %d frames; both trimmed to %d", seq.name,
                           fps, len(xyxy), len(frames), n)
            xyxy, frames = xyxy[:n], frames[:n]
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)
        check_length(gt_path, boxes, len(frames), f"frames in {seq / fps / seq.name}")
        out.append(Sequence(seq.name, frames, boxes, valid_from_boxes(boxes), attributes={"fps": int(fps)},
                            dataset="nfs"))
    if not out:
        raise FileNotFoundError(f"no NfS sequences with a {fps} fps folder under {root}")
    return out


# -------------------------------------------------------------------------------------- TNL2K
def load_tnl2k(root: str | Path, split: str | None = None) -> list[Sequence]:
    """TNL2K: ``<seq>/imgs/*`` (jpg or png, sorted by name), ``groundtruth.txt`` (comma x,y,w,h) and
    ``language.txt``. ``split`` names a sub-folder of ``root`` (e.g. the test subset), or None."""
    root = require_dir(root, "TNL2K root")
    base = require_dir(root / split, f"TNL2K {split} folder") if split else root
    out = []
    for seq in sorted(p for p in base.iterdir() if (p / "groundtruth.txt").is_file()):
        gt_path = seq / "groundtruth.txt"
        boxes = read_boxes(gt_path)
        frames = list_images(seq / "imgs")
        check_length(gt_path, boxes, len(frames), f"frames in {seq / 'imgs'}")
        language = read_sentence(seq / "language.txt") if (seq / "language.txt").is_file() else None
        out.append(Sequence(seq.name, frames, boxes, valid_from_boxes(boxes), language=language, dataset="tnl2k"))
    if not out:
        raise FileNotFoundError(f"no TNL2K sequences (<seq>/groundtruth.txt) under {base}")
    return out


# ---------------------------------------------------------------------------------------- VOT
VOT_TAGS = ("camera_motion", "illum_change", "motion_change", "size_change", "occlusion")


def _read_vot_sequence_file(path: Path) -> dict[str, str]:
    meta = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise AnnotationError(path, number, f"expected key=value, got {line.strip()!r}")
        key, value = line.split("=", 1)
        meta[key.strip()] = value.strip()
    return meta


def polygon_to_box(poly: np.ndarray) -> np.ndarray:
    """Axis-aligned (x, y, w, h) of 8-number polygons [N, 8] (min/max of the corners); a 4-number
    row is already a box."""
    poly = np.asarray(poly, dtype=np.float64)
    if poly.shape[1] == 4:
        return poly.copy()
    xs, ys = poly[:, 0::2], poly[:, 1::2]
    x0, y0 = xs.min(1), ys.min(1)
    return np.stack([x0, y0, xs.max(1) - x0, ys.max(1) - y0], 1)


def read_vot_sequence(seq_dir: str | Path) -> Sequence:
    """One VOT sequence: ``sequence`` file (``channels.color=color/%08d.jpg``), frames,
    ``groundtruth.txt`` (8-number polygons for VOT2015-2019 or 4-number boxes), per-frame tags.
    The polygons are kept in ``attributes["polygons"]`` for the reset-based evaluation."""
    seq_dir = require_dir(seq_dir, "VOT sequence directory")
    gt_path = seq_dir / "groundtruth.txt"
    first = require_file(gt_path).read_text().lstrip()[:1]
    if first == "m":
        raise AnnotationError(gt_path, 1, "segmentation-mask ground truth (VOT2020+) is not supported")
    regions = read_numbers(gt_path, (4, 8))
    meta_path = seq_dir / "sequence"
    folder = seq_dir / "color" if (seq_dir / "color").is_dir() else seq_dir
    if meta_path.is_file():
        meta = _read_vot_sequence_file(meta_path)
        pattern = meta.get("channels.color")
        if pattern:
            folder = seq_dir / Path(pattern).parent
    frames = list_images(folder, numeric=True)
    check_length(gt_path, regions, len(frames), f"frames in {folder}")
    boxes = polygon_to_box(regions)
    attrs: dict[str, Any] = {"polygons": regions if regions.shape[1] == 8 else None}
    for tag in VOT_TAGS:
        path = seq_dir / f"{tag}.tag"
        if path.is_file():
            values = read_label_column(path) if path.stat().st_size else np.zeros(0, np.int64)
            flags = np.zeros(len(frames), bool)  # VOT tag files may stop at the last tagged frame
            if len(values) > len(frames):
                raise AnnotationError(path, None, f"{len(values)} tags for {len(frames)} frames")
            flags[: len(values)] = values.astype(bool)
            attrs[tag] = flags
    return Sequence(seq_dir.name, frames, boxes, valid_from_boxes(boxes), attributes=attrs, dataset="vot")


def write_vot_sequence(seq_dir: str | Path, frames: list[np.ndarray], regions: np.ndarray, *, fps: int = 30,
                       quality: int = 95) -> Path:
    """Write one sequence in the VOT layout that :func:`read_vot_sequence` and the VOT toolkit read:
    ``color/%08d.jpg`` (from 1), ``groundtruth.txt`` (comma-separated boxes [T, 4] or polygons
    [T, 8]) and the ``sequence`` metadata file. ``frames`` are HxWx3 uint8 RGB arrays of one size.

    The annotation files are written last, each atomically, so an interrupted write leaves no folder
    that reads as a sequence. An existing non-empty ``seq_dir`` is refused (never overwritten).
    """
    import cv2

    from vtrack.io import atomic_write_text

    seq_dir = Path(seq_dir)
    if not isinstance(frames, (list, tuple)) or not frames:
        raise ValueError(f"frames: expected a non-empty list of HxWx3 uint8 images, got {type(frames).__name__} "
                         f"of length {len(frames) if hasattr(frames, '__len__') else '?'}")
    first = np.asarray(frames[0])
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3 or f.shape != first.shape:
            raise ValueError(f"frames[{i}]: expected a uint8 image of shape {first.shape} (HxWx3), got "
                             f"{f.dtype} {f.shape}")
    regions = np.asarray(regions, dtype=np.float64)
    if regions.ndim != 2 or regions.shape[1] not in (4, 8) or len(regions) != len(frames):
        raise ValueError(f"regions: expected [{len(frames)}, 4] boxes or [{len(frames)}, 8] polygons, got "
                         f"{list(regions.shape)}")
    if not np.isfinite(regions).all():
        raise ValueError("regions: expected finite values, got NaN or inf")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps: expected a positive int, got {fps!r}")
    if seq_dir.exists() and any(seq_dir.iterdir()):
        raise FileExistsError(f"seq_dir: {seq_dir} exists and is not empty (refusing to overwrite it)")
    color = seq_dir / "color"
    color.mkdir(parents=True, exist_ok=True)
    for t, img in enumerate(frames):
        if not cv2.imwrite(str(color / f"{t + 1:08d}.jpg"), np.ascontiguousarray(img[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {color / f'{t + 1:08d}.jpg'}")
    height, width = first.shape[:2]
    atomic_write_text(seq_dir / "sequence", f"channels.color=color/%08d.jpg\nfps={fps}\nwidth={width}\n"
                      f"height={height}\nlength={len(frames)}\n")
    atomic_write_text(seq_dir / "groundtruth.txt",
                      "\n".join(",".join(f"{v:.4f}" for v in row) for row in regions) + "\n")
    return seq_dir


def load_vot(root: str | Path, split: str | None = None) -> list[Sequence]:
    """A VOT short-term dataset folder (``root/sequences/list.txt`` or ``root/list.txt``)."""
    root = require_dir(root, "VOT root")
    if split is not None:
        raise ValueError(f"split: VOT has no splits (point root at the year's folder), got {split!r}")
    base = root / "sequences" if (root / "sequences").is_dir() else root
    list_file = base / "list.txt"
    names = read_list(list_file) if list_file.is_file() else sorted(
        p.name for p in base.iterdir() if (p / "groundtruth.txt").is_file())
    if not names:
        raise FileNotFoundError(f"no VOT sequences under {base} (expected list.txt or <seq>/groundtruth.txt)")
    return [read_vot_sequence(base / n) for n in names]
