"""The Triton backend's torch operators: the fused backends' five ops (:data:`vtrack.kernels.fused.SCHEMAS`)
as ``vtrack::triton_topk_attention``, ``triton_fda_attention``, ``triton_ce_attention``,
``triton_topk_attention_backward`` and ``triton_fda_attention_backward``, with the C++ ops' exact
schemas, outputs and conventions (docs/kernels.md "Kernel schema"), over the one parameterised Triton
forward kernel and its backward kernels (:func:`_forward`, :func:`_backward`).

Defined with ``torch.library.define`` + ``impl`` (CPU: the interpreter; CUDA); their fakes and autograd
are the C++ ops' (:func:`vtrack.kernels.fused.register`), so ``torch.compile(fullgraph=True)`` treats them
as opaque ops (this also works with the Triton interpreter, unlike ``triton_op``).

What the ops do around the kernels: the kernel's kept-key buffer ``[B,H,N,KP]`` (descending logit
order, KP a power of two) becomes the schema's ascending ``index`` ``[B,H,N,min(topk,M)]`` in the
forward op, and the backward op pads it back to KP columns (so the top-K backward accumulates over the
kept keys in ascending key order); CE takes per-row weights (``1/(H*T)`` on the template rows) and its
per-head buffer is summed to ``score``, with ``keep_index`` from :func:`vtrack.kernels.reference.keep_index_of`.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import triton

from ..fused import SCHEMAS, register
from ..reference import keep_index_of
from .configs import launch_config
from .kernels import _attn_bwd_dkdv, _attn_bwd_dq, _attn_fwd

#: True when the kernels were defined under the Triton interpreter (CPU tensors only work then).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

#: The name prefix of the Triton ops (``torch.ops.vtrack.triton_topk_attention`` ...).
PREFIX = "triton_"

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


# ------------------------------------------------------------------------------------------------
# The kernels' launchers (one parameterised forward, one backward)
# ------------------------------------------------------------------------------------------------

def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk: int, scale: float,
             key_padding_mask: Optional[torch.Tensor], coef: Optional[torch.Tensor],
             ce_weight: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward kernel (``topk`` 0: dense) -> (out, lse [B,H,N] f32, kept-key buffer [B,H,N,KP] i32 in
    descending logit order (empty when dense), CE buffer [B,H,M] f32 of ``ce_weight``-weighted rows (empty
    without ``ce_weight`` [N]))."""
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


