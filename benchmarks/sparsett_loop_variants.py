"""Does a change of SparseTT's post-processing make its tracking loop less sensitive? (issue 15)

docs/deploy.md ("Agreement"): the onnxruntime and the PyTorch SparseTT-CPU trackers compute the
same function to float rounding on identical inputs, yet their free-running boxes agree to a mean
IoU of only 0.9505 on the test split; the loop amplifies rounding. This script tracks the first
``--sequences`` sequences of a split (the **tuning set**, never val or test) twice with the zoo
weights: the PyTorch tracker (kernel backend ``cpp``, one thread) against a second runtime
(``--second ort``: the onnxruntime tracker, one thread; ``threads2``: the same PyTorch tracker with
two torch threads, where only summation orders change), both with the same post-processing
variant, and reports their mean IoU (the issue's measure) and each run's mean IoU against the
ground truth (an AO proxy; choices are made with ``vtrack ablate`` on the whole tuning set).

A variant is ``key=value,...`` with keys

* ``refine``: ``argmax`` (the release: the conv-head box of the best cell), ``nbhd`` (the
  pscore-weighted mean box of the 3x3 cells around it: sub-cell refinement) or ``soft`` (the
  softmax-weighted mean box of all cells, temperature ``tau`` in pscore units);
* ``pos_lr``: the centre moves ``pos_lr`` of the way to the prediction (1: the release);
* ``window_influence``, ``penalty_k`` and ``update.<StateUpdateConfig field>``: tracker options;
* ``crop.align``: ``exact`` or ``pixel`` (:class:`vtrack.tracking.crops.CropConfig`; the zoo entry
  ships ``pixel`` since this comparison);
* ``dense=1``: diagnosis only, the decoder's top-K self-attention made dense (all keys), which the
  weights were not trained for; with ``--second threads2`` only (an export would be cached under
  the top-K model's key).

The step below is SparseTTTracker._track with those variants; ``refine=argmax,pos_lr=1`` gives the
tracker's boxes exactly (checked on the fly against the tracker itself for the first sequence).

    python benchmarks/sparsett_loop_variants.py --root data/tune --split val --sequences 15 \
        --variant refine=nbhd --out benchmarks/results/cpu/deploy_zoo/sparsett_variants
"""
from __future__ import annotations

import argparse
import json
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

REFINES = ("argmax", "nbhd", "soft")
TEXT_KEYS = ("refine", "crop.align")  # variant values kept as strings


def parse_variant(text: str) -> dict[str, Any]:
    """``"refine=nbhd,update.size_lr=0.5"`` -> ``{"refine": "nbhd", "update.size_lr": 0.5}`` (numbers parsed)."""
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--variant: expected key=value items, got {item!r} in {text!r}")
        out[key] = value if key in TEXT_KEYS else float(value)
    if out.get("refine", "argmax") not in REFINES:
        raise ValueError(f"--variant: refine must be one of {REFINES}, got {out['refine']!r}")
    return out


def peak_box(pscore: np.ndarray, cand: np.ndarray, best: int, refine: str, tau: float) -> np.ndarray:
    """The chosen candidate box (cx, cy, w, h in crop pixels) under a ``refine`` rule."""
    if refine == "argmax":
        return cand[best]
    if refine == "nbhd":
        side = int(round(np.sqrt(len(pscore))))
        by, bx = divmod(best, side)
        ys, xs = np.arange(max(by - 1, 0), min(by + 2, side)), np.arange(max(bx - 1, 0), min(bx + 2, side))
        idx = (ys[:, None] * side + xs[None, :]).reshape(-1)
        w = np.maximum(pscore[idx], 0.0)
        return (w[:, None] * cand[idx]).sum(0) / w.sum()
    w = np.exp((pscore - pscore[best]) / tau)
    return (w[:, None] * cand).sum(0) / w.sum()


def variant_step(opts: dict[str, Any]) -> Any:
    """A ``_track`` method for SparseTTTracker applying ``opts`` (refine, pos_lr)."""
    from vtrack.tracking.base import TrackResult
    from vtrack.tracking.postprocess import update_state

    refine, tau, pos_lr = opts.get("refine", "argmax"), float(opts.get("tau", 0.05)), float(opts.get("pos_lr", 1.0))

    def _track(self: Any, image: np.ndarray) -> Any:
        cfg, state = self.cfg, self._state
        score, penalty, pscore, cand, r, crop = self.scored_candidates(image)  # the tracker's own scoring
        best = int(np.argmax(pscore))
        b = peak_box(pscore, cand, best, refine, tau)
        cx, cy, w, h = crop[0] + b[0] / r, crop[1] + b[1] / r, b[2] / r, b[3] / r
        ox, oy = state.box[0] + state.box[2] / 2, state.box[1] + state.box[3] / 2
        cx, cy = ox + pos_lr * (cx - ox), oy + pos_lr * (cy - oy)
        img_h, img_w = image.shape[:2]
        self._state = update_state(state, [cx - w / 2, cy - h / 2, w, h], float(penalty[best] * score[best]),
                                   cfg.update, (img_w, img_h))
        return TrackResult(tuple(float(v) for v in self._state.box), float(score[best]), {})

    return _track


