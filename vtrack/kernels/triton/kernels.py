"""Triton kernels of vtrack's attention family.

One forward kernel and two backward kernels, specialised by constexpr flags:

* ``TOPK``: per query row the ``topk`` largest logits are selected in the forward kernel (a
  running top-``KP`` buffer of composite int64 keys ``(monotone float bits << 32) | ~key_index``,
  merged per key block with ``tl.topk``; composite keys are unique, so ties go to the lower key
  index and exactly ``min(topk, valid)`` keys are kept). The kept key indices ``[N, KP]`` (int32,
  -1 = none) are saved; softmax and backward then work on the gathered keys only, so backward
  rebuilds exactly the forward selection. Backward scatters dK/dV with fp32 atomics.
* ``FDA``: adds ``alpha*exp(-delta*d2) - beta*delta*d2`` with ``d2 = max(|q|^2+|k|^2-2 q.k, 0)``
  (float32, from the same q.k as the logits); backward also returns per-program partial sums of
  dL/dalpha, dL/dbeta, dL/ddelta.
* ``CE``: after the row's log-sum-exp is final, programs that own template query rows re-scan the
  keys and accumulate ``weight_row * p[row, key]`` into a ``[B*H, M]`` float32 buffer.
* ``HAS_MASK``: key padding mask ``[B, M]`` (int8, nonzero = ignore).

Nothing of size ``[N, M]`` is written to global memory; the forward saves the row LSE
(``+inf`` for rows without any valid key, whose output is zero).
"""
from __future__ import annotations

import triton
import triton.language as tl

INT64_MIN = tl.constexpr(-9223372036854775808)


@triton.jit
def _fda_terms(raw, alpha, beta, delta):
    """The FDA bias from the raw squared distance ``|q|^2 + |k|^2 - 2 q.k`` (clamped at 0), with the
    pieces its gradients reuse: ``(bias, e, d2)``, ``e = exp(-delta*d2)``. The forward and every
    backward path compute the bias here, so the backward's recomputed logits are the forward's."""
    d2 = tl.maximum(raw, 0.0)
    e = tl.exp(-delta * d2)
    return alpha * e - beta * delta * d2, e, d2


@triton.jit
def _fda_grad(ds, raw, e, alpha, beta, delta):
    """dL/d(raw) of the FDA bias for logit gradients ``ds`` (0 where the clamp is active)."""
    return tl.where(raw > 0.0, ds * (-alpha * delta * e - beta * delta), 0.0)


@triton.jit
def _fda_bias(dot, qn, kn, alpha, beta, delta):
    """FDA bias for a tile; qn/kn already broadcast to dot's shape."""
    bias, _e, _d2 = _fda_terms(qn + kn - 2.0 * dot, alpha, beta, delta)
    return bias


@triton.jit
def _tile_logits(q, k, qn, scale, alpha, beta, delta, valid, FDA: tl.constexpr, PREC: tl.constexpr):
    """Logits [BN, BM] (float32) of a q tile [BN, DP] and k tile [BM, DP]; invalid keys -inf."""
    dot = tl.dot(q, tl.trans(k), input_precision=PREC)
    s = dot * scale
    if FDA:
        kf = k.to(tl.float32)
        kn = tl.sum(kf * kf, 1)
        s += _fda_bias(dot, qn[:, None], kn[None, :], alpha, beta, delta)
    return tl.where(valid[None, :], s, float("-inf"))


@triton.jit
def _key_valid(MASK, b, cols, M, HAS_MASK: tl.constexpr):
    ok = cols < M
    if HAS_MASK:
        mk = tl.load(MASK + b * M + cols, mask=ok, other=1)
        ok = ok & (mk == 0)
    return ok


@triton.jit
def _column(x, kcols, c):
    """Column ``c`` of a [BN, KP] tile as a [BN] vector."""
    return tl.sum(tl.where(kcols[None, :] == c, x, 0), 1)


