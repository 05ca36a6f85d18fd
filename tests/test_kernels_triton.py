"""Triton backend vs the reference (interpreter on CPU; small sizes), compile, dispatch reasons, GPU checks."""
import math

import pytest
import torch

import vtrack.kernels as K

pytest.importorskip("triton")  # the third-party package (the "triton" extra); vtrack's own module must import
import vtrack.kernels.triton as triton_backend  # noqa: E402
DEV = "cuda" if torch.cuda.is_available() else "cpu"
if DEV == "cpu" and not triton_backend.INTERPRET:
    pytest.skip("Triton on CPU needs TRITON_INTERPRET=1 (set by conftest)", allow_module_level=True)


def _make(b, h, n, m, d, dtype, seed=0, coef=None):
    g = torch.Generator().manual_seed(seed)
    t = [torch.randn(b, h, s, d, generator=g) for s in (n, m, m)]
    fda = None
    if coef is not None:
        fda = {}
        for name, val in coef.items():
            if isinstance(val, list):  # [x] -> a 0-d tensor, [x1..xH] -> an [H] tensor
                val = torch.tensor(val[0] if len(val) == 1 else val, dtype=torch.float32)
            fda[name] = val
    return t, fda


def _run(t, dtype, backend, fda=None, dout_dtype=None, **kw):
    """Forward + backward of one call; returns (out, extras, grads by name)."""
    q, k, v = (x.detach().to(DEV, dtype).clone().requires_grad_(True) for x in t)
    fda_t = None
    leaves = {}
    if fda is not None:
        fda_t = {}
        for name, val in fda.items():
            if isinstance(val, torch.Tensor):
                val = val.detach().to(DEV, torch.float64 if dtype == torch.float64 else torch.float32).clone().requires_grad_(True)
                leaves[name] = val
            fda_t[name] = val
    res = K.attention(q, k, v, fda=fda_t, backend=backend, **kw)
    out, extra = (res[0], res[1:]) if isinstance(res, tuple) else (res, ())
    g = torch.Generator().manual_seed(123)
    dout = torch.randn(out.shape, generator=g).to(dout_dtype or out.dtype).to(DEV, out.dtype)
    out.backward(dout)
    grads = {"q": q.grad, "k": k.grad, "v": v.grad}
    grads.update({n: x.grad for n, x in leaves.items()})
    return out.detach(), extra, grads


def _check_flash_rule(t, dtype, fda=None, floor=None, **kw):
    """FlashAttention rule: |triton - ref_hi| <= 2 |ref_same - ref_hi| + floor, for out and every gradient."""
    hi = torch.float64 if dtype == torch.float32 else torch.float32
    if dtype != torch.float32:  # round the inputs once, so all runs see the same values
        t = [x.to(dtype).float() for x in t]
    tri = _run(t, dtype, "triton", fda, dtype, **kw)
    same = _run(t, dtype, "reference", fda, dtype, **kw)
    ref = _run(t, hi, "reference", fda, dtype, **kw)
    floor = floor if floor is not None else (2e-5 if dtype == torch.float32 else 2e-3)
    pairs = [("out", tri[0], same[0], ref[0])] + [(n, tri[2][n], same[2][n], ref[2][n]) for n in ref[2]]
    for name, a, s, r in pairs:
        assert a is not None and torch.isfinite(a).all(), name
        r = r.double().cpu()
        err = (a.double().cpu() - r).abs().max().item()
        err_same = (s.double().cpu() - r).abs().max().item()
        bound = 2 * err_same + floor * max(1.0, r.abs().max().item())
        assert err <= bound, f"{name}: triton error {err:.3g} > bound {bound:.3g} (same-precision error {err_same:.3g})"
    return tri, ref


