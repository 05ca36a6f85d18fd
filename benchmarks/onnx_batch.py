"""Per-crop time of an exported search branch at several batch sizes (``vtrack export --dynamic-batch``).

Runs ``DIR/search.onnx`` of each export folder with onnxruntime on one intra-op thread, random
inputs of the branch's shapes at each batch size, and reports the minimum thread-CPU time per
call divided by the batch (milliseconds per crop), all in one process::

    vtrack export ostrack_cpu --out exports/ostrack_cpu_b --dynamic-batch
    OMP_NUM_THREADS=1 python benchmarks/onnx_batch.py exports/ostrack_cpu_b --batches 1 8 32
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def per_crop_ms(folder: Path, batches: list[int], repeats: int) -> dict[int, float]:
    """Minimum thread-CPU milliseconds per crop of ``folder/search.onnx`` at each batch size."""
    import onnxruntime as ort

    from vtrack.deploy.export import read_manifest

    manifest = read_manifest(folder)  # checked: format and every branch file
    if not manifest.get("dynamic_batch"):
        raise ValueError(f"folder: {folder} was exported with batch 1; export it with --dynamic-batch")
    if "search" not in manifest["branches"]:
        raise ValueError(f"folder: {folder} has no search branch, got {sorted(manifest['branches'])}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(folder / manifest["branches"]["search"]["file"]), opts,
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    out = {}
    for b in batches:
        feed = {i.name: rng.random((b, *i.shape[1:]), dtype=np.float32) for i in sess.get_inputs()}
        for _ in range(3):
            sess.run(None, feed)
        times = []
        for _ in range(max(repeats, 2 * repeats // b)):
            t0 = time.thread_time()
            sess.run(None, feed)
            times.append(time.thread_time() - t0)
        out[b] = 1000.0 * min(times) / b
    return out


def main(argv: list[str] | None = None) -> int:
    """Print one line per export folder: ms per crop at each batch, and the speed-up over batch 1."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders written by `vtrack export --dynamic-batch`")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    if any(b < 1 for b in args.batches) or 1 not in args.batches:
        p.error(f"--batches: expected positive sizes including 1, got {args.batches}")
    for folder in args.folders:
        ms = per_crop_ms(folder, args.batches, args.repeats)
        cells = ", ".join(f"batch {b}: {v:.2f} ms/crop ({ms[1] / v:.2f}x)" for b, v in ms.items())
        sys.stdout.write(f"{folder.name}: {cells}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
