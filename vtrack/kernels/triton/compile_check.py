"""Compile every Triton kernel variant for a CUDA architecture without a GPU.

``python -m vtrack.kernels.triton.compile_check [--arch 90] [--resources] [--json F] [--markdown F]``
builds the cubin of each kernel (forward, backward dQ, backward dK/dV) for every dtype (fp16,
bf16, fp32), head dim (32, 64, 128 by default) and flag combination, with the launch configuration
the backend uses (``configs.py``), and prints one line per variant (with registers and stack bytes
from ``cuobjdump -res-usage`` when ``--resources``; stack > 0 means registers spill to local
memory). ``--dtype``, ``--head-dim`` and ``--kernel`` restrict the run (for tuning one row of the
table). Needs ``TRITON_INTERPRET`` unset. Exit status 1 when any variant fails to compile.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Optional

#: flag combinations (topk, fda, ce, mask) compiled for each dtype and head dim
FLAGS = [(0, 0, 0, 0), (0, 1, 0, 1), (1, 0, 0, 1), (1, 1, 0, 0), (0, 0, 1, 0), (0, 1, 1, 1)]
#: top-K compiled for the top-K variants (the trackers' K; KP = 32)
TOPK = 32
DEFAULT_HEAD_DIMS = (32, 64, 128)
PTRS = dict(LSE="fp32", IDX="i32", MASK="i8", COEF="fp32", CEW="fp32", CEBUF="fp32", DELTA="fp32", DK32="fp32",
            DV32="fp32", DCOEF="fp32")
DATA_PTRS = ("Q", "K", "V", "O", "DO", "DQ", "DK", "DV")
LINE_RE = re.compile(r"^(ok|FAIL) +(\w+) (\w+) D=(\d+) topk=(\d) fda=(\d) ce=(\d) mask=(\d)(?: shared=(\d+))?"
                     r"(?: regs=(\S+) stack=(\S+))?")


def _resource_report(cubin: bytes) -> tuple[Optional[int], Optional[int]]:
    """(registers, stack bytes) of a cubin, from ``cuobjdump -res-usage`` (ships with Triton)."""
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
    return (int(regs[-1]) if regs else None), (int(stack[-1]) if stack else None)


def _kernel_name(fn_name: str, topk: int) -> str:
    """The ``configs.KERNELS`` entry that launches ``fn_name`` with or without top-K."""
    base = {"_attn_fwd": "fwd", "_attn_bwd_dq": "bwd_dq", "_attn_bwd_dkdv": "bwd_dkdv"}[fn_name]
    return base + "_topk" if topk and base != "bwd_dkdv" else base


def format_line(rec: dict[str, Any]) -> str:
    """One report line of a variant record (the format that ``parse_line`` reads)."""
    tag = (f"{rec['fn']} {rec['dtype']} D={rec['D']} topk={rec['topk']} fda={rec['fda']} ce={rec['ce']} "
           f"mask={rec['mask']}")
    if not rec["ok"]:
        return f"FAIL {tag}: {rec.get('error', '')}"
    extra = f" regs={rec['regs']} stack={rec['stack']}" if rec.get("regs") is not None else ""
    return f"ok   {tag} shared={rec['shared']}{extra}"


def parse_line(line: str) -> Optional[dict[str, Any]]:
    """A variant record from one report line (``None`` for other lines, e.g. the summary)."""
    m = LINE_RE.match(line.strip())
    if m is None:
        return None
    ok, fn, dtype, d, topk, fda, ce, mask, shared, regs, stack = m.groups()
    rec: dict[str, Any] = dict(ok=ok == "ok", fn=fn, kernel=_kernel_name(fn, int(topk)), dtype=dtype, D=int(d),
                               topk=int(topk), fda=int(fda), ce=int(ce), mask=int(mask),
                               shared=int(shared) if shared else None)
    rec["regs"] = int(regs) if regs and regs.isdigit() else None
    rec["stack"] = int(stack) if stack and stack.isdigit() else None
    return rec


def compile_variant(fn: Any, dtype: str, d: int, flags: tuple[int, int, int, int], cfg: dict[str, Any],
                    arch: int = 90, resources: bool = False) -> dict[str, Any]:
    """Compile one kernel variant with launch configuration ``cfg`` (the dict of ``ops._config``).

    ``flags`` is ``(topk, fda, ce, mask)``; returns its record (``ok`` False with ``error`` when it failed).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    topk, fda, ce, mask = flags
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
    rec: dict[str, Any] = dict(fn=fn.__name__, kernel=_kernel_name(fn.__name__, topk), dtype=dtype, D=d, topk=topk,
                               fda=fda, ce=ce, mask=mask, BN=cfg["BN"], BM=cfg["BM"], num_warps=cfg["num_warps"],
                               num_stages=cfg["num_stages"])
    try:
        src = ASTSource(fn, sig, constexprs={k: v for k, v in consts.items() if k in fn.arg_names})
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                  options=dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"]))
        rec.update(ok=True, shared=compiled.metadata.shared, regs=None, stack=None)
        if resources:
            rec["regs"], rec["stack"] = _resource_report(compiled.asm["cubin"])
    except Exception as err:  # report every failing variant, not only the first
        rec.update(ok=False, error=f"{type(err).__name__}: {err}")
    return rec