CASES = [
    # name, (B, H, N, M, D), kwargs, fda coefficients
    ("dense-odd", (1, 2, 19, 37, 16), {}, None),
    ("dense-d128", (1, 1, 17, 20, 128), {}, None),
    ("topk5-mask", (2, 2, 19, 37, 16), {"topk": 5, "mask": True}, None),
    ("topk1-d64", (1, 2, 9, 21, 64), {"topk": 1}, None),
    ("topk>M", (1, 2, 9, 12, 32), {"topk": 40}, None),
    ("topk+fda", (1, 2, 9, 21, 32), {"topk": 7}, {"alpha": [0.3, -0.1], "beta": 0.2, "delta": [0.05]}),
    ("fda-tensors-mask", (2, 2, 19, 23, 32), {"mask": True}, {"alpha": [0.3, 0.1], "beta": [0.2], "delta": [0.05, 0.1]}),
    ("fda-float-d64", (1, 3, 17, 17, 64), {}, {"alpha": 0.1, "beta": 0.1, "delta": 0.02}),
    ("ce", (2, 2, 25, 25, 32), {"ce": {"num_template": 9, "keep": 0.7}}, None),
    ("ce-mask", (2, 2, 20, 20, 16), {"ce": {"num_template": 4, "keep": 6}, "mask": True}, None),
    ("ce+fda", (1, 2, 20, 20, 16), {"ce": {"num_template": 4, "keep": 5, "template_index": [0, 3]}},
     {"alpha": [0.2, 0.1], "beta": 0.1, "delta": 0.05}),
]


def _kwargs(shape, kw):
    kw = dict(kw)
    if kw.pop("mask", False):
        b, m = shape[0], shape[3]
        mask = torch.zeros(b, m, dtype=torch.bool)
        mask[0, 1::3] = True
        if b > 1:
            mask[1, :] = True  # a fully masked batch element
        kw["key_padding_mask"] = mask.to(DEV)
    return kw


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_triton_matches_reference(case, dtype):
    name, shape, kw, coef = case
    if dtype == torch.float16 and name in ("dense-d128", "topk1-d64", "fda-float-d64", "ce-mask"):
        pytest.skip("fp16 covered by the other shapes (interpreter time budget)")
    t, fda = _make(*shape, dtype, coef=coef)
    kw = _kwargs(shape, kw)
    tri, ref = _check_flash_rule(t, dtype, fda, **kw)
    if "ce" in kw:
        keep_index, score = tri[1]
        ref_keep, ref_score = ref[1]
        assert keep_index.dtype == torch.int64 and score.shape == ref_score.shape
        torch.testing.assert_close(score.double().cpu(), ref_score.double().cpu(),
                                   atol=1e-6 if dtype == torch.float32 else 2e-3, rtol=0)
        if dtype == torch.float32:
            assert torch.equal(keep_index.cpu(), ref_keep.cpu())
        expect = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :keep_index.shape[1]]
        assert torch.equal(keep_index, expect)
    if "key_padding_mask" in kw and shape[0] > 1:
        assert torch.all(tri[0][1] == 0)  # fully masked rows give zeros
        if "ce" in kw:
            keep_index, score = tri[1]
            assert torch.all(score[1] == 0) and keep_index[1].tolist() == list(range(keep_index.shape[1]))


GPU_TABLE_CASES = [
    # name, dtype, (B, H, N, M, D), kwargs, fda coefficients; shapes span several tiles of the GPU table
    ("fp32-fda-mask-d128", torch.float32, (2, 1, 20, 37, 128), {"mask": True}, {"alpha": 0.1, "beta": 0.1, "delta": 0.02}),
    ("fp16-topk5-mask-d32", torch.float16, (1, 1, 40, 70, 32), {"topk": 5, "mask": True}, None),
    ("fp16-dense-d64", torch.float16, (1, 1, 70, 70, 64), {}, None),
]


