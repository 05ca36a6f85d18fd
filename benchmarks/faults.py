"""Fault benchmark (issue 16): SIGKILL ``vtrack train`` and ``vtrack eval`` at random moments,
resume, and check that nothing is lost, mixed or left behind.

* **train**: a tiny OSTrack training (its own synthetic dataset of 2 training and 3 test sequences of 10 frames, 2 epochs of 6 steps,
  a step checkpoint every 2 steps, ``keep_checkpoints: 2``) is killed, then resumed the way a
  user would: ``--resume DIR`` when a checkpoint exists, else ``--overwrite`` when the folder is
  not empty, else the same command. Survived = the folder holds exactly the files of an
  uninterrupted run (no ``.tmp``, lock or extra checkpoint), every checkpoint equals the
  uninterrupted run's bit for bit (weights, optimizer, scheduler, RNG, step, everything),
  ``config.yaml`` is byte-equal and ``log.csv`` equals it except the ``sec_per_step`` timing.
* **eval**: ``vtrack eval`` of the trained tracker is killed, then run again (it resumes).
  Survived = the same files as an uninterrupted run, byte-equal except the timing
  (``*_time.txt``, the ``fps`` values of summary.json), and no ``.tmp`` or lock file left.

Kill moments (half of the tries each, alternating):

* ``cpu``: the run is SIGKILLed when its CPU time reaches a uniform random fraction (0-97 %) of
  the uninterrupted run's CPU time (an ``ITIMER_PROF`` timer; CPU time, not wall time, so the
  moments spread over the whole run whatever the machine's load). A run's CPU time varies on a
  loaded machine; when a run finishes before its moment, the moment is drawn again within the
  CPU time that run used and the try starts afresh (``redraws``, at most 5);
* ``write``: the run SIGKILLs itself at one of its file commits (``os.replace``, the rename of
  every atomic write: checkpoints, config, result files, manifest, summary), drawn uniformly
  among the commits the uninterrupted run made, in one of three phases: ``before`` (temporary
  file complete, not renamed), ``half`` (temporary file cut to half its size, as if killed while
  writing), ``after`` (right after the rename, before anything else).

``--sweep`` adds one try at every commit of the uninterrupted run in every phase.

Each run is a ``fork`` of this process that calls ``vtrack.cli.main`` (the CLI's code path, in
its own process and process group, killed with a real SIGKILL); forking skips the seconds of
``import torch`` per run, which dominate on a loaded 2-core machine. Tries run ``--jobs`` at a
time. Results are counts: tries, killed, survived, lost.

    python benchmarks/faults.py --tries 20 --jobs 4 --out benchmarks/results/cpu/faults.json
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHASES = ("before", "half", "after")


def cpu_model() -> str:
    """The CPU's model name (``lscpu``), else the platform's processor string."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------
