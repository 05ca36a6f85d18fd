"""torch.library custom ops wrapping the Triton kernels (forward, backward, autograd, fake impls).

``vtrack::triton_attn_fwd(q, k, v, topk, scale, key_padding_mask, coef, ce_weight)
-> (out, lse [B,H,N] f32, index [B,H,N,KP] i32, ce_buf [B,H,M] f32)`` and
``vtrack::triton_attn_bwd(grad_out, q, k, v, out, lse, index, scale, key_padding_mask, coef, topk)
-> (dq, dk, dv, dcoef)``. Registered with ``custom_op`` + ``register_fake`` + ``register_autograd``
so ``torch.compile(fullgraph=True)`` treats them as opaque ops (this also works with the Triton
interpreter, unlike ``triton_op``).

The arguments follow the C++/CUDA ops (``torch.ops.vtrack.topk_attention(q, k, v, topk, scale,
key_padding_mask, coef)``, csrc/ops.cpp): ``topk`` is 0 for dense; ``coef`` is the FDA coefficients'
one form below the dispatcher, a float32 [3, H] tensor (rows alpha, beta, delta per head) or None, and
``dcoef`` its [3, H] gradient (empty without FDA). ``ce_weight`` is a float32 [N] tensor (weight of
each query row in the CE score) or None.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import triton

from .configs import launch_config
from .kernels import _attn_bwd_dkdv, _attn_bwd_dq, _attn_fwd

#: True when the kernels were defined under the Triton interpreter (CPU tensors only work then).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

MAX_HEAD_DIM = 256
MAX_TOPK = 256


def _pow2(x: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(int(x)))


def topk_pad(topk: int) -> int:
    """Width KP of the saved top-K index buffer for ``topk`` (1 when dense)."""
    return _pow2(topk) if topk > 0 else 1


def _config(dtype: torch.dtype, d: int, topk: int, kernel: str) -> dict:
    """Launch configuration of ``kernel`` (a name of ``configs.KERNELS``) from the table in ``configs.py``.

    Adds the padded head dim ``DP``, the top-K width ``KP`` (16 when dense) and the dot precision;
    for ``fwd_topk`` the key block ``BM`` is raised to ``KP`` (each block is merged into a
    ``[BN, KP]`` buffer).
    """
    dp = _pow2(d)
    kp = _pow2(topk) if topk > 0 else 16
    cfg = launch_config(dtype, dp, kernel, interpret=INTERPRET)
    bm = max(cfg.BM, kp) if kernel == "fwd_topk" else cfg.BM
    prec = "ieee" if dtype == torch.float32 else "tf32"
    return dict(BN=cfg.BN, BM=bm, DP=dp, KP=kp, num_warps=cfg.num_warps, num_stages=cfg.num_stages, PREC=prec)


def _strides(t: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t, (t.stride(0), t.stride(1), t.stride(2))


def _check_coef(coef: Optional[torch.Tensor], q: torch.Tensor) -> None:
    """coef: None or float32 [3, H] on q's device (the C++ ops' TORCH_CHECK, for a direct call)."""
    if coef is None:
        return
    h = q.shape[1]
    if coef.dtype != torch.float32 or tuple(coef.shape) != (3, h) or coef.device != q.device:
        raise ValueError(f"coef: expected a float32 tensor of shape [3, H={h}] (rows alpha, beta, delta) on "
                         f"{q.device}, got dtype {coef.dtype}, shape {list(coef.shape)}, device {coef.device}")


def _mask_arg(mask: Optional[torch.Tensor], q: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if mask is None:
        return torch.empty(1, dtype=torch.int8, device=q.device), False
    return mask.to(torch.int8).contiguous(), True


@torch.library.custom_op("vtrack::triton_attn_fwd", mutates_args=())
def triton_attn_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk: int, scale: float,
                    key_padding_mask: Optional[torch.Tensor], coef: Optional[torch.Tensor],
                    ce_weight: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused attention forward (see module docstring)."""
    _check_coef(coef, q)
    b, h, n, d = q.shape
    m = k.shape[2]
    cfg = _config(q.dtype, d, topk, "fwd_topk" if topk > 0 else "fwd")
    q, sq = _strides(q)
    k, sk = _strides(k)
    v, sv = _strides(v)
    out = torch.empty(b, h, n, d, dtype=q.dtype, device=q.device)
    lse = torch.empty(b, h, n, dtype=torch.float32, device=q.device)
    idx = torch.empty((b, h, n, cfg["KP"]) if topk > 0 else (0,), dtype=torch.int32, device=q.device)
    ce_buf = torch.zeros((b, h, m) if ce_weight is not None else (0,), dtype=torch.float32, device=q.device)
    mask_t, has_mask = _mask_arg(key_padding_mask, q)
    dummy = torch.empty(1, dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(n, cfg["BN"]), b * h)
    _attn_fwd[grid](
        q, k, v, out, lse, idx if topk > 0 else dummy, mask_t,
        coef.contiguous() if coef is not None else dummy,
        ce_weight.contiguous() if ce_weight is not None else dummy,
        ce_buf if ce_weight is not None else dummy,
        *sq, *sk, *sv, h, n, m, d, float(scale), int(topk),
        BN=cfg["BN"], BM=cfg["BM"], DP=cfg["DP"], KP=cfg["KP"], HAS_MASK=has_mask, FDA=coef is not None,
        TOPK=topk > 0, CE=ce_weight is not None, PREC=cfg["PREC"],
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return out, lse, idx, ce_buf


@triton_attn_fwd.register_fake
def _(q, k, v, topk, scale, key_padding_mask, coef, ce_weight):
    b, h, n, d = q.shape
    m = k.shape[2]
    out = q.new_empty(b, h, n, d)
    lse = q.new_empty(b, h, n, dtype=torch.float32)
    idx = q.new_empty((b, h, n, topk_pad(topk)) if topk > 0 else (0,), dtype=torch.int32)
    ce_buf = q.new_empty((b, h, m) if ce_weight is not None else (0,), dtype=torch.float32)
    return out, lse, idx, ce_buf


@torch.library.custom_op("vtrack::triton_attn_bwd", mutates_args=())
def triton_attn_bwd(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                    lse: torch.Tensor, index: torch.Tensor, scale: float, key_padding_mask: Optional[torch.Tensor],
                    coef: Optional[torch.Tensor], topk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                      torch.Tensor]:
    """Fused attention backward -> (dq, dk, dv, dcoef [3,H] float32 (empty without FDA))."""
    _check_coef(coef, q)
    b, h, n, d = q.shape
    m = k.shape[2]
    cfg = _config(q.dtype, d, topk, "bwd_dq_topk" if topk > 0 else "bwd_dq")
    q, sq = _strides(q)
    k, sk = _strides(k)
    v, sv = _strides(v)
    dout = grad_out.contiguous()
    delta = (out.float() * dout.float()).sum(-1).contiguous()
    mask_t, has_mask = _mask_arg(key_padding_mask, q)
    fda = coef is not None
    dummy = torch.empty(1, dtype=torch.float32, device=q.device)
    coef_t = coef.contiguous() if fda else dummy
    n_blocks = triton.cdiv(n, cfg["BN"])
    dq = torch.empty(b, h, n, d, dtype=q.dtype, device=q.device)
    dcoef_part = torch.zeros((3, b, h, n_blocks) if fda else (1,), dtype=torch.float32, device=q.device)
    launch = dict(BN=cfg["BN"], BM=cfg["BM"], DP=cfg["DP"], HAS_MASK=has_mask, FDA=fda, PREC=cfg["PREC"],
                  num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    if topk > 0:
        dk32 = torch.zeros(b, h, m, d, dtype=torch.float32, device=q.device)
        dv32 = torch.zeros(b, h, m, d, dtype=torch.float32, device=q.device)
        _attn_bwd_dq[(n_blocks, b * h)](
            q, k, v, dout, lse, delta, index, mask_t, coef_t, dq, dk32, dv32, dcoef_part,
            *sq, *sk, *sv, h, n, m, d, float(scale), int(topk), n_blocks, KP=cfg["KP"], TOPK=True, **launch)
        dk, dv = dk32.to(q.dtype), dv32.to(q.dtype)
    else:
        dk = torch.empty(b, h, m, d, dtype=q.dtype, device=q.device)
        dv = torch.empty(b, h, m, d, dtype=q.dtype, device=q.device)
        _attn_bwd_dq[(n_blocks, b * h)](
            q, k, v, dout, lse, delta, dummy, mask_t, coef_t, dq, dummy, dummy, dcoef_part,
            *sq, *sk, *sv, h, n, m, d, float(scale), 0, n_blocks, KP=16, TOPK=False, **launch)
        kv = _config(q.dtype, d, 0, "bwd_dkdv")
        _attn_bwd_dkdv[(triton.cdiv(m, kv["BM"]), b * h)](
            q, k, v, dout, lse, delta, mask_t, coef_t, dk, dv,
            *sq, *sk, *sv, h, n, m, d, float(scale), BN=kv["BN"], BM=kv["BM"], DP=kv["DP"], HAS_MASK=has_mask,
            FDA=fda, PREC=kv["PREC"], num_warps=kv["num_warps"], num_stages=kv["num_stages"])
    dcoef = dcoef_part.sum(dim=(1, 3)) if fda else q.new_empty((0,), dtype=torch.float32)
    return dq, dk, dv, dcoef


@triton_attn_bwd.register_fake
def _(grad_out, q, k, v, out, lse, index, scale, key_padding_mask, coef, topk):
    dcoef = q.new_empty((3, q.shape[1]) if coef is not None else (0,), dtype=torch.float32)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), dcoef


def _setup_context(ctx, inputs, output):
    q, k, v, topk, scale, mask, coef, ce_weight = inputs
    out, lse, index, _ = output
    ctx.save_for_backward(q, k, v, out, lse, index, mask, coef)
    ctx.scale = scale
    ctx.topk = topk


def _backward(ctx, dout, dlse, dindex, dce):
    q, k, v, out, lse, index, mask, coef = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv, dcoef = torch.ops.vtrack.triton_attn_bwd(dout, q, k, v, out, lse, index, ctx.scale, mask, coef,
                                                         ctx.topk)
    return dq, dk, dv, None, None, None, (dcoef if coef is not None else None), None


triton_attn_fwd.register_autograd(_backward, setup_context=_setup_context)