def apply_variant(tracker: Any, opts: dict[str, Any]) -> Any:
    """``tracker`` (a SparseTTTracker, kernel backend ``cpp``) with the variant's step and options."""
    tracker.model.set_backend("cpp")
    tracker._track = types.MethodType(variant_step(opts), tracker)
    for key, value in opts.items():
        if key in ("window_influence", "penalty_k"):
            setattr(tracker.cfg, key, value)
        elif key.startswith("update."):
            setattr(tracker.cfg.update, key[len("update."):], value)
        elif key == "crop.align":
            from vtrack.tracking.crops import CropConfig

            tracker.cfg.crop = CropConfig(value)
    if opts.get("dense"):
        for m in tracker.model.modules():
            if getattr(m, "topk", None):
                m.topk = None
    return tracker


def build_pair(opts: dict[str, Any], second: str) -> tuple[Any, Any]:
    """(PyTorch cpp tracker, second tracker), both with the variant applied."""
    from vtrack.tracking.loader import build_tracker

    if opts.get("dense") and second != "threads2":
        raise ValueError("--variant dense=1 needs --second threads2 (the ONNX cache is keyed by the top-K config)")
    other = build_tracker("sparsett_cpu", runtime="onnxruntime") if second == "ort" else build_tracker("sparsett_cpu")
    return apply_variant(build_tracker("sparsett_cpu"), opts), apply_variant(other, opts)


def run_variant(text: str, seqs: list[Any], second: str) -> dict[str, Any]:
    """Track ``seqs`` with both runtimes under one variant; the summary and per-sequence rows."""
    from vtrack.eval.metrics import iou
    from vtrack.eval.runner import track_sequence
    from vtrack.tracking.loader import build_tracker

    opts = parse_variant(text)
    first, other = build_pair(opts, second)
    t0, rows, agree = time.process_time(), [], []
    for i, seq in enumerate(seqs):
        torch.set_num_threads(1)
        a = track_sequence(first, seq).boxes[1:]
        if i == 0 and text in ("", "refine=argmax"):  # the variant step is the tracker's own step
            plain = build_tracker("sparsett_cpu")
            plain.model.set_backend("cpp")
            assert np.array_equal(track_sequence(plain, seq).boxes[1:], a), "variant step differs from the tracker"
        torch.set_num_threads(2 if second == "threads2" else 1)
        b = track_sequence(other, seq).boxes[1:]
        torch.set_num_threads(1)
        gt = np.asarray(seq.boxes, dtype=np.float64)[1:]
        ag = iou(a, b)
        agree.append(ag)
        rows.append({"sequence": seq.name, "frames": int(ag.size), "agreement": float(np.nanmean(ag)),
                     "first_below_0.99": int(np.argmax(ag < 0.99)) if (ag < 0.99).any() else None,
                     "iou_gt_first": float(np.nanmean(iou(a, gt))), "iou_gt_second": float(np.nanmean(iou(b, gt)))})
    v = np.concatenate(agree)
    return {"variant": text, "second": second, "sequences": len(seqs), "frames": int(v.size),
            "agreement": float(np.nanmean(v)), "frames_below_0.99": int((v < 0.99).sum()),
            "sequences_below_0.99": sum(r["agreement"] < 0.99 for r in rows),
            "iou_gt_first": float(np.mean([r["iou_gt_first"] for r in rows])),
            "iou_gt_second": float(np.mean([r["iou_gt_second"] for r in rows])),
            "process_cpu_s": time.process_time() - t0, "rows": rows}


