"""Launch configurations of the Triton kernels: one table, keyed by (dtype, padded head dim, kernel).

Every launch of a Triton kernel in :mod:`vtrack.kernels.triton.ops` takes its tile sizes, warps
and pipeline stages from :data:`GPU_CONFIGS` (or :data:`INTERPRETER_CONFIG` under
``TRITON_INTERPRET=1``). The table is data, not code: tune it by editing rows and checking the
result with ``python -m vtrack.kernels.triton.compile_check --resources`` (registers and spill
bytes of every variant for sm_90, no GPU needed). docs/kernels.md explains the choices.

Kernels (the "direction" of a launch):

* ``fwd``: ``_attn_fwd`` dense / FDA / CE; ``BN`` query rows x ``BM`` keys per tile.
* ``fwd_topk``: ``_attn_fwd`` with top-K; ``BM`` is the key block of the selection pass and is
  raised to ``KP`` (top-K rounded up to a power of two) when smaller, since each key block is
  merged into a ``[BN, KP]`` buffer.
* ``bwd_dq``: ``_attn_bwd_dq`` dense / FDA (``BN`` query rows, ``BM`` keys per loop step).
* ``bwd_dq_topk``: ``_attn_bwd_dq`` with top-K (gathers ``KP`` keys per row; ``BM`` unused).
* ``bwd_dkdv``: ``_attn_bwd_dkdv`` (``BM`` keys per program, ``BN`` query rows per loop step).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: kernel names (see the module docstring)
KERNELS = ("fwd", "fwd_topk", "bwd_dq", "bwd_dq_topk", "bwd_dkdv")
#: dtype names of the table and the torch dtypes they stand for
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
#: padded head dims DP the launcher can ask for: next power of two >= max(D, 16), D <= 256
HEAD_DIMS = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and launch options of one kernel variant."""

    BN: int
    BM: int
    num_warps: int
    num_stages: int


def _expand(rows: list[tuple[str, str, str, int, int, int, int]]) -> dict[tuple[str, int, str], LaunchConfig]:
    """Rows ``(dtypes, head dims, kernels, BN, BM, warps, stages)`` with space-separated lists -> table.

    A later row overrides an earlier one for the keys they share, so a general row can be followed
    by its exceptions.
    """
    table: dict[tuple[str, int, str], LaunchConfig] = {}
    for dtypes, dims, kernels, bn, bm, warps, stages in rows:
        for dt in dtypes.split():
            for dp in dims.split():
                for kern in kernels.split():
                    table[(dt, int(dp), kern)] = LaunchConfig(bn, bm, warps, stages)
    return table


_HALF = "fp16 bf16"
# (dtypes, padded head dims, kernels, BN, BM, num_warps, num_stages); later rows override earlier ones.
# Chosen from offline sm_90 compiles (registers and spill bytes of every variant, compile_check --resources;
# benchmarks/results/sm90_resources_{before,after}.md), not from GPU timings: no GPU has run them yet.
_GPU_ROWS = [
    # fp16 / bf16: tensor-core dots
    (_HALF, "16 32 64", "fwd", 64, 64, 4, 2),
    (_HALF, "128", "fwd", 64, 32, 4, 2),
    (_HALF, "256", "fwd", 32, 32, 8, 2),
    (_HALF, "16 32", "bwd_dq bwd_dkdv", 64, 32, 4, 2),
    (_HALF, "64", "bwd_dq", 32, 32, 4, 2),
    (_HALF, "64", "bwd_dkdv", 32, 32, 8, 2),
    (_HALF, "128", "bwd_dq bwd_dkdv", 32, 32, 8, 2),
    (_HALF, "256", "bwd_dq bwd_dkdv", 16, 32, 8, 2),
    (_HALF, "16 32", "fwd_topk bwd_dq_topk", 32, 64, 8, 2),
    (_HALF, "64 128 256", "fwd_topk", 16, 32, 8, 2),
    (_HALF, "64 128 256", "bwd_dq_topk", 16, 64, 8, 2),
    # fp32: IEEE dots run on FMA units, which hold a thread's operand rows and columns along the whole
    # reduction in registers; small tiles, more warps and one pipeline stage keep them there.
    ("fp32", "16 32 64", "fwd", 32, 32, 4, 2),
    ("fp32", "128", "fwd", 16, 16, 4, 2),
    ("fp32", "256", "fwd", 16, 16, 8, 1),
    ("fp32", "16 32 64 128 256", "bwd_dq", 16, 16, 4, 2),
    ("fp32", "16 32 64 128", "bwd_dkdv", 32, 16, 8, 1),
    ("fp32", "256", "bwd_dkdv", 16, 16, 8, 1),
    ("fp32", "16 32", "fwd_topk bwd_dq_topk", 32, 64, 8, 2),
    ("fp32", "16", "fwd_topk", 16, 32, 8, 2),
    ("fp32", "64 128 256", "fwd_topk", 16, 32, 8, 2),
    ("fp32", "64 128 256", "bwd_dq_topk", 16, 64, 8, 2),
]

#: the GPU launch configuration of every (dtype name, padded head dim, kernel)
GPU_CONFIGS: dict[tuple[str, int, str], LaunchConfig] = _expand(_GPU_ROWS)
#: the interpreter runs one small configuration (multi-config autotuning fails there; BM of top-K becomes KP)
INTERPRETER_CONFIG = LaunchConfig(16, 16, 1, 1)


def dtype_name(dtype: torch.dtype) -> str:
    """Table name of a torch dtype ("fp16", "bf16", "fp32"); ValueError for any other."""
    for name, dt in DTYPES.items():
        if dt == dtype:
            return name
    raise ValueError(f"dtype: expected one of {list(DTYPES.values())}, got {dtype}")


def launch_config(dtype: torch.dtype, dp: int, kernel: str, *, interpret: bool = False) -> LaunchConfig:
    """The configuration of ``kernel`` for ``dtype`` and padded head dim ``dp``.

    Raises ValueError naming the key when the table lacks it (tests check that it never does for
    a launch the backend accepts).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
    if interpret:
        return INTERPRETER_CONFIG
    key = (dtype_name(dtype), int(dp), kernel)
    cfg = GPU_CONFIGS.get(key)
    if cfg is None:
        raise ValueError(f"no Triton launch configuration for (dtype, head dim, kernel) = {key}; "
                         f"padded head dims in the table: {HEAD_DIMS}")
    return cfg