@pytest.mark.parametrize("case", GPU_TABLE_CASES, ids=[c[0] for c in GPU_TABLE_CASES])
def test_triton_gpu_launch_configs_match_reference(case, monkeypatch):
    """The GPU table's tiles (configs.GPU_CONFIGS, not the interpreter's 16x16) give the reference's results.

    On CPU this runs the interpreter with the GPU tile sizes (warps and stages do not matter there); it covers
    the top-K merge of key blocks wider than KP, which the interpreter's own tiles never take.
    """
    import vtrack.kernels.triton.ops as triton_ops

    monkeypatch.setattr(triton_ops, "INTERPRET", False)
    name, dtype, shape, kw, coef = case
    t, fda = _make(*shape, dtype, coef=coef)
    _check_flash_rule(t, dtype, fda, **_kwargs(shape, kw))


def test_dispatch_reasons_and_auto_on_cpu(monkeypatch):
    # The declaration under the interpreter (what CPU-only machines run); on a GPU machine the
    # interpreter is off, so it is switched on here: these checks read only the declaration.
    monkeypatch.setattr(triton_backend, "INTERPRET", True)
    q = torch.randn(1, 1, 4, 16)
    inputs = K.build_inputs(q, q, q, topk=2)
    assert K.select_backend(inputs).name != "triton"  # auto never picks the interpreter on CPU
    assert K.registered_backends("cuda")[:2] == ["sdpa", "triton"]  # sdpa: dense only; triton first for the rest
    reasons = K.not_supported_reasons("triton", K.build_inputs(q.double(), q.double(), q.double()))
    assert any("float64" in r for r in reasons)
    with pytest.raises(ValueError, match="bfloat16 tl.dot"):
        K.topk_attention(q.bfloat16(), q.bfloat16(), q.bfloat16(), 2, backend="triton")
    monkeypatch.setattr(triton_backend, "INTERPRET", False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        K.topk_attention(q, q, q, 2, backend="triton")


def _op_args(name, q, k, v, coef, mask=None):
    """Arguments of the schema op ``name`` (vtrack.kernels.fused.SCHEMAS), forward ops only."""
    n_t = 4
    return {"topk_attention": (q, k, v, 3, 0.25, mask, coef),
            "fda_attention": (q, k, v, 0.25, mask, coef),
            "ce_attention": (q, k, v, n_t, 3, torch.tensor([0, 3], device=DEV), 0.25, 0, mask, coef)}[name]


@pytest.mark.parametrize("name", ["topk_attention", "fda_attention", "ce_attention"])
def test_opcheck_triton_ops(name):
    q, k, v = (torch.randn(1, 2, 9, 16, device=DEV, requires_grad=True) for _ in range(3))
    coef = torch.tensor([[0.1, 0.2], [0.1, 0.1], [0.05, 0.05]], device=DEV, requires_grad=True)
    op = getattr(torch.ops.vtrack, "triton_" + name).default
    torch.library.opcheck(op, _op_args(name, q, k, v, coef),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    out, lse, *rest = op(*_op_args(name, q, k, v, coef))
    go = torch.randn_like(out)
    backward = {"topk_attention": ("topk_attention_backward", (go, q, k, v, out, lse, rest[0] if rest else None, 0.25, coef)),
                "fda_attention": ("fda_attention_backward", (go, q, k, v, out, lse, 0.25, None, coef))}.get(name)
    if backward is not None:
        bwd = getattr(torch.ops.vtrack, "triton_" + backward[0]).default
        torch.library.opcheck(bwd, tuple(x.detach() if isinstance(x, torch.Tensor) else x for x in backward[1]),
                              test_utils=("test_schema", "test_faketensor"))


def _cpp_ops_or_skip():
    from ext_required import REQUIRE_EXT
    from vtrack.kernels import cpp_ops

    if not cpp_ops.register_meta() and not REQUIRE_EXT:
        pytest.skip("vtrack._C unavailable (VTRACK_REQUIRE_EXT=1 makes this a failure)")


def test_triton_ops_have_the_cpp_ops_schemas():
    """One schema per op for every fused backend: vtrack::triton_<op> has exactly vtrack::<op>'s arguments
    and outputs (names, types, defaults), both written from vtrack.kernels.fused.SCHEMAS."""
    from vtrack.kernels.fused import SCHEMAS

    _cpp_ops_or_skip()
    for name, schema in SCHEMAS.items():
        cpp = str(getattr(torch.ops.vtrack, name).default._schema)
        tri = str(getattr(torch.ops.vtrack, "triton_" + name).default._schema)
        assert cpp == f"vtrack::{name}{schema}"
        assert tri == f"vtrack::triton_{name}{schema}"


@pytest.mark.parametrize("masked", [False, True])
def test_cpp_and_triton_ops_return_the_same_outputs(masked):
    """Below the dispatcher the C++ and Triton ops agree: the same arguments (coef [3,H]: rows alpha, beta,
    delta) give the same out/lse, the same ascending -1-padded index (also topk >= M), the same CE
    score/keep_index, and the backwards the same (dq, dk, dv, dcoef [3,H]) from that index."""
    from vtrack.kernels.reference import packed_coef

    _cpp_ops_or_skip()
    dev = "cpu"  # the C++ CPU ops against the Triton ops on the same (CPU, interpreter) tensors
    if DEV != "cpu":
        pytest.skip("the interpreter comparison runs on CPU-only machines")
    t, _ = _make(2, 2, 12, 12, 16, torch.float32)
    q, k, v = (x.to(dev) for x in t)
    fda = {"alpha": torch.tensor([0.3, 0.1]), "beta": 0.2, "delta": torch.tensor(0.05)}
    coef = packed_coef(K.build_inputs(q, k, v, fda=fda))
    assert torch.equal(coef, torch.tensor([[0.3, 0.1], [0.2, 0.2], [0.05, 0.05]]))
    mask = None
    if masked:
        mask = torch.zeros(2, 12, dtype=torch.bool)
        mask[0, [1, 5]] = True
        mask[1] = True  # a fully masked batch element
    ops = torch.ops.vtrack
    go = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))
    calls = [("topk_attention", (q, k, v, 3, 0.25, mask, coef)), ("topk_attention", (q, k, v, 12, 0.25, mask, None)),
             ("fda_attention", (q, k, v, 0.25, mask, coef)),
             ("ce_attention", (q, k, v, 4, 3, torch.tensor([0, 3]), 0.25, 0, mask, coef))]
    for name, args in calls:
        cpp, tri = getattr(ops, name)(*args), getattr(ops, "triton_" + name)(*args)
        assert len(cpp) == len(tri)
        for part, a, b in zip(("out", "lse", "index", "score", "keep_index")[:len(cpp)], cpp, tri):
            assert a.dtype == b.dtype and a.shape == b.shape, (name, part)
            if a.dtype in (torch.int32, torch.int64):
                assert torch.equal(a, b), (name, part)
            else:
                torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=lambda m, n=name, p=part: f"{n} {p}: {m}")
        out, lse = tri[0], tri[1]
        if name == "topk_attention":
            bwd = "topk_attention_backward", (go, q, k, v, out, lse, tri[2], 0.25, args[-1])
        else:
            bwd = "fda_attention_backward", (go, q, k, v, out, lse, 0.25, mask, coef)
        g_cpp, g_tri = getattr(ops, bwd[0])(*bwd[1]), getattr(ops, "triton_" + bwd[0])(*bwd[1])
        for part, a, b in zip(("dq", "dk", "dv", "dcoef"), g_cpp, g_tri):
            assert a.shape == b.shape and a.dtype == b.dtype, (name, part)
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4, msg=lambda m, n=name, p=part: f"{n} {p}: {m}")