def loop_gain(text: str, seqs: list[Any], eps: float = 0.01) -> dict[str, Any]:
    """Per-frame gain of the loop: move the state's centre by ``eps`` px (x and y) before a step and
    measure how far the next centre moves, over ``eps * sqrt(2)``; tracked free with the PyTorch
    ``cpp`` tracker under the variant. Gain 0: the box depends on the image only; above 1: the loop
    amplifies a difference of state (chaotic when that holds on average)."""
    import copy

    from vtrack.eval.runner import init_info
    from vtrack.tracking.loader import build_tracker

    tracker = apply_variant(build_tracker("sparsett_cpu"), parse_variant(text))
    torch.set_num_threads(1)
    gains = []
    for seq in seqs:
        tracker.initialize(seq.frame(0), np.asarray(seq.boxes[0], dtype=np.float64), init_info(seq))
        for i in range(1, len(seq)):
            image, state = seq.frame(i), tracker._state
            moved = copy.deepcopy(state)
            moved.box[:2] += eps
            tracker._state = moved
            a = tracker.track(image).box
            tracker._state = state
            b = tracker.track(image).box
            da = np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)
            gains.append(da / (eps * np.sqrt(2)))
    g = np.asarray(gains)
    pos = g[g > 0]
    return {"variant": text, "frames": int(g.size), "median_gain": float(np.median(g)),
            "geomean_gain": float(np.exp(np.mean(np.log(pos)))) if pos.size else 0.0,
            "share_above_1": float((g > 1).mean()), "share_above_10": float((g > 10).mean())}


def topk_keep(logits: np.ndarray, k: int, quantum: float = 0.0) -> np.ndarray:
    """Boolean mask of the ``k`` kept keys per row (largest first, ties to the lower index, like the
    kernels), selected on the logits floored to multiples of ``quantum`` (0: the logits as they are)."""
    y = np.floor(logits / quantum) * quantum if quantum else logits
    order = np.argsort(-y, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(logits.shape, bool)
    np.put_along_axis(keep, order, True, -1)
    return keep


def topk_flip_rates(noise: float, quanta: tuple[float, ...], rows: int = 20000, keys: int = 256, k: int = 24,
                    seed: int = 0) -> dict[float, float]:
    """Share of rows whose kept set changes when Gaussian logits (sd 4) move by up to ``noise``, for a
    selection on the raw logits (quantum 0) and on logits rounded to each quantum: rounding before a
    deterministic top-K moves the boundary of the selection, not the chance of straddling it."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, keys)) * 4.0 + 10.0
    b = a + rng.uniform(-noise, noise, a.shape)
    return {q: float((topk_keep(a, k, q) != topk_keep(b, k, q)).any(-1).mean()) for q in quanta}


def main() -> None:
    """Run every ``--variant``; write ``OUT/<variant>-<second>.json`` and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/tune")
    parser.add_argument("--split", default="val")
    parser.add_argument("--sequences", type=int, default=15)
    parser.add_argument("--variant", action="append", default=[], help="key=value,... (repeatable)")
    parser.add_argument("--second", choices=("ort", "threads2"), default="ort")
    parser.add_argument("--gain", action="store_true", help="measure the loop gain instead (PyTorch cpp only)")
    parser.add_argument("--topk-rounding", action="store_true",
                        help="only simulate top-K flips with and without rounding the logits (no tracking)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from vtrack.data import load_dataset
    from vtrack.io import atomic_write_text, safe_name

    if args.topk_rounding:
        res = {str(noise): topk_flip_rates(noise, (0.0, 1e-3, 1e-2, 1e-1)) for noise in (2e-4, 2e-5)}
        atomic_write_text(args.out / "topk_rounding.json", json.dumps(res, indent=1))
        for noise, rates in res.items():
            print(f"logit noise {noise}: rows with another kept set " + ", ".join(f"quantum {q:g}: {r:.2e}" for q, r in rates.items()))
        return
    if "test" in args.split:
        raise ValueError("--split: post-processing variants are compared on the tuning set, never on test")
    seqs = list(load_dataset("synthetic", args.root, args.split))[: args.sequences]
    for text in args.variant or ["refine=argmax"]:
        if args.gain:
            res = loop_gain(text, seqs)
            atomic_write_text(args.out / f"gain-{safe_name(text.replace('=', '-'))}.json", json.dumps(res, indent=1))
            print(f"{text}: loop gain over {res['frames']} frames: median {res['median_gain']:.3f}, geometric "
                  f"mean {res['geomean_gain']:.3f}, above 1 on {100 * res['share_above_1']:.0f} %, above 10 on "
                  f"{100 * res['share_above_10']:.0f} %", flush=True)
            continue
        res = run_variant(text, seqs, args.second)
        res.update(root=args.root, split=args.split, torch=torch.__version__)
        atomic_write_text(args.out / f"{safe_name(text.replace('=', '-'))}-{args.second}.json", json.dumps(res, indent=1))
        print(f"{text} vs {args.second}: agreement {res['agreement']:.4f} ({res['frames_below_0.99']} of "
              f"{res['frames']} frames, {res['sequences_below_0.99']} of {res['sequences']} sequences below 0.99); "
              f"IoU to ground truth {res['iou_gt_first']:.4f} / {res['iou_gt_second']:.4f}", flush=True)


if __name__ == "__main__":
    main()
