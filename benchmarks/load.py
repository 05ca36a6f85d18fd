"""Load benchmark (issue 16): ``vtrack eval --workers 2`` on a loaded machine loses and mixes nothing.

Three ``vtrack eval`` runs of one tracker over one split, started together (real CLI processes):

* ``workers1``: ``--workers 1``, the reference;
* ``workers2``: ``--workers 2`` (two worker processes writing into one folder);
* ``pair``: two evals started into the same ``--out``: the first runs, the second must stop at
  once with a clear error (the folder lock, naming the first one's pid) and write nothing.

Run it next to a training (``--train CONFIG`` starts one, ``vtrack train CONFIG``, stopped when
the evals end; or run it while trainings of your own run). Counts: sequences expected, written
complete by ``workers2``, byte-identical to ``workers1`` (result files; the ``*_time.txt``
timing and summary.json's ``fps`` aside), and the same for the pair's first eval. Every eval
runs with ``OMP_NUM_THREADS=1`` (the workers use one thread each), so the runs compute the same
floating-point operations in the same order.

    python benchmarks/load.py --tracker vlt_scar_cpu --root data/synthetic --split test \\
        --out benchmarks/results/cpu/load.json
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from faults import cpu_model, eval_differences, listing  # noqa: E402  (same comparisons)

ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
LOCK = ".vtrack-eval.lock"


def vtrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "vtrack.cli", *args]


def eval_argv(a: argparse.Namespace, out: Path, workers: int) -> list[str]:
    return vtrack("eval", "--tracker", a.tracker, "--dataset", a.dataset, "--root", str(a.root), "--split", a.split,
                  "--out", str(out), "--workers", str(workers), "--no-progress")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)


def machine_load() -> dict[str, Any]:
    """Load average and the training processes running now (any user's ``vtrack ... train``)."""
    ps = subprocess.run(["ps", "-eo", "pid,ni,pcpu,args"], capture_output=True, text=True, check=False).stdout
    trainings = [" ".join(line.split()[:3] + line.split()[-4:]) for line in ps.splitlines()[1:]
                 if "vtrack" in line and " train " in line and "load.py" not in line]
    return {"loadavg": os.getloadavg(), "trainings": trainings}


def _layout(dataset: str) -> Any:
    """The result layout ``vtrack eval`` uses for ``dataset`` (its default protocol)."""
    from vtrack.eval.commands import DEFAULT_PROTOCOL
    from vtrack.eval.runner import get_layout

    return get_layout(DEFAULT_PROTOCOL.get(dataset.lower(), "ope"))


def complete(folder: Path, frames: dict[str, int], dataset: str) -> int:
    """Sequences whose result files exist and hold one row per frame (the runner's own test)."""
    layout = _layout(dataset)
    return sum(layout.is_done(folder, name, 1, count) for name, count in frames.items())


def identical(a: Path, b: Path, names: list[str], dataset: str) -> int:
    """Sequences whose box files are byte-equal in both folders (the time files aside)."""
    layout = _layout(dataset)

    def boxes(folder: Path, name: str) -> list[bytes] | None:
        files = [p for p in layout.files(folder, name, 1) if not p.name.endswith("_time.txt")]
        return [p.read_bytes() for p in files] if all(p.is_file() for p in files) else None

    return sum(boxes(a, n) is not None and boxes(a, n) == boxes(b, n) for n in names)


def counts(report: dict[str, Any], work: Path, frames: dict[str, int], dataset: str) -> None:
    """Fill the counts of ``report`` from the result folders in ``work``."""
    w1, w2, pair = work / "workers1", work / "workers2", work / "pair"
    names = sorted(frames)
    report["workers2"] = {"expected": len(frames), "written": complete(w2, frames, dataset),
                          "identical": identical(w1, w2, names, dataset),
                          "reference_written": complete(w1, frames, dataset), "differences": eval_differences(w2, w1)}
    report["pair"]["first"] = {"expected": len(frames), "written": complete(pair, frames, dataset),
                               "identical": identical(w1, pair, names, dataset),
                               "differences": eval_differences(pair, w1)}
    report["passed"] = (all(c == 0 for c in report["exit_codes"].values()) and report["pair"]["second_refused_clearly"]
                        and report["workers2"]["identical"] == len(frames) == report["pair"]["first"]["identical"]
                        and not report["workers2"]["differences"] and not report["pair"]["first"]["differences"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracker", default="vlt_scar_cpu", help="tracker to evaluate (a zoo name, or static/csrt/kcf)")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--root", type=Path, default=ROOT / "data" / "synthetic")
    p.add_argument("--split", default="test")
    p.add_argument("--train", help="also run `vtrack train TRAIN` next to the evals (stopped when they end)")
    p.add_argument("--work", type=Path, default=Path("/tmp/vtrack_load"), help="scratch folder (must not exist)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu" / "load.json")
    p.add_argument("--note", default="", help="machine load note for the report")
    p.add_argument("--recount", action="store_true",
                   help="only recount the result folders of an earlier run in --work (its --out JSON is updated)")
    a = p.parse_args(argv)
    from vtrack.data import load_dataset

    frames = {s.name: len(s) for s in load_dataset(a.dataset, str(a.root), a.split)}
    if a.recount:
        report = json.loads(a.out.read_text())
        counts(report, a.work, frames, a.dataset)
        report["recounted"] = "counts recomputed from the result folders with `--recount`"
        a.out.write_text(json.dumps(report, indent=1) + "\n")
        a.out.with_suffix(".md").write_text(markdown(report))
        print(markdown(report))
        return 0 if report["passed"] else 1
    a.work.mkdir(parents=True)
    t0 = time.time()
    report: dict[str, Any] = {
        "command": "python benchmarks/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(), "cores": os.cpu_count(), "note": a.note, "tracker": a.tracker,
        "dataset": f"{a.dataset} {a.split} ({len(frames)} sequences, {sum(frames.values())} frames)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_at_start": machine_load(),
    }
    train = start(vtrack("train", a.train, "--out-dir", str(a.work / "train")), a.work / "train.log") if a.train else None
    w1, w2, pair = a.work / "workers1", a.work / "workers2", a.work / "pair"
    runs = {"workers1": start(eval_argv(a, w1, 1), a.work / "workers1.log"),
            "workers2": start(eval_argv(a, w2, 2), a.work / "workers2.log"),
            "pair_first": start(eval_argv(a, pair, 1), a.work / "pair_first.log")}
    while not (pair / LOCK).exists() and runs["pair_first"].poll() is None:
        time.sleep(0.2)
    second = subprocess.run(eval_argv(a, pair, 1), capture_output=True, text=True, env=ENV, cwd=ROOT)
    after_second = listing(pair)
    codes = {k: r.wait() for k, r in runs.items()}
    report["load_at_end"] = machine_load()
    if train is not None:
        train.send_signal(signal.SIGTERM)  # the training this benchmark started
        train.wait()
    err = second.stderr.strip().splitlines()
    report["exit_codes"] = codes
    report["pair"] = {
        "second_exit_code": second.returncode, "second_error": err[-1] if err else "",
        "second_refused_clearly": second.returncode != 0 and "in use by another vtrack eval" in second.stderr
        and f"pid {runs['pair_first'].pid}" in second.stderr,
        "files_while_second_ran": after_second,
    }
    report["wall_seconds"] = round(time.time() - t0, 1)
    counts(report, a.work, frames, a.dataset)
    ok = report["passed"]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0 if ok else 1


def markdown(r: dict[str, Any]) -> str:
    """The counts as a markdown page."""
    w2, first, pair = r["workers2"], r["pair"]["first"], r["pair"]
    return "\n".join([
        "# Load benchmark (issue 16): `vtrack eval --workers 2` on a loaded machine",
        "",
        f"`{r['command']}` on {r['cpu']} ({r['cores']} cores), {r['date']}, {r['wall_seconds']:.0f} s wall. "
        f"Tracker {r['tracker']}, {r['dataset']}. {r['note']}",
        "",
        f"Load at start: load average {', '.join(f'{x:.1f}' for x in r['load_at_start']['loadavg'])}; "
        f"training processes: {len(r['load_at_start']['trainings'])} "
        f"({'; '.join(r['load_at_start']['trainings'])}). At the end: load average "
        f"{', '.join(f'{x:.1f}' for x in r['load_at_end']['loadavg'])}, {len(r['load_at_end']['trainings'])} trainings.",
        "",
        "| run | sequences expected | written complete | identical to --workers 1 | other differences |",
        "|---|---|---|---|---|",
        f"| eval --workers 2 | {w2['expected']} | {w2['written']} | {w2['identical']} | {len(w2['differences'])} |",
        f"| first of two evals into one --out | {first['expected']} | {first['written']} | {first['identical']} | "
        f"{len(first['differences'])} |",
        "",
        "Identical: the sequence's box files byte-equal to `--workers 1`'s. Other differences: against "
        "`--workers 1`, files only one folder has (a temporary file, a lock) or that differ apart from the timing "
        "(`*_time.txt`, `fps` in summary.json, which is compared too).",
        "",
        f"Second eval into the same --out: exit code {pair['second_exit_code']}, clear refusal: "
        f"{pair['second_refused_clearly']}: `{pair['second_error']}`",
        "",
        f"Passed: {r['passed']}. Exit codes: {r['exit_codes']}.",
        "",
    ] + ([f"Note: {r['recounted']} (the first count looked for OPE file names in this GOT-10k-layout folder "
          "and found none; the runs themselves were not repeated)."] if r.get("recounted") else []) + [""])


if __name__ == "__main__":
    sys.exit(main())
