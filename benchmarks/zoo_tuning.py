"""One table of a zoo tracker's tracker-option sweep: the tuning-set and val AO of every point.

    python benchmarks/zoo_tuning.py duml_cpu --tune runs/zoo_tuning/duml_cpu/tune \\
        --val runs/zoo_tuning/duml_cpu/val --chosen 'tracker.search_size=127' \\
        --out benchmarks/results/cpu/zoo_tuning

Reads the ``ablation.json`` that ``vtrack ablate --zoo NAME --grid tracker.KEY=... --protocol got10k``
wrote for the tuning set (``--tune``) and for the benchmark's val split (``--val``); each option
repeats (``--tune A --tune B`` merges two sweeps, a point in both is an error). Writes
``NAME.json`` and ``NAME.md``: one row per point, in the order the points were run, with the
tuning-set hash and size. The point is chosen by the tuning-set AO alone (``--chosen`` names it;
the table marks it); the test split is never part of a sweep.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vtrack.io import atomic_write_text, read_json


def _rows(folders: list[Path]) -> dict[str, Any]:
    """The points of one or more sweeps (``ablate --out`` folders), in the order they were run."""
    out: dict[str, Any] = {}
    for folder in folders:
        rows = read_json(folder / "ablation.json", what="ablation.json")
        for name, row in rows.items():
            if name in out:
                raise ValueError(f"--tune/--val: point {name!r} is in two sweeps (the second: {folder})")
            out[name] = row["got10k"]
    return out


def _set(root: Path) -> dict[str, Any]:
    manifest = read_json(root / "manifest.json", what="benchmark manifest")
    stats = manifest.get("stats", {}).get("val", {})
    return {"root": str(root), "hash": manifest.get("hash"), "params": manifest.get("params"),
            "sequences": stats.get("sequences"), "frames": stats.get("frames")}


def main(argv: list[str] | None = None) -> int:
    """Merge the two sweeps and write NAME.json / NAME.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="zoo entry")
    p.add_argument("--tune", required=True, type=Path, action="append",
                   help="ablate --out folder of the tuning set (repeatable: the points of several sweeps)")
    p.add_argument("--val", required=True, type=Path, action="append",
                   help="ablate --out folder of the val split (repeatable)")
    p.add_argument("--tune-root", type=Path, default=Path("data/tune"))
    p.add_argument("--val-root", type=Path, default=Path("data/synthetic"))
    p.add_argument("--chosen", required=True, help="the point chosen by tuning-set AO")
    p.add_argument("--note", default="", help="a line under the table (CPU, commands)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu/zoo_tuning"))
    args = p.parse_args(argv)
    try:
        tune, val = _rows(args.tune), _rows(args.val)
    except ValueError as err:
        p.error(str(err))
    if args.chosen not in tune:
        p.error(f"--chosen: {args.chosen!r} is not a point of {[str(t) for t in args.tune]} ({sorted(tune)})")
    points = [{"point": name, "tune": tune[name], "val": val.get(name)} for name in tune]
    best = max(points, key=lambda r: r["tune"]["ao"])["point"]
    if best != args.chosen:
        p.error(f"--chosen: the best tuning-set AO is {best!r}, not {args.chosen!r}")
    report = {"entry": args.name, "tuning_set": _set(args.tune_root), "val_split": _set(args.val_root),
              "chosen": args.chosen, "points": points}
    atomic_write_text(args.out / f"{args.name}.json", json.dumps(report, indent=2) + "\n")
    lines = [f"# {args.name}: tracker options tuned on a tuning set, not on test", "",
             f"Tuning set `{args.tune_root}` ({report['tuning_set']['sequences']} sequences, "
             f"{report['tuning_set']['frames']} frames, hash {report['tuning_set']['hash']}); val split "
             f"`{args.val_root}` ({report['val_split']['sequences']} sequences). AO and SR0.5 x100 (GOT-10k, "
             "absent-target frames left out). The point with the best tuning-set AO is chosen (**bold**).", "",
             "| point | tuning AO | tuning SR0.5 | val AO | val SR0.5 |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in points:
        name = f"**{r['point']}**" if r["point"] == args.chosen else r["point"]
        v = r["val"] or {}
        lines.append(f"| {name} | {100 * r['tune']['ao']:.1f} | {100 * r['tune']['sr50']:.1f} | "
                     + (f"{100 * v['ao']:.1f} | {100 * v['sr50']:.1f} |" if v else "- | - |"))
    if args.note:
        lines += ["", args.note]
    atomic_write_text(args.out / f"{args.name}.md", "\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