# runs: forked vtrack.cli.main, with an optional kill at a file commit
# ---------------------------------------------------------------------------------------------
def _install_commit_hook(events: Path | None, kill_at: int | None, phase: str) -> None:
    """In a forked run: count ``os.replace`` calls (every atomic write's commit), log them to
    ``events`` and SIGKILL this process at commit number ``kill_at`` in ``phase``."""
    real = os.replace
    count = [0]
    log_fd = os.open(events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if events else None

    def replace(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        count[0] += 1
        if log_fd is not None:
            os.write(log_fd, f"{count[0]}\t{os.path.basename(os.fspath(dst))}\n".encode())
        if count[0] == kill_at:
            if phase == "half":
                os.truncate(src, os.path.getsize(src) // 2)
            if phase == "after":
                real(src, dst, *a, **kw)
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *a, **kw)

    os.replace = replace  # type: ignore[assignment]


def _kill_at_cpu_time(seconds: float) -> None:
    """In a forked run: SIGKILL this process once it has used ``seconds`` of CPU time
    (``ITIMER_PROF`` counts user + system time; its SIGPROF handler sends the SIGKILL)."""
    signal.signal(signal.SIGPROF, lambda *_: os.kill(os.getpid(), signal.SIGKILL))
    signal.setitimer(signal.ITIMER_PROF, max(seconds, 1e-6))


def spawn(argv: list[str], log: Path, *, events: Path | None = None, kill_at: int | None = None,
          phase: str = "before", kill_cpu: float | None = None) -> int:
    """Fork a process (own session and process group) that runs ``vtrack <argv>``; its stdout
    and stderr go to ``log``; it SIGKILLs itself at commit ``kill_at`` (in ``phase``) or after
    ``kill_cpu`` CPU seconds. Returns the pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    rc = 1
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        if events is not None or kill_at is not None:
            _install_commit_hook(events, kill_at, phase)
        from vtrack.cli import main

        if kill_cpu is not None:
            _kill_at_cpu_time(kill_cpu)
        rc = main(argv) or 0
    except SystemExit as err:
        rc = err.code if isinstance(err.code, int) else 1
    except BaseException:  # noqa: BLE001 - the run's error goes to its log
        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def run_quiet(argv: list[str], log: Path, events: Path | None = None) -> float:
    """Run ``vtrack <argv>`` to the end (forked); returns its CPU seconds; raises on failure."""
    pid = spawn(argv, log, events=events)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"vtrack {' '.join(argv)} failed:\n{log.read_text()[-3000:]}")
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------------------------
def listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (hidden ones too), relative, sorted."""
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.rglob("*"))


def stray(folder: Path, reference: list[str]) -> list[str]:
    """Entries of ``folder`` an uninterrupted run does not leave (temporary files, locks, extra checkpoints)."""
    return sorted(set(listing(folder)) - set(reference))


def _bytes(t: Any) -> Any:
    """A tensor's bytes (so -0.0 differs from 0.0 and equal NaNs are equal)."""
    import torch

    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def equal_objects(x: Any, y: Any) -> bool:
    """Deep equality with tensors compared bit for bit (dtype, shape and values)."""
    import torch

    if isinstance(x, torch.Tensor):
        return (isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape
                and torch.equal(_bytes(x), _bytes(y)))
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(equal_objects(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return (isinstance(y, (list, tuple)) and len(x) == len(y)
                and all(equal_objects(u, w) for u, w in zip(x, y)))
    return type(x) is type(y) and x == y


def log_rows(path: Path) -> list[dict[str, str]] | None:
    """``log.csv`` without its timing column; None when missing or malformed."""
    if not path.is_file():
        return None
    text = path.read_text()
    if text and not text.endswith("\n"):
        return None
    rows = list(csv.DictReader(io.StringIO(text)))
    if any(None in r or None in r.values() for r in rows):
        return None
    for r in rows:
        r.pop("sec_per_step", None)
    return rows


def train_differences(out: Path, ref: Path) -> list[str]:
    """What differs between a resumed training folder and the uninterrupted one (empty: equal)."""
    import torch

    diffs = []
    if listing(out) != listing(ref):
        diffs.append(f"files: extra {stray(out, listing(ref))}, missing {sorted(set(listing(ref)) - set(listing(out)))}")
    for p in sorted(ref.glob("checkpoint_*.pth")):
        q = out / p.name
        if not q.is_file():
            continue
        a = torch.load(p, map_location="cpu", weights_only=True)
        b = torch.load(q, map_location="cpu", weights_only=True)
        keys = sorted(k for k in set(a) | set(b) if not equal_objects(a.get(k), b.get(k)))
        if keys:
            diffs.append(f"{p.name}: {keys} differ")
    if (ref / "config.yaml").read_bytes() != ((out / "config.yaml").read_bytes() if (out / "config.yaml").is_file() else b""):
        diffs.append("config.yaml differs")
    if log_rows(out / "log.csv") != log_rows(ref / "log.csv"):
        diffs.append("log.csv differs (timing column aside)")
    return diffs


def result_files(folder: Path) -> dict[str, bytes]:
    """Every file of an eval folder, the timing aside (``*_time.txt`` contents, ``fps`` in summary.json)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(folder))
        if p.name.endswith("_time.txt"):
            out[rel] = b"(timing)"
        elif p.name == "summary.json":
            out[rel] = json.dumps(_drop_fps(json.loads(p.read_text())), sort_keys=True).encode()
        else:
            out[rel] = p.read_bytes()
    return out


def _drop_fps(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_fps(v) for k, v in obj.items() if k != "fps"}
    if isinstance(obj, list):
        return [_drop_fps(v) for v in obj]
    return obj


def eval_differences(out: Path, ref: Path) -> list[str]:
    """What differs between a resumed eval folder and the uninterrupted one (empty: equal)."""
    a, b = result_files(out), result_files(ref)
    diffs = []
    if listing(out) != listing(ref):
        diffs.append(f"files: extra {stray(out, listing(ref))}, missing {sorted(set(listing(ref)) - set(listing(out)))}")
    diffs += [f"{k} differs" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return diffs


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------
@dataclass
class Setup:
    """The tiny dataset, config and uninterrupted reference runs."""

    work: Path
    data: Path
    cfg: Path
    ref_train: Path
    ref_eval: Path
    cpu: dict[str, float] = field(default_factory=dict)
    commits: dict[str, list[str]] = field(default_factory=dict)

    def train_argv(self, out: Path, *extra: str) -> list[str]:
        return ["train", str(self.cfg), "--out-dir", str(out), *extra]

    def eval_argv(self, out: Path) -> list[str]:
        return ["eval", "--tracker", "ostrack", "--config", str(self.cfg), "--checkpoint",
                str(self.ref_train / "checkpoint_e0002.pth"), "--dataset", "synthetic", "--root", str(self.data),
                "--split", "test", "--out", str(out), "--workers", "1", "--no-progress"]


def tiny_config(data: Path) -> dict[str, Any]:
    """OSTrack scaled down to seconds of CPU: 2 layers of width 32, 32/64 px crops, 12 steps."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "ostrack" / "ostrack_tiny.yaml").read_text())
    cfg["model"].update(template_size=32, search_size=64)
    cfg["model"]["backbone"].update(embed_dim=32, depth=2, num_heads=2, ce_layers=[2], backend="reference")
    cfg["model"]["head"].update(channels=16, num_layers=2)
    cfg["data"]["datasets"] = [{"name": "synthetic", "root": str(data), "split": "train"}]
    cfg["data"]["sampler"] = {"samples_per_epoch": 12, "max_gap": 5}
    cfg["train"].update(epochs=2, batch_size=2, log_interval=1, checkpoint_steps=2, keep_checkpoints=2)
    return cfg


def prepare(work: Path) -> Setup:
    """Dataset, config, and the uninterrupted training and eval (their CPU time and commits)."""
    import yaml

    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    data = work / "data"
    run_quiet(["synth", "--out", str(data), "--train", "2", "--val", "0", "--test", "3", "--frames", "10",
               "--size", "96x96"], work / "logs" / "synth.log")
    cfg = work / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(data), sort_keys=False))
    s = Setup(work, data, cfg, work / "train_ref", work / "eval_ref")
    for kind, out, argv in (("train", s.ref_train, s.train_argv(s.ref_train)), ("eval", s.ref_eval, s.eval_argv(s.ref_eval))):
        events = work / "logs" / f"{kind}_ref.commits"
        s.cpu[kind] = run_quiet(argv, work / "logs" / f"{kind}_ref.log", events)
        s.commits[kind] = [line.split("\t")[1] for line in events.read_text().splitlines()]
    return s


@dataclass
class Try:
    """One kill-and-resume try (a small state machine driven by :func:`run_tries`)."""

    kind: str  # "train" or "eval"
    index: int
    moment: str  # "cpu" or "write"
    cpu_at: float = 0.0
    commit: int = 0
    phase: str = ""
    pid: int = 0
    stage: int = 0  # 0: not started, 1: the run to kill, 2: the resume, 3: done
    killed: bool = False
    resume: str = ""
    redraws: int = 0  # ``cpu`` tries whose run finished before its moment: drawn again
    rng: random.Random = field(default_factory=random.Random)
    errors: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "moment": self.moment}
        if self.moment == "cpu":
            d.update(cpu_s=round(self.cpu_at, 3), redraws=self.redraws)
        else:
            d.update(commit=self.commit, phase=self.phase)
        d.update(killed=self.killed, resume=self.resume, survived=not self.errors, problems=self.errors)
        return d