def compile_all(arch: int = 90, resources: bool = False, dtypes: Optional[list[str]] = None,
                head_dims: Optional[list[int]] = None, kernels: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """Compile every selected variant with the backend's launch configuration; one record per variant."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("TRITON_INTERPRET=1 is set: unset it to compile kernels for a GPU")
    from . import kernels as kk
    from .configs import DTYPES
    from .ops import _config

    records = []
    for dtype in dtypes or list(DTYPES):
        for d in head_dims or DEFAULT_HEAD_DIMS:
            for flags in FLAGS:
                topk, _, ce, _ = flags
                for fn in (kk._attn_fwd, kk._attn_bwd_dq, kk._attn_bwd_dkdv):
                    if (fn is kk._attn_bwd_dkdv and topk) or (fn is not kk._attn_fwd and ce):
                        continue
                    kernel = _kernel_name(fn.__name__, topk)
                    if kernels and kernel not in kernels:
                        continue
                    cfg = _config(DTYPES[dtype], d, TOPK if topk else 0, kernel)
                    records.append(compile_variant(fn, dtype, d, flags, cfg, arch, resources))
    return records


def to_markdown(records: list[dict[str, Any]], title: str) -> str:
    """A markdown report: the spilling variants first, then every variant."""
    spill = [r for r in records if r.get("stack")]
    at_max = [r for r in records if r.get("regs") == 255]
    failed = [r for r in records if not r["ok"]]
    lines = [f"# {title}", "",
             f"{len(records)} variants, {len(failed)} failed to compile, {len(spill)} spill (stack > 0), "
             f"{len(at_max)} at 255 registers.", ""]
    head = "| kernel | dtype | D | topk | fda | ce | mask | BN | BM | warps | stages | regs | stack B | shared B |"
    sep = "|" + "---|" * 14

    def row(r: dict[str, Any]) -> str:
        cells = [r["kernel"], r["dtype"], r["D"], r["topk"], r["fda"], r["ce"], r["mask"], r.get("BN", ""),
                 r.get("BM", ""), r.get("num_warps", ""), r.get("num_stages", ""), r.get("regs", ""),
                 r.get("stack", ""), r.get("shared", "")]
        return "| " + " | ".join("" if c is None else str(c) for c in cells) + " |"

    lines += ["## Variants that spill", "", head, sep] + [row(r) for r in spill] + [""]
    lines += ["## Every variant", "", head, sep] + [row(r) for r in records] + [""]
    if failed:
        lines += ["## Failed", ""] + [f"- {format_line(r)}" for r in failed] + [""]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (default 90 = H100)")
    parser.add_argument("--resources", action="store_true", help="also report registers and stack (spill) bytes")
    parser.add_argument("--dtype", nargs="+", choices=["fp16", "bf16", "fp32"], help="only these dtypes")
    parser.add_argument("--head-dim", nargs="+", type=int, help=f"head dims (default {DEFAULT_HEAD_DIMS})")
    parser.add_argument("--kernel", nargs="+", choices=["fwd", "fwd_topk", "bwd_dq", "bwd_dq_topk", "bwd_dkdv"],
                        help="only these kernels (configs.KERNELS)")
    parser.add_argument("--json", help="also write the records as JSON to this file")
    parser.add_argument("--markdown", help="also write a markdown table to this file")
    args = parser.parse_args(argv)
    for d in args.head_dim or []:
        if not 1 <= d <= 256:
            parser.error(f"--head-dim: expected values in [1, 256], got {d}")
    records = compile_all(args.arch, args.resources, args.dtype, args.head_dim, args.kernel)
    failed = sum(not r["ok"] for r in records)
    sys.stdout.write("\n".join(format_line(r) for r in records) + "\n")
    sys.stdout.write(f"{len(records) - failed} compiled, {failed} failed\n")
    from ...io import atomic_write_text

    if args.json:
        atomic_write_text(args.json, json.dumps({"arch": args.arch, "variants": records}, indent=1) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, to_markdown(records, f"Triton kernels on sm_{args.arch}: registers and spills"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