@pytest.mark.parametrize("op", ["topk", "fda", "ce"])
def test_compile_fullgraph_triton(op):
    t, _ = _make(1, 2, 13, 13, 16, torch.float32)
    q, k, v = (x.to(DEV).requires_grad_(True) for x in t)
    alpha = torch.tensor([0.2, 0.1], device=DEV, requires_grad=True)

    def fn(q, k, v, alpha):
        if op == "topk":
            return K.topk_attention(q, k, v, 3, backend="triton")
        if op == "fda":
            return K.fda_attention(q, k, v, alpha=alpha, beta=0.1, delta=0.05, backend="triton")
        out, keep_index, score = K.ce_attention(q, k, v, num_template=4, keep=3, backend="triton")
        return out * score.mean() + keep_index.sum()

    exp = fn(q, k, v, alpha)
    exp.sum().backward()
    grads = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    got = torch.compile(fn, fullgraph=True, backend="aot_eager")(q, k, v, alpha)
    got.sum().backward()
    torch.testing.assert_close(got, exp)
    for a, x in zip(grads, (q, k, v)):
        torch.testing.assert_close(x.grad, a)


@pytest.mark.gpu
@pytest.mark.parametrize("op", ["dense", "topk", "fda", "ce"])
def test_triton_bf16_gpu(op):
    kw = {"topk": {"topk": 32}, "fda": {}, "ce": {"ce": {"num_template": 64, "keep": 0.7}}, "dense": {}}[op]
    coef = {"alpha": [0.1] * 4, "beta": 0.1, "delta": 0.02} if op == "fda" else None
    t, fda = _make(2, 4, 320, 320, 64, torch.float32, coef=coef)
    _check_flash_rule(t, torch.bfloat16, fda, floor=2e-2, **kw)


