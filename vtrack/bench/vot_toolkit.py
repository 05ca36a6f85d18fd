"""``vtrack bench vot-toolkit``: vtrack's reset-based VOT scores beside the real VOT toolkit's.

Writes a VOT workspace of synthetic sequences (long enough for the EAO range), runs the tracker with
vtrack's reset-based runner (``vtrack eval --protocol vot``: re-initialised 5 frames after each
failure, the toolkit's file layout ``results/<tracker>/baseline/<seq>/<seq>_001.txt``), then runs
``vot analysis`` of vot-toolkit (extra ``vot``) on those same result files with the VOT2018
``baseline`` analyses, and writes both sets of scores side by side: accuracy, failures (the
toolkit's robustness), exp-robustness and EAO. Output: ``OUT/vot_toolkit.{json,md}``, the
workspace under ``OUT/workspace`` (the toolkit's report in ``workspace/analysis``).

vot-toolkit 0.9.0 cannot run a TraX tracker in its ``supervised`` (reset-based) experiment
(docs/deploy.md), so the trajectories come from vtrack's runner; the analysis is the toolkit's own.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The VOT2018 short-term ``baseline`` experiment's analyses, one repetition (vtrack's runner is
#: deterministic on the CPU).
STACK = """title: vtrack VOT toolkit check (VOT2018 baseline analyses)
experiments:
  baseline:
    type: supervised
    repetitions: 1
    skip_initialize: 5
    analyses:
      - type: supervised_average_ar
        sensitivity: 30
      - type: supervised_eao_score
        low: 100
        high: 356
"""

#: vtrack summary score -> toolkit analysis value of the same quantity.
PAIRS = (("accuracy", "accuracy"), ("failures_mean", "failures"), ("robustness_exp", "robustness_exp"),
         ("eao", "eao"))


def write_sequences(workspace: Path, *, count: int, frames: int, size: tuple[int, int], seed: int) -> list[str]:
    """Render ``count`` synthetic sequences of ``frames`` frames into ``workspace/sequences``."""
    from tqdm import tqdm

    from vtrack.data.benchmarks import write_vot_sequence
    from vtrack.data.synthetic import SyntheticConfig, render_sequence

    cfg = SyntheticConfig(seed=seed, train=0, val=0, test=count, frames=frames, width=size[0], height=size[1])
    names = []
    for i in tqdm(range(count), desc="VOT sequences", unit="seq"):
        seq = render_sequence(cfg, "test", i)
        name = f"synth{i:02d}"
        write_vot_sequence(workspace / "sequences" / name, seq["frames"], seq["boxes"])
        names.append(name)
    return names


def toolkit_analysis(workspace: Path, identifier: str) -> dict[str, float]:
    """Run ``vot analysis`` on the workspace's results of ``identifier``; its scores."""
    from vtrack.deploy.vot import read_toolkit_analysis
    from vtrack.extras import require

    require("vot", "vot-toolkit", "vtrack bench vot-toolkit")
    cmd = [sys.executable, "-m", "vot", "analysis", "--workspace", str(workspace), "--format", "json", "--name",
           "vtrack_check", identifier]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({run.returncode}): {run.stderr[-2000:]}")
    return read_toolkit_analysis(workspace / "analysis" / "vtrack_check.json", "baseline", identifier)


def compare(ours: dict[str, Any], toolkit: dict[str, float]) -> list[dict[str, Any]]:
    """One row per score: vtrack's value, the toolkit's and their absolute difference."""
    rows = []
    for mine, theirs in PAIRS:
        a, b = ours.get(mine), toolkit.get(theirs)
        diff = abs(a - b) if isinstance(a, float) and isinstance(b, float) else None
        rows.append({"score": theirs, "vtrack": a, "vot_toolkit": b, "abs_diff": diff})
    return rows


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`compare`'s rows."""
    lines = [f"# `{result['tracker']}`: vtrack vs vot-toolkit {result['toolkit_version']} on the same results",
             "", f"{result['sequences']} synthetic sequences x {result['frames']} frames, {result['size']}; "
             f"CPU: {result['cpu']}; command: `{result['command']}`", "",
             "| score | vtrack | vot-toolkit | abs diff |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        cells = [f"{r[k]:.9f}" if isinstance(r[k], float) else "-" for k in ("vtrack", "vot_toolkit")]
        diff = f"{r['abs_diff']:.1e}" if r["abs_diff"] is not None else "-"
        lines.append(f"| {r['score']} | {cells[0]} | {cells[1]} | {diff} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vtrack bench vot-toolkit``."""
    parser.add_argument("tracker", help="static, csrt, kcf or a zoo tracker")
    parser.add_argument("--out", required=True, help="new result folder (the workspace goes inside)")
    parser.add_argument("--sequences", type=int, default=4, help="synthetic sequences")
    parser.add_argument("--frames", type=int, default=400, help="frames per sequence (> 356 for the EAO range)")
    parser.add_argument("--size", default="320x240", help="frame size WxH")
    parser.add_argument("--seed", type=int, default=2018, help="synthetic generator seed")


def run_from_args(args: argparse.Namespace) -> int:
    """Write the workspace, track with vtrack's reset-based runner, analyse with the toolkit, compare."""
    from vtrack.cli import main as vtrack_main
    from vtrack.deploy.vot import ini_identifier, write_workspace
    from vtrack.eval.evaluate import load_summary
    from vtrack.io import atomic_write_text
    from vtrack.provenance import cpu_model

    for opt in ("sequences", "frames"):
        if getattr(args, opt) < 1:
            raise ValueError(f"--{opt}: expected a positive int, got {getattr(args, opt)}")
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        if len(size) != 2 or min(size) < 32:
            raise ValueError
    except ValueError:
        raise ValueError(f"--size: expected WxH with both >= 32, e.g. 320x240, got {args.size!r}") from None
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out: {out} exists and is not empty (choose a new folder)")
    ws = out / "workspace"
    names = write_sequences(ws, count=args.sequences, frames=args.frames, size=size, seed=args.seed)
    write_workspace(ws, STACK, names)
    ident = ini_identifier(args.tracker)
    if vtrack_main(["vot-setup", "--workspace", str(ws), args.tracker]) != 0:
        raise RuntimeError("vtrack vot-setup failed")
    results = ws / "results" / ident
    if vtrack_main(["eval", "--tracker", args.tracker, "--dataset", "vot", "--root", str(ws / "sequences"),
                    "--protocol", "vot", "--eao-interval", "vot2018", "--out", str(results), "--no-progress"]) != 0:
        raise RuntimeError("vtrack eval failed")
    ours = load_summary(results)["scores"]
    toolkit = toolkit_analysis(ws, ident)
    from importlib.metadata import version

    result = {"tracker": args.tracker, "identifier": ident, "toolkit_version": version("vot-toolkit"),
              "sequences": args.sequences, "frames": args.frames, "size": args.size, "seed": args.seed,
              "cpu": cpu_model(), "command": "vtrack bench vot-toolkit " + " ".join(
                  [args.tracker, "--sequences", str(args.sequences), "--frames", str(args.frames), "--size",
                   args.size, "--seed", str(args.seed), "--out", str(out)]),
              "rows": compare(ours, toolkit)}
    atomic_write_text(out / "vot_toolkit.json", json.dumps(result, indent=1) + "\n")
    table = format_table(result)
    atomic_write_text(out / "vot_toolkit.md", table)
    print(table)
    return 0
