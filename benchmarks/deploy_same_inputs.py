"""onnxruntime against PyTorch on identical inputs, frame by frame (issue 15, docs/deploy.md "Agreement").

The PyTorch tracker (kernel backend ``cpp``) tracks every sequence of the split free. At every
frame its engine's inputs (the same crop tensors, the same template outputs) are also fed to the
onnxruntime engine of the same weights, and for each output the max abs difference is recorded; an
onnxruntime copy of the PyTorch tracker's state gives the per-step box and the argmax cell of the
raw score map is compared. A separate onnxruntime tracker tracks free beside it (the issue's
measure). With ``--topk-gaps``, every top-K attention call of the PyTorch network also records the
gap between the K-th and (K+1)-th largest logit of each row (float64 from the layer's q and k):
where that gap is below float32 resolution the two runtimes may keep different key sets.

    python benchmarks/deploy_same_inputs.py sparsett_cpu --topk-gaps --out benchmarks/results/cpu/deploy_zoo/same_inputs
    python benchmarks/deploy_same_inputs.py vlt_scar_cpu --out benchmarks/results/cpu/deploy_zoo/same_inputs

One thread (torch and onnxruntime). Writes ``OUT/<tracker>.json`` (a summary and one row per frame).
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class SameInputs:
    """Engine that runs the PyTorch engine, feeds the same inputs to onnxruntime and records the gaps."""

    def __init__(self, torch_engine: Any, ort_engine: Any) -> None:
        self.a, self.b = torch_engine, ort_engine
        self.last: dict[str, Any] = {}

    def run(self, branch: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """PyTorch's outputs; the max abs difference of onnxruntime's on the same inputs in ``last``."""
        oa, ob = self.a.run(branch, **inputs), self.b.run(branch, **inputs)
        diff = {k: float((oa[k].double() - ob[k].double()).abs().max()) for k in oa if oa[k].numel()}
        self.last[branch] = {"diff": diff, "score": (oa.get("score"), ob.get("score"))}
        return oa


def topk_gap_recorder() -> list[tuple[float, int, int]]:
    """Wrap vtrack.models.layers.transformer's top-K attention: per call (smallest K-th gap, rows with a gap
    < 1e-5, rows with an exact float32 tie at the K-th logit). Returns the list it appends to."""
    import vtrack.models.layers.transformer as transformer

    calls: list[tuple[float, int, int]] = []
    inner = transformer.kernels.topk_attention

    def recording(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk: int, **kw: Any) -> torch.Tensor:
        top = torch.sort(torch.einsum("bhnd,bhmd->bhnm", q.double(), k.double()), dim=-1, descending=True).values
        gap = top[..., topk - 1] - top[..., topk]
        top32 = torch.sort(torch.einsum("bhnd,bhmd->bhnm", q, k), dim=-1, descending=True).values
        calls.append((float(gap.min()), int((gap < 1e-5).sum()), int((top32[..., topk - 1] == top32[..., topk]).sum())))
        return inner(q, k, v, topk, **kw)

    transformer.kernels.topk_attention = recording
    return calls


def frame_row(pt: Any, ort: Any, free: Any, same: SameInputs, img: np.ndarray, calls: list) -> dict[str, Any]:
    """One frame: per-step box of onnxruntime from the PyTorch state, then both trackers' own steps."""
    from vtrack.eval.metrics import iou

    twin = copy.deepcopy(pt, memo={id(pt.engine): ort, id(pt.model): pt.model})
    step = twin.track(img).box
    calls.clear()
    box = pt.track(img).box
    free_box = free.track(img).box
    sa, sb = (s.double().reshape(-1) for s in same.last["search"]["score"])
    row = {"out_diff": same.last["search"]["diff"], "argmax_same": int(sa.argmax()) == int(sb.argmax()),
           "step_iou": float(iou(np.asarray([box]), np.asarray([step]))[0]),
           "step_box_diff": float(np.abs(np.subtract(box, step)).max()),
           "free_iou": float(iou(np.asarray([box]), np.asarray([free_box]))[0])}
    if calls:
        row["topk_min_gap"] = min(c[0] for c in calls)
        row["topk_rows_gap_below_1e-5"] = sum(c[1] for c in calls)
        row["topk_exact_ties"] = sum(c[2] for c in calls)
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and maxima over frames; with top-K gaps, those of the frames where an output of the
    two runtimes differs by more than 1e-3 (boxes in crop pixels, scores in [0, 1])."""
    diff = {k: [r["out_diff"][k] for r in rows] for k in rows[0]["out_diff"]}
    step = np.array([r["step_iou"] for r in rows])
    out = {"frames": len(rows), "iou_free": float(np.mean([r["free_iou"] for r in rows])),
           "iou_step": float(step.mean()), "iou_step_min": float(step.min()),
           "argmax_differs": sum(not r["argmax_same"] for r in rows),
           "out_diff": {k: {"median": float(np.median(v)), "q99": float(np.quantile(v, 0.99)), "max": float(max(v))}
                        for k, v in diff.items()},
           "step_box_diff_max": float(max(r["step_box_diff"] for r in rows))}
    if "topk_min_gap" in rows[0]:
        kicked = [r for r in rows if max(r["out_diff"].values()) > 1e-3]  # far above float rounding
        out["topk"] = {"frames_output_diff_above_1e-3": len(kicked),
                       "of_them_with_a_gap_below_1e-5": sum(r["topk_rows_gap_below_1e-5"] > 0 for r in kicked),
                       "frames_with_a_gap_below_1e-5": sum(r["topk_rows_gap_below_1e-5"] > 0 for r in rows),
                       "frames_with_exact_ties": sum(r["topk_exact_ties"] > 0 for r in rows),
                       "kicked_min_gap_max": max((r["topk_min_gap"] for r in kicked), default=None)}
    return out


def main() -> None:
    """Run one tracker over the split and write OUT/<tracker>.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracker", help="zoo name")
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sequences", type=int, default=None, help="only the first N sequences (default: all)")
    parser.add_argument("--topk-gaps", action="store_true", help="record the K-th logit gaps of top-K attention")
    parser.add_argument("--out", required=True, help="result folder")
    args = parser.parse_args()
    from vtrack.bench.common import environment
    from vtrack.bench.deploy import _spec, export_figures
    from vtrack.data import load_dataset
    from vtrack.eval.runner import init_info
    from vtrack.deploy import use_onnxruntime
    from vtrack.io import atomic_write_text
    from vtrack.models import get_family

    torch.set_num_threads(1)
    label, cfg, model, weights = _spec(args.tracker, None, [])
    fam = get_family(cfg["model"]["name"])
    pt_model = copy.deepcopy(model)
    pt_model.set_backend("cpp")
    pt = fam.build_tracker(pt_model.eval(), cfg, "cpu")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vtrack-same-") as tmp:
        export_figures(pt.engine, Path(tmp) / "onnx", {"model": cfg["model"]["name"], "tracker": label})
        free = use_onnxruntime(fam.build_tracker(model, cfg, "cpu"), cfg, onnx_dir=Path(tmp) / "onnx", threads=1)
        calls = topk_gap_recorder() if args.topk_gaps else []  # after the export, which traces the model
        same = SameInputs(pt.engine, free.engine)
        pt.engine = same
        for seq in list(load_dataset("synthetic", args.root, args.split))[: args.sequences]:
            box0 = tuple(float(v) for v in seq.boxes[0])
            info = init_info(seq)  # as in the evaluation: VLT gets the sequence's description
            pt.initialize(seq.frame(0), box0, info)
            free.initialize(seq.frame(0), box0, info)
            template = same.last.get("template", {}).get("diff", {})
            for i in range(1, len(seq)):
                rows.append({"sequence": seq.name, "frame": i, "template_diff": template,
                             **frame_row(pt, free.engine, free, same, seq.frame(i), calls)})
    result = {"tracker": label, "weights": weights, "summary": summarise(rows), "environment": environment("cpu"),
              "rows": rows}
    out = Path(args.out) / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