def plan(kind: str, tries: int, setup: Setup, rng: random.Random, sweep: bool = False) -> list[Try]:
    """``tries`` kill moments: even tries at a random CPU time, odd ones at a random commit;
    ``sweep`` adds one try at every commit in every phase."""
    out = []
    for i in range(tries):
        t = Try(kind, i, "cpu" if i % 2 == 0 else "write", rng=random.Random(rng.random()))
        if t.moment == "cpu":
            t.cpu_at = t.rng.uniform(0.0, 0.97 * setup.cpu[kind])
        else:
            t.commit = rng.randint(1, len(setup.commits[kind]))
            t.phase = rng.choice(PHASES)
            t.target = setup.commits[kind][t.commit - 1]  # type: ignore[attr-defined]
        out.append(t)
    if sweep:
        for commit, target in enumerate(setup.commits[kind], 1):
            for phase in PHASES:
                t = Try(kind, len(out), "write", commit=commit, phase=phase)
                t.target = target  # type: ignore[attr-defined]
                out.append(t)
    return out


def _folder(t: Try, s: Setup) -> Path:
    return s.work / f"{t.kind}_{t.index:02d}"


def _start(t: Try, s: Setup) -> None:
    out = _folder(t, s)
    log = s.work / "logs" / f"{out.name}.{t.stage + 1}.log"
    if t.stage == 0:
        argv = s.train_argv(out) if t.kind == "train" else s.eval_argv(out)
        t.pid = spawn(argv, log, kill_at=t.commit or None, phase=t.phase or "before",
                      kill_cpu=t.cpu_at if t.moment == "cpu" else None)
    else:
        if t.kind == "eval":
            t.resume, argv = "same command", s.eval_argv(out)
        elif any(out.glob("checkpoint_*.pth")):
            t.resume, argv = "--resume", s.train_argv(out, "--resume", str(out))
        elif out.is_dir() and any(out.iterdir()):
            t.resume, argv = "--overwrite", s.train_argv(out, "--overwrite")
        else:
            t.resume, argv = "same command", s.train_argv(out)
        t.pid = spawn(argv, log)
    t.stage += 1