@pytest.mark.gpu
def test_triton_memory_linear_in_n_gpu():
    """Forward+backward memory grows ~linearly in N (no [N, M] tensor), unlike the reference."""
    peaks = []
    for n in (2048, 4096):
        q, k, v = (torch.randn(1, 4, n, 64, device="cuda", dtype=torch.float16, requires_grad=True) for _ in range(3))
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        K.topk_attention(q, k, v, 32, backend="triton").sum().backward()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
    assert peaks[1] < 2.6 * peaks[0]
    assert peaks[1] < 4 * 4096 * 4096 * 2  # far below one fp16 [H, N, N] logits tensor


@pytest.mark.gpu
def test_triton_speed_gpu():
    """Triton top-K forward+backward is faster than the reference at the SparseTT shape."""
    from vtrack.bench.common import time_fn

    q, k, v = (torch.randn(32, 8, 361, 32, device="cuda", dtype=torch.float16, requires_grad=True) for _ in range(3))

    def step(backend):
        return lambda: K.topk_attention(q, k, v, 32, backend=backend).sum().backward()

    t_tri = time_fn(step("triton"), device="cuda").median_ms
    t_ref = time_fn(step("reference"), device="cuda").median_ms
    assert t_tri < t_ref / 2, (t_tri, t_ref)


def test_scale_parameter_respected():
    t, _ = _make(1, 1, 5, 17, 16, torch.float32)
    a = K.topk_attention(*(x.to(DEV) for x in t), 4, scale=0.5 / math.sqrt(16), backend="triton")
    b = K.topk_attention(*(x.to(DEV) for x in t), 4, scale=0.5 / math.sqrt(16), backend="reference")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_triton_kernels_compile_for_sm90(tmp_path):
    """Every kernel variant compiles to a cubin for sm_90 offline (a subprocess without the interpreter),
    and with the launch table none spills at the head dims 32/64/128 (docs/kernels.md)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    report = tmp_path / "resources.json"
    res = subprocess.run([sys.executable, "-m", "vtrack.kernels.triton.compile_check", "--arch", "90", "--resources",
                          "--json", str(report)], capture_output=True, text=True, env=env, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "0 failed" in res.stdout
    variants = json.loads(report.read_text())["variants"]
    assert len(variants) == 108
    assert [v for v in variants if v["stack"] != 0] == []
