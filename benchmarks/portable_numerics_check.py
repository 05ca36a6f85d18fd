"""Does ``train.numerics: portable`` give the same weights on an Intel and an AMD CPU? (issue 13: the demo's AO).

Trains the same few steps of a config (default: the demo's ``ostrack_tiny``, batch 2) several ways and
compares the SHA-256 of the trained weights:

- natively on this machine, with portable numerics (twice: run-to-run);
- under ``qemu-x86_64 -cpu MODEL`` (QEMU's user-mode emulator, Debian package ``qemu-user``) with
  portable numerics, for each ``--cpus`` model: the emulated CPUID makes MKL, oneDNN, PyTorch and
  vtrack take the code they take on that CPU (``EPYC-Rome``: an AMD CPU, so MKL's non-Intel code);
- with native numerics, natively and under the first model: the contrast, to show that the check
  can see a difference.

Emulation runs at about 1/200 of native speed, hence a few steps at batch 2 (minutes each). QEMU 7.2
implements AVX2 and FMA but not AVX-512, so the emulated CPUs are AVX2 ones.

    PYTHONPATH=. python benchmarks/portable_numerics_check.py [--steps 3] [--cpus EPYC-Rome Haswell-v4]
        [--out benchmarks/results/cpu/portable_numerics]

Writes ``<out>/portable_numerics_check.json`` and ``.md``. Exit code 1 when a portable run differs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vtrack.bench.common import environment
from vtrack.io import atomic_write_text, tensors_sha256
from vtrack.train.numerics import PORTABLE_ENV, portable_environ
from vtrack.train.trainer import load_checkpoint


def weights_sha256(run_dir: Path) -> str:
    """SHA-256 of the newest checkpoint's model tensors (:func:`vtrack.io.tensors_sha256`)."""
    return tensors_sha256(load_checkpoint(run_dir)["model"])


def train_once(config: str, out: Path, steps: int, batch: int, numerics: str, cpu: str | None,
               overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """One short training (in a child process, under QEMU when ``cpu`` is given); its weights' hash and timing."""
    argv = [sys.executable, "-m", "vtrack.cli", "train", config, f"train.numerics={numerics}", "train.epochs=1",
            f"train.batch_size={batch}", f"data.sampler.samples_per_epoch={steps * batch}", "train.seed=0",
            "train.log_interval=1", "data.num_workers=0", *overrides, "--out-dir", str(out)]
    if cpu is not None:
        argv = ["qemu-x86_64", "-cpu", cpu, *argv]
    # portable: the environment is set here, so the CLI trains in this (possibly emulated) process
    env = portable_environ() if numerics == "portable" else {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    losses = [line.split(",")[3] for line in (out / "log.csv").read_text().splitlines()[1:]]
    return {"cpu": cpu or "native", "numerics": numerics, "sha256": weights_sha256(out), "losses": losses,
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    """Run the check and write the JSON and markdown results."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/ostrack/ostrack_tiny.yaml")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--cpus", nargs="+", default=["EPYC-Rome"], help="QEMU CPU models (qemu-x86_64 -cpu help)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu/portable_numerics"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise ValueError(f"steps, batch: expected positive ints, got {args.steps}, {args.batch}")
    if shutil.which("qemu-x86_64") is None:
        raise RuntimeError("qemu-x86_64: not found (Debian: apt-get install qemu-user)")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [("native", None, "portable"), ("native_again", None, "portable")]
        plan += [(f"qemu_{c}", c, "portable") for c in args.cpus]
        plan += [("native_nativenum", None, "native"), (f"qemu_{args.cpus[0]}_nativenum", args.cpus[0], "native")]
        for name, cpu, numerics in plan:
            runs.append({"run": name, **train_once(args.config, Path(tmp) / name, args.steps, args.batch, numerics, cpu)})
            print(json.dumps(runs[-1]), flush=True)
    ref = runs[0]["sha256"]
    portable_same = all(r["sha256"] == ref for r in runs if r["numerics"] == "portable")
    native_same = runs[-1]["sha256"] == runs[-2]["sha256"]
    result = {"environment": environment("cpu"), "config": args.config, "steps": args.steps, "batch": args.batch,
              "portable_env": PORTABLE_ENV, "runs": runs, "portable_identical": portable_same,
              "native_identical": native_same}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "portable_numerics_check.json", json.dumps(result, indent=1) + "\n")
    rows = ["| run | CPU | numerics | weights SHA-256 (first 16) | same as native portable | loss per step | s |",
            "| --- | --- | --- | --- | --- | --- | ---: |"]
    rows += [f"| {r['run']} | {r['cpu']} | {r['numerics']} | `{r['sha256'][:16]}` | {'yes' if r['sha256'] == ref else 'no'} "
             f"| {' '.join(r['losses'])} | {r['seconds']} |" for r in runs]
    md = (f"# Portable numerics: the same training natively and under an emulated CPU\n\n"
          f"`PYTHONPATH=. python benchmarks/portable_numerics_check.py --steps {args.steps} --batch {args.batch} "
          f"--cpus {' '.join(args.cpus)}`; host CPU: {result['environment']['device_name']}; config {args.config}.\n\n"
          + "\n".join(rows) + "\n\n"
          f"Portable runs identical: **{portable_same}**. Native-numerics runs identical across the two CPUs: "
          f"{native_same}.\n")
    atomic_write_text(args.out / "portable_numerics_check.md", md)
    return 0 if portable_same else 1


if __name__ == "__main__":
    sys.exit(main())
