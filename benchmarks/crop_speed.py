"""Cost of the exact crop (vtrack.tracking.crops) against an earlier version of it, in one process (issue 15).

Per crop: the minimum over repeats of this thread's CPU time (``time.thread_time``) of
``sample_target`` at the trackers' crop sizes, for the earlier ``crops.py`` (read from git at
``--rev``), the current NumPy path and the current C++ op ``vtrack::bilinear_crop``, with a check
that all three give the same bits; ``cv2.warpAffine`` for scale. Per tracking step: two copies of
each zoo tracker (PyTorch, ``cpp`` kernels where switchable), one with each crop, step in turn on
the same frames (order alternating); the median paired CPU-time ratio, and whether the boxes are
identical.

    OMP_NUM_THREADS=1 python benchmarks/crop_speed.py --rev 1e4da7e~1 --frames 100
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch


def old_crops(rev: str) -> Any:
    """The module vtrack/tracking/crops.py as of git revision ``rev``."""
    src = subprocess.run(["git", "show", f"{rev}:vtrack/tracking/crops.py"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="vtrack-crops-")) / "crops_old.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("crops_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_ms(fn: Callable[[], Any], repeats: int = 40) -> float:
    """Minimum thread CPU milliseconds of ``fn`` over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return 1e3 * best


def per_crop(old: Any) -> None:
    """Print the per-crop times of the earlier crop, the NumPy path and the C++ op."""
    from vtrack.tracking import crops

    img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8), (0, 0), 1.5)
    op = crops._crop_op
    cases = {"template 128, inside": ((200.3, 150.7, 40.2, 30.1), 2.0, 128),
             "search 256, inside": ((200.3, 150.7, 40.2, 30.1), 4.0, 256),
             "search 256, leaves the image": ((10.3, 5.7, 60.2, 50.1), 4.0, 256),
             "search 256, larger than the image": ((100.5, 50.5, 300.2, 250.3), 4.0, 256)}
    for label, (box, factor, out) in cases.items():
        def numpy_path() -> Any:
            crops._crop_op = lambda: None
            try:
                return crops.sample_target(img, box, factor, out)
            finally:
                crops._crop_op = op
        ref = old.sample_target(img, box, factor, out)[0]
        assert np.array_equal(ref, numpy_path()[0]) and np.array_equal(ref, crops.sample_target(img, box, factor, out)[0])
        t_old = best_ms(lambda: old.sample_target(img, box, factor, out))
        t_np, t_cpp = best_ms(numpy_path), best_ms(lambda: crops.sample_target(img, box, factor, out))
        print(f"{label}: earlier {t_old:.3f} ms, NumPy {t_np:.3f} ms ({t_old / t_np:.1f}x), "
              f"C++ op {t_cpp:.3f} ms ({t_old / t_cpp:.1f}x) [op loaded: {op() is not None}]; bit-identical")
    mat = np.array([[1.5, 0, -100.0], [0, 1.5, -80.0]])
    print(f"cv2.warpAffine 256: {best_ms(lambda: cv2.warpAffine(img, mat, (256, 256), flags=cv2.INTER_LINEAR)):.3f} ms")


def per_step(old: Any, names: list[str], frames: int) -> None:
    """Print the paired tracking-step ratio (earlier crop / current crop) of each tracker."""
    from vtrack.bench.trackers import _synthetic_frames
    from vtrack.tracking import crops
    from vtrack.tracking.loader import build_tracker

    imgs, boxes = _synthetic_frames(frames + 11, 360, 480)
    impl = {"earlier": old._bilinear_crop, "current": crops._bilinear_crop}
    for name in names:
        tracker = build_tracker(name)
        if hasattr(tracker.model, "set_backend"):
            tracker.model.set_backend("cpp")
        tracker.initialize(imgs[0], tuple(float(v) for v in boxes[0]))
        twins = {"earlier": copy.deepcopy(tracker), "current": tracker}
        cpu: dict[str, list[float]] = {k: [] for k in twins}
        out: dict[str, list[Any]] = {k: [] for k in twins}
        for i in range(1, len(imgs)):
            for k in (("earlier", "current") if i % 2 else ("current", "earlier")):
                crops._bilinear_crop = impl[k]
                t0 = time.thread_time()
                out[k].append(twins[k].track(imgs[i]).box)
                if i > 10:
                    cpu[k].append(time.thread_time() - t0)
        crops._bilinear_crop = impl["current"]
        a, b = np.array(cpu["earlier"]), np.array(cpu["current"])
        print(f"{name}: step {1e3 * np.median(a):.2f} -> {1e3 * np.median(b):.2f} ms CPU (FPS {1 / np.median(a):.1f} -> "
              f"{1 / np.median(b):.1f}), paired ratio {np.median(a / b):.3f}; boxes identical: {out['earlier'] == out['current']}")


def main() -> None:
    """Parse the options and print both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="git revision of the earlier crops.py")
    parser.add_argument("--frames", type=int, default=100, help="timed tracking steps per tracker (after 10)")
    parser.add_argument("trackers", nargs="*", default=["ostrack_cpu", "esat_cpu", "vlt_scar_cpu", "sparsett_cpu", "duml_cpu"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    old = old_crops(args.rev)
    per_crop(old)
    per_step(old, args.trackers, args.frames)


if __name__ == "__main__":
    sys.exit(main())