def _finish_stage(t: Try, s: Setup, status: int, cpu: float) -> None:
    out = _folder(t, s)
    code = os.waitstatus_to_exitcode(status)
    if t.stage == 1 and code == 0 and t.moment == "cpu" and t.redraws < 5:
        # a run's CPU time varies on a loaded machine: this one finished before its moment;
        # draw the moment again within the CPU time it used, and start the try afresh
        t.redraws += 1
        t.cpu_at = t.rng.uniform(0.0, 0.97 * cpu)
        shutil.rmtree(out)
        t.stage = 0
        return
    if t.stage == 1:
        t.killed = code == -signal.SIGKILL
        if not t.killed and code != 0:
            t.errors.append(f"the run to kill failed with exit code {code}")
        if t.killed:
            return  # resume next
        t.resume = "not needed (finished before the kill)"
    elif code != 0:
        log = s.work / "logs" / f"{out.name}.2.log"
        t.errors.append(f"the resume failed with exit code {code}: {log.read_text()[-400:]}")
    if not t.errors:
        t.errors += (train_differences(out, s.ref_train) if t.kind == "train" else eval_differences(out, s.ref_eval))
    t.stage = 3


def run_tries(tries: list[Try], setup: Setup, jobs: int, progress: Any) -> None:
    """Run the tries ``jobs`` at a time: start (the run kills itself at its moment), resume, verify."""
    waiting = list(tries)
    running: list[Try] = []
    while waiting or running:
        while waiting and len(running) < jobs:
            t = waiting.pop(0)
            _start(t, setup)
            running.append(t)
        for t in list(running):
            pid, status, usage = os.wait4(t.pid, os.WNOHANG)
            if pid == 0:
                continue
            _finish_stage(t, setup, status, usage.ru_utime + usage.ru_stime)
            if t.stage == 3:
                running.remove(t)
                progress(t)
            else:
                _start(t, setup)
        time.sleep(0.02)


def counts(tries: list[Try]) -> dict[str, Any]:
    """tries / killed / survived / lost, overall and per kill moment."""
    def c(ts: list[Try]) -> dict[str, int]:
        return {"tries": len(ts), "killed": sum(t.killed for t in ts), "survived": sum(not t.errors for t in ts),
                "lost": sum(bool(t.errors) for t in ts)}

    return {**c(tries), "by_moment": {m: c([t for t in tries if t.moment == m]) for m in ("cpu", "write")},
            "runs": [t.describe() for t in tries]}


