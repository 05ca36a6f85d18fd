"""Which float32 PyTorch CPU ops give different bits on an Intel and an AMD CPU, per MKL_CBWR mode?

The op-level companion of ``portable_numerics_check.py``: each op runs on fixed random inputs,
natively and under ``qemu-x86_64 -cpu MODEL`` (``EPYC-Rome``: an AMD CPUID; ``Haswell-v4``: an
Intel one, to show that the emulator itself reproduces the native bits), with PyTorch's, oneDNN's
and vtrack's kernels pinned to AVX2 and MKL in the given ``MKL_CBWR`` mode. An op whose SHA-256
differs from the native run's takes other code on that CPU.

    PYTHONPATH=. python benchmarks/portable_numerics_ops.py [--modes AVX2 COMPATIBLE] [--cpus EPYC-Rome Haswell-v4]
        [--out benchmarks/results/cpu/portable_numerics]

Writes ``<out>/portable_numerics_ops.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vtrack.train.numerics import PORTABLE_ENV

# portable numerics' pins but MKL_CBWR, which each run sets, and one thread
PINNED = {**{k: v for k, v in PORTABLE_ENV.items() if k != "MKL_CBWR"}, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def probe(out: str) -> None:
    """Run every op once on fixed inputs and write ``{op: sha256[:16]}`` to ``out`` (the child's side)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100003, generator=g)
    y = torch.randn(100003, generator=g)
    z = torch.rand(100003, generator=g) + 0.1
    a = torch.randn(64, 192, generator=g)
    b = torch.randn(192, 576, generator=g)
    m = x[:100000].view(1000, 100)
    ops = {
        "mul": lambda: x * 0.999, "lerp": lambda: x.lerp(y, 0.1), "addcmul": lambda: x.addcmul(y, y, value=1e-3),
        "div": lambda: x / z, "addcdiv": lambda: x.addcdiv(y, z, value=-0.01), "sqrt": z.sqrt, "rsqrt": z.rsqrt,
        "reciprocal": z.reciprocal, "exp": x.exp, "log": z.log, "erf": x.erf, "tanh": x.tanh,
        "sigmoid": x.sigmoid, "gelu": lambda: F.gelu(x), "softmax": lambda: m.softmax(-1),
        "layer_norm": lambda: F.layer_norm(m, (100,)), "sum": x.sum, "vector_norm": lambda: torch.linalg.vector_norm(x),
        "mm": lambda: a @ b, "mm_transposed_a": lambda: a.t().contiguous().t() @ b,
    }
    res = {"capability": torch.backends.cpu.get_cpu_capability()}
    for name, fn in ops.items():
        res[name] = hashlib.sha256(fn().contiguous().numpy().tobytes()).hexdigest()[:16]
    Path(out).write_text(json.dumps(res))


def run(mode: str, cpu: str | None, tmp: Path) -> dict:
    """The probe in a child process (under QEMU when ``cpu`` is given) with MKL_CBWR=``mode``."""
    out = tmp / f"{mode}_{cpu or 'native'}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--probe", str(out)]
    if cpu is not None:
        argv = ["qemu-x86_64", "-cpu", cpu, *argv]
    env = {**os.environ, **PINNED, "MKL_CBWR": mode}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    """Run the probes and write the JSON and markdown tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--modes", nargs="+", default=["AVX2", "COMPATIBLE"])
    p.add_argument("--cpus", nargs="+", default=["EPYC-Rome", "Haswell-v4"])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu/portable_numerics"))
    args = p.parse_args(argv)
    if args.probe is not None:
        probe(args.probe)
        return 0
    if shutil.which("qemu-x86_64") is None:
        raise RuntimeError("qemu-x86_64: not found (Debian: apt-get install qemu-user)")
    from vtrack.io import atomic_write_text
    from vtrack.provenance import cpu_model

    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            results[mode] = {"native": run(mode, None, Path(tmp))}
            for cpu in args.cpus:
                results[mode][cpu] = run(mode, cpu, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "portable_numerics_ops.json",
                      json.dumps({"host_cpu": cpu_model(), "pinned": PINNED, "results": results}, indent=1) + "\n")
    lines = [f"# float32 ops natively ({cpu_model()}) and under emulated CPUs, ATen/oneDNN/vtrack at AVX2\n",
             f"`PYTHONPATH=. python benchmarks/portable_numerics_ops.py --modes {' '.join(args.modes)} --cpus "
             f"{' '.join(args.cpus)}`. An op listed differs in its bits from the native run.\n",
             "| MKL_CBWR | CPU | ops that differ from native |", "| --- | --- | --- |"]
    for mode, by_cpu in results.items():
        nat = by_cpu["native"]
        for cpu in args.cpus:
            diff = [k for k in nat if k != "capability" and by_cpu[cpu][k] != nat[k]]
            lines.append(f"| {mode} | {cpu} | {', '.join(diff) or 'none'} |")
    atomic_write_text(args.out / "portable_numerics_ops.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