def _backward(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
              lse: torch.Tensor, index: torch.Tensor, scale: float, key_padding_mask: Optional[torch.Tensor],
              coef: Optional[torch.Tensor], topk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward kernels -> (dq, dk, dv, dcoef [3,H] float32 (empty without FDA)); ``topk`` > 0 reads the
    kept keys of ``index`` [B,H,N,KP] (any order, -1 = none), else the dense kernels run with the mask."""
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


# ------------------------------------------------------------------------------------------------
# The schema's ops (vtrack.kernels.fused.SCHEMAS)
# ------------------------------------------------------------------------------------------------

def _dense_index(key_padding_mask: Optional[torch.Tensor], b: int, h: int, n: int, m: int,
                 device: torch.device) -> torch.Tensor:
    """The index of top-K with ``topk >= M`` (dense attention): every unmasked key, ascending, -1 after."""
    keys = torch.arange(m, dtype=torch.int32, device=device).expand(b, h, n, m)
    if key_padding_mask is not None:
        keys = _ascending(keys.masked_fill(key_padding_mask[:, None, None, :], -1), m)
    return keys.contiguous()


def _ascending(idx: torch.Tensor, m: int) -> torch.Tensor:
    """Kept-key rows sorted ascending with -1 (none) after the last key."""
    idx = torch.where(idx < 0, m, idx).sort(-1).values
    return idx.masked_fill(idx == m, -1)


def _mask_of_dense_index(index: torch.Tensor, m: int) -> torch.Tensor:
    """The key padding mask [B,M] behind a dense index: the keys missing from a row (every row of a batch
    element keeps the same keys, its unmasked ones; a fully masked element's rows are all -1)."""
    b = index.shape[0]
    first = index[:, 0, 0, :].long() if index.shape[1] and index.shape[2] else index.new_full((b, m), -1).long()
    kept = torch.zeros(b, m + 1, dtype=torch.bool, device=index.device)
    kept.scatter_(1, torch.where(first < 0, m, first), True)
    return ~kept[:, :m]


def topk_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk: int, scale: float,
                   key_padding_mask: Optional[torch.Tensor] = None,
                   coef: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``vtrack::triton_topk_attention`` -> (out, lse, index [B,H,N,min(topk,M)] int32 ascending, -1 padded)."""
    b, h, n, _ = q.shape
    m = k.shape[2]
    if topk >= m:
        out, lse, _, _ = _forward(q, k, v, 0, scale, key_padding_mask, coef, None)
        return out, lse, _dense_index(key_padding_mask, b, h, n, m, q.device)
    out, lse, buf, _ = _forward(q, k, v, topk, scale, key_padding_mask, coef, None)
    return out, lse, _ascending(buf[..., :topk], m)


def topk_attention_backward(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            out: torch.Tensor, lse: torch.Tensor, index: torch.Tensor, scale: float,
                            coef: Optional[torch.Tensor] = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``vtrack::triton_topk_attention_backward`` -> (dq, dk, dv, dcoef) from the schema's index."""
    m = k.shape[2]
    width = index.shape[-1]
    if width >= m:  # topk >= M: the dense kernels, with the mask the index implies
        return _backward(grad_out, q, k, v, out, lse, index, scale, _mask_of_dense_index(index, m), coef, 0)
    buf = torch.nn.functional.pad(index, (0, topk_pad(width) - width), value=-1).contiguous()
    return _backward(grad_out, q, k, v, out, lse, buf, scale, None, coef, width)


def fda_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                  key_padding_mask: Optional[torch.Tensor] = None,
                  coef: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``vtrack::triton_fda_attention`` -> (out, lse): dense attention, with the FDA bias when ``coef`` is given."""
    out, lse, _, _ = _forward(q, k, v, 0, scale, key_padding_mask, coef, None)
    return out, lse


def fda_attention_backward(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           out: torch.Tensor, lse: torch.Tensor, scale: float,
                           key_padding_mask: Optional[torch.Tensor] = None, coef: Optional[torch.Tensor] = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``vtrack::triton_fda_attention_backward`` -> (dq, dk, dv, dcoef)."""
    none = torch.empty((0,), dtype=torch.int32, device=q.device)
    return _backward(grad_out, q, k, v, out, lse, none, scale, key_padding_mask, coef, 0)


def ce_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_template: int, keep: int,
                 template_index: torch.Tensor, scale: float, topk: int = 0,
                 key_padding_mask: Optional[torch.Tensor] = None, coef: Optional[torch.Tensor] = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``vtrack::triton_ce_attention`` -> (out, lse, index, score [B,Ls] f32, keep_index [B,keep] int64).

    Top-K below M is not fused with CE here (ValueError; the backend declares it)."""
    b, h, n, _ = q.shape
    m = k.shape[2]
    if 0 < topk < m:
        raise ValueError(f"topk: the Triton ce_attention does not fuse top-K with CE; expected 0 or >= M={m}, "
                         f"got {topk}")
    t = template_index.numel()
    ce_weight = torch.zeros(n, dtype=torch.float32, device=q.device).index_add_(
        0, template_index, torch.full((t,), 1.0 / (h * t), dtype=torch.float32, device=q.device))
    out, lse, _, ce_buf = _forward(q, k, v, 0, scale, key_padding_mask, coef, ce_weight)
    score = ce_buf.sum(1)[:, num_template:]
    # NaN contract (docs/kernels.md): a template row that saw a NaN logit makes its score row NaN.
    # The kernel gives such a row lse = +inf like a fully masked row, but a NaN output.
    rows = template_index
    saw_nan = (torch.isinf(lse[:, :, rows]) & torch.isnan(out[:, :, rows]).any(-1)).flatten(1).any(1)
    score = score.masked_fill(saw_nan[:, None], float("nan")).contiguous()
    index = (_dense_index(key_padding_mask, b, h, n, m, q.device) if topk > 0
             else torch.empty((b, h, n, 0), dtype=torch.int32, device=q.device))
    return out, lse, index, score, keep_index_of(score, keep).contiguous()


_OPS = {"topk_attention": topk_attention, "topk_attention_backward": topk_attention_backward,
        "fda_attention": fda_attention, "fda_attention_backward": fda_attention_backward,
        "ce_attention": ce_attention}

for _name, _fn in _OPS.items():
    torch.library.define(f"vtrack::{PREFIX}{_name}", SCHEMAS[_name])
    torch.library.impl(f"vtrack::{PREFIX}{_name}", ("cpu", "cuda"), _fn)
register(PREFIX)
