"""``vtrack track VIDEO --init x,y,w,h --out out.mp4``: track one object in a video."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vtrack.cli import add_tracker_arguments, positive_int

__all__ = ["register", "parse_box"]

logger = logging.getLogger(__name__)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse ``"x,y,w,h"`` into a box with positive width and height (argparse type)."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p != ""]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (4 numbers), got {text!r}") from None
    if len(vals) != 4 or not all(np.isfinite(vals)):
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (4 finite numbers), got {text!r}")
    if vals[2] <= 0 or vals[3] <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive width and height, got {text!r}")
    return vals[0], vals[1], vals[2], vals[3]


def register(subparsers: Any) -> None:
    """Add the ``track`` subcommand."""
    p = subparsers.add_parser(
        "track",
        help="track an object in a video and write a video with its box",
        description=(
            "Track the object given by --init on the first frame of VIDEO (a video file or a folder "
            "of images) and write an mp4 with the predicted box drawn; optionally the boxes as text."
        ),
    )
    p.add_argument("video", metavar="VIDEO", help="video file or folder of frames")
    p.add_argument("--init", required=True, type=parse_box, metavar="x,y,w,h", help="first-frame box in pixels")
    p.add_argument("--out", required=True, help="output video (.mp4)")
    add_tracker_arguments(p, default="static",
                          tracker_help="static, csrt, kcf, a model-zoo tracker (vtrack zoo list), or a trained tracker name (with --config)")
    p.add_argument("--language", help="natural-language description of the target (language trackers)")
    p.add_argument("--boxes", help="also write the boxes (x,y,w,h per frame, comma-separated) to this file")
    p.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    p.add_argument("--fps", type=float, help="output frame rate (default: the source's, or 30)")
    p.set_defaults(func=run_track)


def run_track(args: argparse.Namespace) -> int:
    """Track an object through a video (``vtrack track``)."""
    from vtrack.eval.reports import VideoWriter, draw_boxes
    from vtrack.io import atomic_write_text, refuse_overwrite_input
    from vtrack.tracking import TrackerUnavailableError, build_tracker
    from vtrack.tracking.video import iter_frames, source_fps

    if not str(args.out).lower().endswith((".mp4", ".m4v", ".mov")):
        raise ValueError(f"--out: expected an .mp4 file, got {args.out!r}")
    refuse_overwrite_input(args.out, [args.video, args.config, args.checkpoint, args.boxes])
    if args.boxes:
        refuse_overwrite_input(args.boxes, [args.video, args.config, args.checkpoint], flag="--boxes")
    if args.fps is not None and not (np.isfinite(args.fps) and args.fps > 0):
        raise ValueError(f"--fps: expected a positive number, got {args.fps}")
    try:
        tracker = build_tracker(args.tracker, device=args.device, config=args.config, checkpoint=args.checkpoint,
                                runtime=args.runtime, onnx_dir=args.onnx_dir)
    except TrackerUnavailableError as err:
        raise ValueError(str(err)) from None
    fps = args.fps or source_fps(args.video)
    boxes: list[tuple[float, ...]] = []
    elapsed = 0.0
    with VideoWriter(args.out, fps) as writer:
        for i, frame in enumerate(iter_frames(args.video, args.max_frames)):
            t0 = time.perf_counter()
            if i == 0:
                x, y, w, h = args.init
                if x >= frame.shape[1] or y >= frame.shape[0] or x + w <= 0 or y + h <= 0:
                    raise ValueError(f"--init: box {args.init} lies outside the {frame.shape[1]}x{frame.shape[0]} frame")
                tracker.initialize(frame, args.init, {"language": args.language} if args.language else None)
                box, score = tuple(args.init), 1.0
            else:
                res = tracker.track(frame)
                box, score = tuple(float(v) for v in res.box), float(res.score)
            elapsed += time.perf_counter() - t0
            boxes.append(box)
            writer.write(draw_boxes(frame, box, label=f"{getattr(tracker, 'name', args.tracker)} {score:.2f}"))
    if args.boxes:
        atomic_write_text(args.boxes, "".join(",".join(f"{v:.2f}" for v in b) + "\n" for b in boxes))
    rate = len(boxes) / elapsed if elapsed > 0 else float("inf")
    sys.stdout.write(f"tracked {len(boxes)} frames at {rate:.1f} FPS -> {Path(args.out)}\n")
    return 0
