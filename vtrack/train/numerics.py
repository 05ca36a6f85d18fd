"""Portable CPU numerics: a training whose weights are bit-identical on any x86-64 CPU with AVX2.

A short, unconverged training (the demo's 400 steps) turns the last-bit differences between two
CPUs' float paths into two different networks: the same ``vtrack train`` command gave test AO 24.3
on an AMD EPYC and 17.4 on an Intel Xeon. ``train.numerics: portable`` removes those differences
for CPU training. Every library's vector path is pinned to one instruction set and one thread
count, set before the libraries load, so it is a property of the process's environment:

- ``MKL_CBWR=COMPATIBLE``: MKL's conditional numerical reproducibility in its one mode that gives
  the same results on Intel and on non-Intel CPUs. ``MKL_CBWR=AVX2`` is not enough: on an AMD
  CPU MKL takes other code for ``sqrt``/``exp``/``log``/``erf`` (its VML, which ATen calls for
  float tensors) and for some transposed GEMMs.
- ``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``, ``VTRACK_CPU_ISA=avx2``: PyTorch's,
  oneDNN's and vtrack's own kernels take their AVX2 code on every CPU.
- ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = :data:`PORTABLE_THREADS`: reductions split the same
  way whatever the core count.
- The trainer uses PyTorch's fused AdamW, whose update is ATen's own vector code; the default
  AdamW calls ``torch.sqrt``, which reaches MKL's VML.

How it was checked: ``benchmarks/portable_numerics_check.py`` trains the same steps natively and
under ``qemu-x86_64 -cpu EPYC-Rome`` (an AMD CPUID, so MKL takes its AMD code) and compares the
weights' SHA-256 (benchmarks/results/cpu/portable_numerics/). The cost: about 2x the time per
step of native numerics (MKL's compatible GEMM is SSE2 code).

``vtrack train`` (and ``vtrack demo``) start a child process with this environment when the
config asks for portable numerics and the process does not have it (:func:`run_portable`);
calling :func:`vtrack.train.train` directly needs the environment set beforehand, and the
trainer refuses to run otherwise (:func:`check_portable`).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Mapping, Sequence

__all__ = ["PORTABLE_ENV", "PORTABLE_THREADS", "NUMERICS", "missing_env", "portable_environ", "check_portable",
           "portable_supported", "run_portable"]

log = logging.getLogger(__name__)

NUMERICS = ("native", "portable")  # the values of train.numerics
PORTABLE_THREADS = 2
PORTABLE_ENV: dict[str, str] = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "VTRACK_CPU_ISA": "avx2",
    "OMP_NUM_THREADS": str(PORTABLE_THREADS),
    "MKL_NUM_THREADS": str(PORTABLE_THREADS),
}


def missing_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of :data:`PORTABLE_ENV` that ``environ`` (default ``os.environ``) lacks or sets
    otherwise, with the values they need."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in PORTABLE_ENV.items() if env.get(k) != v}


def portable_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) with :data:`PORTABLE_ENV` set."""
    return {**(os.environ if environ is None else environ), **PORTABLE_ENV}


def portable_supported() -> tuple[bool, str]:
    """Whether this CPU can run the portable paths (it needs AVX2 and FMA), and why not."""
    import platform

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False, f"portable numerics are defined for x86-64 CPUs, this is {platform.machine()}"
    cap = torch.backends.cpu.get_cpu_capability()
    if cap not in ("AVX2", "AVX512"):
        return False, f"this CPU lacks AVX2 (PyTorch's CPU capability: {cap})"
    return True, ""


def check_portable(what: str = "train.numerics") -> None:
    """Raise ``RuntimeError`` unless this process runs the portable paths: the environment of
    :data:`PORTABLE_ENV` set before torch loaded, and PyTorch's and vtrack's kernels at AVX2."""
    import torch

    miss = missing_env()
    if miss:
        pairs = " ".join(f"{k}={v}" for k, v in miss.items())
        raise RuntimeError(f"{what}: 'portable' needs these variables set before torch loads, missing or different: "
                           f"{pairs} (`vtrack train` and `vtrack demo` start a process with them)")
    ok, why = portable_supported()
    if not ok:
        raise RuntimeError(f"{what}: 'portable' is not available: {why}")
    cap = torch.backends.cpu.get_cpu_capability()
    if cap != "AVX2":
        raise RuntimeError(f"{what}: 'portable' expected PyTorch's AVX2 kernels, got capability {cap!r}")
    from vtrack.kernels import cpp_ops

    isa = cpp_ops.isa()  # None without the C++ library (then no vtrack CPU kernel runs)
    if isa not in (None, "avx2"):
        raise RuntimeError(f"{what}: 'portable' expected vtrack's avx2 kernels, got {isa!r}")


def run_portable(argv: Sequence[str]) -> int:
    """Run ``python -m vtrack.cli ARGV`` in a child process with :data:`PORTABLE_ENV`; its exit code."""
    if isinstance(argv, (str, bytes)) or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv: expected a sequence of str, got {argv!r}")
    ok, why = portable_supported()
    if not ok:
        raise RuntimeError(f"train.numerics: 'portable' is not available: {why}")
    cmd = [sys.executable, "-m", "vtrack.cli", *argv]
    log.info("portable numerics: running %s with %s", " ".join(cmd),
             " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items()))
    return subprocess.run(cmd, env=portable_environ(), check=False).returncode