@triton.jit
def _attn_fwd(Q, K, V, O, LSE, IDX, MASK, COEF, CEW, CEBUF,
              sqb, sqh, sqn, skb, skh, skn, svb, svh, svn,
              H, N, M, D, scale, topk,
              BN: tl.constexpr, BM: tl.constexpr, DP: tl.constexpr, KP: tl.constexpr,
              HAS_MASK: tl.constexpr, FDA: tl.constexpr, TOPK: tl.constexpr, CE: tl.constexpr,
              PREC: tl.constexpr):
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rows = pid_n * BN + tl.arange(0, BN)
    dcols = tl.arange(0, DP)
    row_ok = rows < N
    d_ok = dcols < D
    q = tl.load(Q + b * sqb + h * sqh + rows[:, None] * sqn + dcols[None, :],
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    qf = q.to(tl.float32)
    qn = tl.zeros([BN], dtype=tl.float32)
    alpha = 0.0
    beta = 0.0
    delta = 0.0
    if FDA:
        qn = tl.sum(qf * qf, 1)
        alpha = tl.load(COEF + h)
        beta = tl.load(COEF + H + h)
        delta = tl.load(COEF + 2 * H + h)
    k_base = K + b * skb + h * skh
    v_base = V + b * svb + h * svh

    if TOPK:
        # ---- selection: running top-KP of unique composite keys ----
        buf = tl.full([BN, KP], INT64_MIN, tl.int64)
        for start in range(0, M, BM):
            cols = start + tl.arange(0, BM)
            valid = _key_valid(MASK, b, cols, M, HAS_MASK)
            k = tl.load(k_base + cols[:, None] * skn + dcols[None, :],
                        mask=(cols < M)[:, None] & d_ok[None, :], other=0.0)
            s = _tile_logits(q, k, qn, scale, alpha, beta, delta, valid, FDA, PREC)
            s = tl.where(s == 0.0, 0.0, s)  # -0.0 and +0.0 tie
            bits = s.to(tl.int32, bitcast=True)
            key = bits ^ ((bits >> 31) & 0x7FFFFFFF)
            comp = (key.to(tl.int64) << 32) + (2147483647 - cols).to(tl.int64)[None, :]
            comp = tl.where(valid[None, :], comp, INT64_MIN)
            if BM > KP:
                comp = tl.topk(comp, KP)
            both = tl.reshape(tl.join(buf, comp), [BN, 2 * KP])
            buf = tl.topk(both, KP)
        kcols = tl.arange(0, KP)
        low = buf - ((buf >> 32) << 32)
        sel = (buf != INT64_MIN) & (kcols[None, :] < topk)
        idx = tl.where(sel, (2147483647 - low).to(tl.int32), -1)
        tl.store(IDX + (bh * N + rows[:, None]) * KP + kcols[None, :], idx, mask=row_ok[:, None])
        # ---- softmax over the gathered keys ----
        S = tl.full([BN, KP], float("-inf"), tl.float32)
        for c in range(0, topk):
            j = _column(idx, kcols, c)
            ok = (j >= 0) & row_ok
            kc = tl.load(k_base + j[:, None] * skn + dcols[None, :], mask=ok[:, None] & d_ok[None, :],
                         other=0.0).to(tl.float32)
            dot = tl.sum(qf * kc, 1)
            s_c = dot * scale
            if FDA:
                s_c += _fda_bias(dot, qn, tl.sum(kc * kc, 1), alpha, beta, delta)
            S = tl.where((kcols[None, :] == c) & ok[:, None], s_c[:, None], S)
        m_i = tl.max(S, 1)
        m_safe = tl.where(m_i == float("-inf"), 0.0, m_i)
        P = tl.exp(S - m_safe[:, None])
        l_i = tl.sum(P, 1)
        acc = tl.zeros([BN, DP], dtype=tl.float32)
        for c in range(0, topk):
            j = _column(idx, kcols, c)
            ok = (j >= 0) & row_ok
            p_c = _column(P, kcols, c)
            vc = tl.load(v_base + j[:, None] * svn + dcols[None, :], mask=ok[:, None] & d_ok[None, :],
                         other=0.0).to(tl.float32)
            acc += p_c[:, None] * vc
    else:
        m_i = tl.full([BN], float("-inf"), tl.float32)
        m_safe = tl.zeros([BN], dtype=tl.float32)
        l_i = tl.zeros([BN], dtype=tl.float32)
        acc = tl.zeros([BN, DP], dtype=tl.float32)
        for start in range(0, M, BM):
            cols = start + tl.arange(0, BM)
            valid = _key_valid(MASK, b, cols, M, HAS_MASK)
            kv_mask = (cols < M)[:, None] & d_ok[None, :]
            k = tl.load(k_base + cols[:, None] * skn + dcols[None, :], mask=kv_mask, other=0.0)
            v = tl.load(v_base + cols[:, None] * svn + dcols[None, :], mask=kv_mask, other=0.0)
            s = _tile_logits(q, k, qn, scale, alpha, beta, delta, valid, FDA, PREC)
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp(s - m_safe[:, None])
            corr = tl.exp(m_i - m_safe)
            l_i = l_i * corr + tl.sum(p, 1)
            acc = acc * corr[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
            m_i = m_new
    has = l_i > 0.0
    out = acc / tl.where(has, l_i, 1.0)[:, None]
    lse = tl.where(has, m_safe + tl.log(tl.where(has, l_i, 1.0)), float("inf"))
    tl.store(O + (bh * N + rows[:, None]) * D + dcols[None, :], out.to(O.dtype.element_ty),
             mask=row_ok[:, None] & d_ok[None, :])
    tl.store(LSE + bh * N + rows, lse, mask=row_ok)

    if CE:
        w = tl.load(CEW + rows, mask=row_ok, other=0.0)
        if tl.max(w, 0) > 0.0:
            for start in range(0, M, BM):
                cols = start + tl.arange(0, BM)
                valid = _key_valid(MASK, b, cols, M, HAS_MASK)
                k = tl.load(k_base + cols[:, None] * skn + dcols[None, :],
                            mask=(cols < M)[:, None] & d_ok[None, :], other=0.0)
                s = _tile_logits(q, k, qn, scale, alpha, beta, delta, valid, FDA, PREC)
                p = tl.exp(s - lse[:, None])
                tl.atomic_add(CEBUF + bh * M + cols, tl.sum(w[:, None] * p, 0), mask=cols < M)


@triton.jit
def _attn_bwd_dq(Q, K, V, DO, LSE, DELTA, IDX, MASK, COEF, DQ, DK32, DV32, DCOEF,
                 sqb, sqh, sqn, skb, skh, skn, svb, svh, svn,
                 H, N, M, D, scale, topk, n_blocks,
                 BN: tl.constexpr, BM: tl.constexpr, DP: tl.constexpr, KP: tl.constexpr,
                 HAS_MASK: tl.constexpr, FDA: tl.constexpr, TOPK: tl.constexpr, PREC: tl.constexpr):
    """dQ (and FDA coefficient partials) per query block; with TOPK also scatters dK, dV (fp32 atomics)."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rows = pid_n * BN + tl.arange(0, BN)
    dcols = tl.arange(0, DP)
    row_ok = rows < N
    d_ok = dcols < D
    rd_mask = row_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + b * sqb + h * sqh + rows[:, None] * sqn + dcols[None, :], mask=rd_mask, other=0.0)
    do = tl.load(DO + (bh * N + rows[:, None]) * D + dcols[None, :], mask=rd_mask, other=0.0)
    lse = tl.load(LSE + bh * N + rows, mask=row_ok, other=float("inf"))
    dlt = tl.load(DELTA + bh * N + rows, mask=row_ok, other=0.0)
    qf = q.to(tl.float32)
    dof = do.to(tl.float32)
    qn = tl.zeros([BN], dtype=tl.float32)
    alpha = 0.0
    beta = 0.0
    delta = 0.0
    if FDA:
        qn = tl.sum(qf * qf, 1)
        alpha = tl.load(COEF + h)
        beta = tl.load(COEF + H + h)
        delta = tl.load(COEF + 2 * H + h)
    # FDA coefficient partials: sums of ds*w per row, plus sum(ds) and sums of p*w so that the
    # error of the row constant Delta (computed from the rounded output) can be removed exactly:
    # sum_j ds_j w_j = sum_j ds'_j w_j - (sum_j ds'_j) (sum_j p_j w_j) because sum_j ds_j = 0.
    ga = tl.zeros([BN], dtype=tl.float32)
    gb = tl.zeros([BN], dtype=tl.float32)
    gd = tl.zeros([BN], dtype=tl.float32)
    s0 = tl.zeros([BN], dtype=tl.float32)
    pa = tl.zeros([BN], dtype=tl.float32)
    pb = tl.zeros([BN], dtype=tl.float32)
    pd = tl.zeros([BN], dtype=tl.float32)
    dq = tl.zeros([BN, DP], dtype=tl.float32)
    k_base = K + b * skb + h * skh
    v_base = V + b * svb + h * svh
    if TOPK:
        kcols = tl.arange(0, KP)
        idx = tl.load(IDX + (bh * N + rows[:, None]) * KP + kcols[None, :], mask=row_ok[:, None], other=-1)
        for c in range(0, topk):
            j = _column(idx, kcols, c)
            ok = (j >= 0) & row_ok
            g_mask = ok[:, None] & d_ok[None, :]
            kc = tl.load(k_base + j[:, None] * skn + dcols[None, :], mask=g_mask, other=0.0).to(tl.float32)
            vc = tl.load(v_base + j[:, None] * svn + dcols[None, :], mask=g_mask, other=0.0).to(tl.float32)
            dot = tl.sum(qf * kc, 1)
            s = dot * scale
            if FDA:
                kn = tl.sum(kc * kc, 1)
                raw = qn + kn - 2.0 * dot
                bias, e, d2 = _fda_terms(raw, alpha, beta, delta)
                s += bias
            p = tl.where(ok, tl.exp(s - lse), 0.0)
            ds = p * (tl.sum(dof * vc, 1) - dlt)
            dq += (ds * scale)[:, None] * kc
            dkc = (ds * scale)[:, None] * qf
            if FDA:
                gg = _fda_grad(ds, raw, e, alpha, beta, delta)
                dq += (2.0 * gg)[:, None] * (qf - kc)
                dkc += (2.0 * gg)[:, None] * (kc - qf)
                ga += ds * e
                gb -= ds * delta * d2
                gd -= ds * (alpha * d2 * e + beta * d2)
                s0 += ds
                pa += p * e
                pb -= p * delta * d2
                pd -= p * (alpha * d2 * e + beta * d2)
            dst = (bh * M + j[:, None]) * D + dcols[None, :]
            tl.atomic_add(DK32 + dst, dkc, mask=g_mask)
            tl.atomic_add(DV32 + dst, p[:, None] * dof, mask=g_mask)
    else:
        for start in range(0, M, BM):
            cols = start + tl.arange(0, BM)
            valid = _key_valid(MASK, b, cols, M, HAS_MASK)
            kv_mask = (cols < M)[:, None] & d_ok[None, :]
            k = tl.load(k_base + cols[:, None] * skn + dcols[None, :], mask=kv_mask, other=0.0)
            v = tl.load(v_base + cols[:, None] * svn + dcols[None, :], mask=kv_mask, other=0.0)
            dot = tl.dot(q, tl.trans(k), input_precision=PREC)
            s = dot * scale
            if FDA:
                kf = k.to(tl.float32)
                raw = qn[:, None] + tl.sum(kf * kf, 1)[None, :] - 2.0 * dot
                bias, e, d2 = _fda_terms(raw, alpha, beta, delta)
                s += bias
            s = tl.where(valid[None, :], s, float("-inf"))
            p = tl.exp(s - lse[:, None])
            dp = tl.dot(do, tl.trans(v), input_precision=PREC)
            ds = p * (dp - dlt[:, None])
            dq += scale * tl.dot(ds.to(k.dtype), k, input_precision=PREC)
            if FDA:
                gg = _fda_grad(ds, raw, e, alpha, beta, delta)
                dq += 2.0 * (tl.sum(gg, 1)[:, None] * qf - tl.dot(gg.to(k.dtype), k, input_precision=PREC))
                ga += tl.sum(ds * e, 1)
                gb -= tl.sum(ds * delta * d2, 1)
                gd -= tl.sum(ds * (alpha * d2 * e + beta * d2), 1)
                s0 += tl.sum(ds, 1)
                pa += tl.sum(p * e, 1)
                pb -= tl.sum(p * delta * d2, 1)
                pd -= tl.sum(p * (alpha * d2 * e + beta * d2), 1)
    tl.store(DQ + (bh * N + rows[:, None]) * D + dcols[None, :], dq.to(DQ.dtype.element_ty), mask=rd_mask)
    if FDA:
        base = DCOEF + bh * n_blocks + pid_n
        stride = n_blocks * tl.num_programs(1)
        tl.store(base, tl.sum(ga - s0 * pa, 0))
        tl.store(base + stride, tl.sum(gb - s0 * pb, 0))
        tl.store(base + 2 * stride, tl.sum(gd - s0 * pd, 0))


@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, LSE, DELTA, MASK, COEF, DK, DV,
                   sqb, sqh, sqn, skb, skh, skn, svb, svh, svn,
                   H, N, M, D, scale,
                   BN: tl.constexpr, BM: tl.constexpr, DP: tl.constexpr,
                   HAS_MASK: tl.constexpr, FDA: tl.constexpr, PREC: tl.constexpr):
    """dK, dV per key block (dense and FDA paths)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    cols = pid_m * BM + tl.arange(0, BM)
    dcols = tl.arange(0, DP)
    col_ok = cols < M
    d_ok = dcols < D
    kv_mask = col_ok[:, None] & d_ok[None, :]
    valid = _key_valid(MASK, b, cols, M, HAS_MASK)
    k = tl.load(K + b * skb + h * skh + cols[:, None] * skn + dcols[None, :], mask=kv_mask, other=0.0)
    v = tl.load(V + b * svb + h * svh + cols[:, None] * svn + dcols[None, :], mask=kv_mask, other=0.0)
    kf = k.to(tl.float32)
    kn = tl.zeros([BM], dtype=tl.float32)
    alpha = 0.0
    beta = 0.0
    delta = 0.0
    if FDA:
        kn = tl.sum(kf * kf, 1)
        alpha = tl.load(COEF + h)
        beta = tl.load(COEF + H + h)
        delta = tl.load(COEF + 2 * H + h)
    dk = tl.zeros([BM, DP], dtype=tl.float32)
    dv = tl.zeros([BM, DP], dtype=tl.float32)
    for start in range(0, N, BN):
        rows = start + tl.arange(0, BN)
        row_ok = rows < N
        rd_mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(Q + b * sqb + h * sqh + rows[:, None] * sqn + dcols[None, :], mask=rd_mask, other=0.0)
        do = tl.load(DO + (bh * N + rows[:, None]) * D + dcols[None, :], mask=rd_mask, other=0.0)
        lse = tl.load(LSE + bh * N + rows, mask=row_ok, other=float("inf"))
        dlt = tl.load(DELTA + bh * N + rows, mask=row_ok, other=0.0)
        dot = tl.dot(q, tl.trans(k), input_precision=PREC)
        s = dot * scale
        if FDA:
            qf = q.to(tl.float32)
            raw = tl.sum(qf * qf, 1)[:, None] + kn[None, :] - 2.0 * dot
            bias, e, d2 = _fda_terms(raw, alpha, beta, delta)
            s += bias
        s = tl.where(valid[None, :], s, float("-inf"))
        p = tl.exp(s - lse[:, None])
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PREC)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - dlt[:, None])
        dk += scale * tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PREC)
        if FDA:
            gg = _fda_grad(ds, raw, e, alpha, beta, delta)
            dk += 2.0 * (tl.sum(gg, 0)[:, None] * kf - tl.dot(tl.trans(gg.to(q.dtype)), q, input_precision=PREC))
    dst = (bh * M + cols[:, None]) * D + dcols[None, :]
    tl.store(DK + dst, dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + dst, dv.to(DV.dtype.element_ty), mask=kv_mask)
