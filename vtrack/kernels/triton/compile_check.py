"""Compile every Triton kernel variant for a CUDA architecture without a GPU.

``python -m vtrack.kernels.triton.compile_check [--arch 90] [--resources]`` builds the cubin of
each kernel (forward, backward dQ, backward dK/dV) for every dtype (fp16, bf16, fp32), head dim
(32, 64, 128) and flag combination, with the launch configuration the backend uses, and prints one
line per variant (with register and stack/spill bytes from ``cuobjdump -res-usage`` when ``--resources``). Needs
``TRITON_INTERPRET`` unset. Exit status 1 when any variant fails.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from typing import Optional

FLAGS = [(0, 0, 0, 0), (0, 1, 0, 1), (1, 0, 0, 1), (1, 1, 0, 0), (0, 0, 1, 0), (0, 1, 1, 1)]
PTRS = dict(LSE="fp32", IDX="i32", MASK="i8", COEF="fp32", CEW="fp32", CEBUF="fp32", DELTA="fp32", DK32="fp32",
            DV32="fp32", DCOEF="fp32")
DATA_PTRS = ("Q", "K", "V", "O", "DO", "DQ", "DK", "DV")


def _resource_report(cubin: bytes) -> str:
    """Registers and stack (spill) bytes of a cubin, from ``cuobjdump -res-usage`` (ships with Triton)."""
    import triton.backends.nvidia as nv

    tool = os.path.join(os.path.dirname(nv.__file__), "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        res = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(f.name)
    regs = re.findall(r"REG:(\d+)", res.stdout)
    stack = re.findall(r"STACK:(\d+)", res.stdout)
    return f"regs={regs[-1] if regs else '?'} stack={stack[-1] if stack else '?'}"


def compile_all(arch: int = 90, resources: bool = False) -> tuple[list[str], int]:
    """Compile every variant; returns (report lines, number of failures)."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("TRITON_INTERPRET=1 is set: unset it to compile kernels for a GPU")
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import kernels as kk
    from .ops import _config

    lines, failed = [], 0
    for dtype, tdt in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
        for d in (32, 64, 128):
            for topk, fda, ce, mask in FLAGS:
                for fn, phase in ((kk._attn_fwd, "fwd"), (kk._attn_bwd_dq, "bwd"), (kk._attn_bwd_dkdv, "bwd")):
                    if (fn is kk._attn_bwd_dkdv and topk) or (fn is not kk._attn_fwd and ce):
                        continue
                    cfg = _config(tdt, d, 32 if topk else 0, phase)
                    consts = dict(BN=cfg["BN"], BM=cfg["BM"], DP=cfg["DP"], KP=cfg["KP"], HAS_MASK=bool(mask),
                                  FDA=bool(fda), TOPK=bool(topk), CE=bool(ce), PREC=cfg["PREC"])
                    sig = {}
                    for name in fn.arg_names:
                        if name in consts:
                            sig[name] = "constexpr"
                        elif name in DATA_PTRS:
                            sig[name] = "*" + dtype
                        elif name in PTRS:
                            sig[name] = "*" + PTRS[name]
                        else:
                            sig[name] = "fp32" if name == "scale" else "i32"
                    tag = f"{fn.__name__} {dtype} D={d} topk={topk} fda={fda} ce={ce} mask={mask}"
                    try:
                        src = ASTSource(fn, sig, constexprs={k: v for k, v in consts.items() if k in fn.arg_names})
                        kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                                options=dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"]))
                        extra = _resource_report(kernel.asm["cubin"]) if resources else ""
                        lines.append(f"ok   {tag} shared={kernel.metadata.shared} {extra}")
                    except Exception as err:  # report every failing variant, not only the first
                        failed += 1
                        lines.append(f"FAIL {tag}: {type(err).__name__}: {err}")
    return lines, failed


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (default 90 = H100)")
    parser.add_argument("--resources", action="store_true", help="also report registers and stack (spill) bytes")
    args = parser.parse_args(argv)
    lines, failed = compile_all(args.arch, args.resources)
    print("\n".join(lines))
    print(f"{len(lines) - failed} compiled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