def markdown(report: dict[str, Any]) -> str:
    """The counts as a markdown page."""
    lines = [
        "# Fault benchmark (issue 16): SIGKILL at random moments, then resume",
        "",
        f"`{report['command']}` on {report['cpu']} ({report['machine_note']}); "
        f"{report['date']}, {report['wall_seconds']:.0f} s wall.",
        "",
        "| benchmark | tries | killed | survived | lost | kills at a CPU moment | kills at a file commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("train", "eval"):
        r = report.get(kind)
        if r:
            bm = r["by_moment"]
            lines.append(f"| {kind} | {r['tries']} | {r['killed']} | {r['survived']} | {r['lost']} | "
                         f"{bm['cpu']['killed']}/{bm['cpu']['tries']} | {bm['write']['killed']}/{bm['write']['tries']} |")
    lines += ["", "Uninterrupted runs (CPU seconds, file commits): "
              + ", ".join(f"{k}: {report['reference'][k]['cpu_s']:.2f} s, {report['reference'][k]['commits']} commits"
                          for k in ("train", "eval")), "",
              "Survived: the resumed folder holds exactly the files of the uninterrupted run (no `.tmp`, lock or "
              "extra checkpoint), train checkpoints equal bit for bit (every key), config.yaml byte-equal, "
              "log.csv equal except its timing column; eval result files byte-equal except the timing "
              "(`*_time.txt`, `fps`).", ""]
    for kind in ("train", "eval"):
        r = report.get(kind)
        if not r:
            continue
        lines += [f"## {kind}", "", "| try | moment | killed | resume | survived | problems |", "|---|---|---|---|---|---|"]
        for t in r["runs"]:
            where = f"cpu {t['cpu_s']} s" if t["moment"] == "cpu" else f"commit {t['commit']} ({t.get('target', '')}) {t['phase']}"
            lines.append(f"| {t['index']} | {where} | {t['killed']} | {t['resume']} | {t['survived']} | "
                         f"{'; '.join(t['problems'])[:300]} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=20, help="kill-and-resume tries of train and of eval")
    p.add_argument("--train-tries", type=int, default=None, help="(default: --tries)")
    p.add_argument("--eval-tries", type=int, default=None, help="(default: --tries)")
    p.add_argument("--jobs", type=int, default=4, help="tries run at a time")
    p.add_argument("--sweep", action="store_true", help="also kill once at every file commit in every phase")
    p.add_argument("--work", type=Path, default=Path("/tmp/vtrack_faults"), help="scratch folder (emptied)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu" / "faults.json",
                   help="JSON report (a .md page is written next to it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="machine load note for the report")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    t0 = time.time()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: forked runs stay single-threaded
    from vtrack.cli import build_parser

    build_parser()  # import vtrack, torch and every command once: the forked runs inherit them
    setup = prepare(args.work)
    report: dict[str, Any] = {
        "command": "python benchmarks/faults.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(), "cores": os.cpu_count(), "machine_note": args.note or "no note",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": sys.version.split()[0],
        "reference": {k: {"cpu_s": round(setup.cpu[k], 3), "commits": len(setup.commits[k]),
                          "commit_targets": setup.commits[k]} for k in ("train", "eval")},
    }

    def progress(t: Try) -> None:
        print(f"{t.kind} {t.index}: {t.describe()}", flush=True)

    for kind, n in (("train", args.train_tries), ("eval", args.eval_tries)):
        tries = plan(kind, args.tries if n is None else n, setup, rng, args.sweep)
        run_tries(tries, setup, args.jobs, progress)
        report[kind] = counts(tries)
        for t, d in zip(tries, report[kind]["runs"]):
            if t.moment == "write":
                d["target"] = t.target  # type: ignore[attr-defined]
    report["wall_seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("runs", "commit_targets")}
                      if isinstance(v, dict) else v for k, v in report.items() if k != "reference"}, indent=1))
    return 0 if all(report[k]["lost"] == 0 for k in ("train", "eval")) else 1


if __name__ == "__main__":
    sys.exit(main())
