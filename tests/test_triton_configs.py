"""The Triton launch-configuration table covers every launch the backend can make (no kernel runs)."""
import pytest
import torch

pytest.importorskip("triton")  # the third-party package (the "triton" extra); vtrack's own modules must import
from vtrack.kernels.triton import configs, ops  # noqa: E402


def test_table_covers_every_dtype_head_dim_and_kernel(monkeypatch):
    """Every (dtype, head dim 1..MAX_HEAD_DIM, kernel, top-K) the launcher accepts gets a valid GPU config."""
    assert set(configs.HEAD_DIMS) == {ops._pow2(d) for d in range(1, ops.MAX_HEAD_DIM + 1)}
    expected = {(dt, dp, k) for dt in configs.DTYPES for dp in configs.HEAD_DIMS for k in configs.KERNELS}
    assert set(configs.GPU_CONFIGS) == expected  # no missing row, no row for a launch that cannot happen
    monkeypatch.setattr(ops, "INTERPRET", False)  # what the launcher asks for on a GPU
    for dtype in configs.DTYPES.values():
        for d in range(1, ops.MAX_HEAD_DIM + 1):
            for kernel in configs.KERNELS:
                for topk in ((1, 16, 17, 32, 100, ops.MAX_TOPK) if kernel.endswith("_topk") else (0,)):
                    cfg = ops._config(dtype, d, topk, kernel)
                    where = (dtype, d, kernel, topk, cfg)
                    assert cfg["DP"] >= d and cfg["num_warps"] in (1, 2, 4, 8, 16) and cfg["num_stages"] >= 1, where
                    for size in (cfg["BN"], cfg["BM"]):  # tl.dot needs power-of-two tiles of at least 16
                        assert size >= 16 and size & (size - 1) == 0, where
                    if kernel == "fwd_topk":  # each key block is merged into a [BN, KP] buffer
                        assert cfg["KP"] >= topk and cfg["BM"] >= cfg["KP"], where
                    assert cfg["PREC"] == ("ieee" if dtype == torch.float32 else "tf32"), where


def test_launch_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="kernel"):
        configs.launch_config(torch.float16, 64, "fwd_backwards")
    with pytest.raises(ValueError, match="dtype"):
        configs.launch_config(torch.float64, 64, "fwd")
    with pytest.raises(ValueError, match="head dim"):
        configs.launch_config(torch.float16, 512, "fwd")
    assert configs.launch_config(torch.float32, 128, "bwd_dkdv", interpret=True) == configs.INTERPRETER_CONFIG


def test_compile_check_report_round_trip():
    """The resource report's line format parses back into the same record (before/after reports use it)."""
    from vtrack.kernels.triton import compile_check as cc

    rec = dict(ok=True, fn="_attn_bwd_dkdv", kernel="bwd_dkdv", dtype="fp32", D=128, topk=0, fda=1, ce=0, mask=1,
               shared=35968, regs=255, stack=8)
    back = cc.parse_line(cc.format_line(rec))
    assert back == rec
    md = cc.to_markdown([dict(rec, BN=16, BM=16, num_warps=8, num_stages=2)], "t")
    assert "1 spill (stack > 0)" in md and "| bwd_dkdv | fp32 | 128 |" in md
