"""Dispatcher: priority order, auto selection, explicit-backend errors, registration API."""
import pytest
import torch

import vtrack.kernels as K


class _Fake:
    """A plugin backend: declares its capabilities (default: everything, like the reference)."""

    def __init__(self, name, capabilities=K.Capabilities(), unavailable=None):
        self.name = name
        self.capabilities = capabilities
        self.unavailable = unavailable
        self.calls = 0

    def unavailable_reason(self):
        return self.unavailable

    def run(self, inputs):
        self.calls += 1
        return K.get_backend("reference").run(inputs)


@pytest.fixture
def qkv():
    return [torch.randn(1, 2, 5, 4) for _ in range(3)]


def test_reference_registered_and_auto_works(qkv):
    assert "reference" in K.registered_backends()
    # priorities on the CPU: cpp (50) before the reference (0), the Triton interpreter (-100) after it
    cpu = K.available_backends(device="cpu")
    assert cpu == K.registered_backends("cpu")
    assert cpu.index("reference") < cpu.index("triton")
    assert "cpp" not in cpu or cpu.index("cpp") < cpu.index("reference")
    topk = K.build_inputs(*qkv, topk=2)
    assert K.select_backend(topk).name == K.available_backends(topk)[0] == [b for b in cpu if b != "sdpa"][0]
    out = K.topk_attention(*qkv, 2)
    assert out.shape == (1, 2, 5, 4)


def test_priority_and_reasons(qkv):
    fast = _Fake("fake_fast")
    broken = _Fake("fake_broken", K.Capabilities(dtypes={"cuda": (torch.float16,)}, max_head_dim=2))
    K.register_backend(fast, priority={"cpu": 1000, "default": -1})
    K.register_backend(broken, priority=2000)
    try:
        assert K.registered_backends("cpu")[:2] == ["fake_broken", "fake_fast"]
        assert K.registered_backends("cuda").index("fake_fast") > K.registered_backends("cuda").index("reference")
        K.topk_attention(*qkv, 2)
        assert fast.calls == 1  # auto skipped the broken one
        inputs = K.build_inputs(*qkv, topk=2)
        assert K.available_backends(inputs)[:1] == ["fake_fast"]
        with pytest.raises(ValueError, match="needs CUDA tensors") as exc:
            K.topk_attention(*qkv, 2, backend="fake_broken")
        assert "head dim 4 > max_head_dim 2" in str(exc.value)
        with pytest.raises(ValueError, match="already registered"):
            K.register_backend(_Fake("fake_fast"))
        K.register_backend(_Fake("fake_fast"), priority=1, replace=True)
    finally:
        K.unregister_backend("fake_fast")
        K.unregister_backend("fake_broken")
    assert "fake_fast" not in K.registered_backends()


def test_register_validates():
    with pytest.raises(TypeError, match="backend"):
        K.register_backend(object())
    with pytest.raises(ValueError, match="auto"):
        K.register_backend(_Fake("auto"))
    with pytest.raises(TypeError, match="backend: expected a backend name"):
        K.topk_attention(*[torch.randn(1, 1, 2, 4)] * 3, 1, backend=None)


def test_layers_accept_a_registered_backend_through_the_one_set_backend():
    from vtrack.models.backbones.vit import ViT
    from vtrack.models.layers.attention import Attention
    from vtrack.models.layers.backend import BackendSwitchable
    from vtrack.models.layers.transformer import MultiHeadAttention

    fake = _Fake("fake_plugin")
    attn = Attention(16, 2)
    with pytest.raises(ValueError, match=r"backend: expected one of \['auto', .*'reference'.*got 'fake_plugin'"):
        attn.set_backend("fake_plugin")
    K.register_backend(fake, priority=-1000)
    try:
        attn.set_backend("fake_plugin")
        mha = MultiHeadAttention(16, 2, backend="fake_plugin")
        x = torch.randn(1, 3, 16)
        attn(x)
        assert attn.backend == mha.backend == "fake_plugin" and fake.calls == 1
        vit = ViT(embed_dim=16, depth=2, num_heads=2, patch_size=4)
        assert isinstance(vit, BackendSwitchable)
        vit.set_backend("fake_plugin")
        assert {m.backend for m in vit.modules() if isinstance(m, Attention)} == {"fake_plugin"}
    finally:
        K.unregister_backend("fake_plugin")
    with pytest.raises(TypeError, match="backend: expected a backend name"):
        attn.set_backend(3)


def test_refusals_come_from_the_declared_capabilities():
    """One generic function turns a declaration into reasons: the same backend code with another
    declaration refuses other inputs, with messages naming the declared limits."""
    narrow = _Fake("fake_narrow", K.Capabilities(dtypes={"cpu": (torch.float32,)}, max_head_dim=4, fda=False,
                                                 notes={"float64": "no double accumulation"}))
    q = torch.randn(1, 2, 5, 8, dtype=torch.float64)
    inputs = K.build_inputs(q, q, q, fda={"alpha": 0.1, "beta": 0.1, "delta": 0.1})
    K.register_backend(narrow, priority=-1000)
    try:
        reasons = K.not_supported_reasons("fake_narrow", inputs)
        assert reasons == K.capability_reasons(narrow.capabilities, inputs)
        assert reasons == ["dtype torch.float64 not supported on cpu (declared: float32): no double accumulation",
                           "head dim 8 > max_head_dim 4", "no FDA bias (fda)"]
        with pytest.raises(ValueError, match=r"max_head_dim 4") as exc:
            K.fda_attention(q, q, q, alpha=0.1, beta=0.1, delta=0.1, backend="fake_narrow")
        assert "no FDA bias" in str(exc.value) and "float64" in str(exc.value)
        narrow.capabilities = K.Capabilities(dtypes={"cpu": (torch.float64,)}, max_head_dim=8)
        assert K.not_supported_reasons("fake_narrow", inputs) == []
        narrow.unavailable = "library not loaded"
        assert K.not_supported_reasons("fake_narrow", inputs) == ["library not loaded"]
    finally:
        K.unregister_backend("fake_narrow")


def test_every_registered_backend_declares_capabilities_and_sdpa_is_dense_only():
    for name in K.registered_backends():
        assert isinstance(K.get_backend(name).capabilities, K.Capabilities), name
    caps = K.get_backend("sdpa").capabilities
    assert not (caps.topk or caps.fda or caps.ce or caps.returns_lse or caps.returns_index)
    assert caps.backward and caps.key_padding_mask
    q = torch.randn(1, 2, 5, 8)
    assert K.not_supported_reasons("sdpa", K.build_inputs(q, q, q, topk=2)) == ["no top-K sparse attention (topk=2 < M=5)"]
    assert K.not_supported_reasons("sdpa", K.build_inputs(q, q, q, topk=5)) == []  # topk >= M is dense attention
    with pytest.raises(TypeError, match="capabilities"):
        K.register_backend(type("NoCaps", (), {"name": "x", "capabilities": None, "run": None,
                                               "unavailable_reason": None})())


def _without_the_extension(monkeypatch):
    """The loader's state of a machine where vtrack._C is not built (a pure read, as the dispatcher sees it)."""
    from vtrack.kernels import _ext

    monkeypatch.setattr(_ext, "status", lambda: "vtrack._C not built (test)")


def test_auto_follows_the_declared_priority_for_dense_attention(monkeypatch):
    """sdpa's CPU priority (40) is below cpp (50, measured as fast or faster, docs/kernels.md) and
    above the reference: "auto" runs dense attention on cpp when vtrack._C is built, on sdpa when
    it is not, and never sends sdpa what it does not declare."""
    from vtrack.kernels.sdpa import PRIORITY

    q = torch.randn(1, 2, 9, 8)
    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[0, 3] = True
    dense, masked = K.build_inputs(q, q, q), K.build_inputs(q, q, q, key_padding_mask=mask)
    order = K.registered_backends("cpu")
    assert order.index("cpp") < order.index("sdpa") < order.index("reference") and PRIORITY["cpu"] == 40
    if not K.not_supported_reasons("cpp", dense):
        assert K.select_backend(dense).name == "cpp"
    _without_the_extension(monkeypatch)
    assert K.select_backend(dense).name == K.select_backend(masked).name == "sdpa"
    for kw in ({"topk": 3}, {"fda": {"alpha": 0.1, "beta": 0.1, "delta": 0.1}}, {"ce": {"num_template": 4, "keep": 2}}):
        assert K.select_backend(K.build_inputs(q, q, q, **kw)).name == "reference"
    K.register_backend(K.get_backend("sdpa"), priority={"cpu": 60}, replace=True)  # a machine where it measures fastest
    try:
        monkeypatch.undo()
        assert K.select_backend(dense).name == "sdpa"
    finally:
        K.register_backend(K.get_backend("sdpa"), priority=PRIORITY, replace=True)


def test_dense_vit_layers_run_sdpa_under_auto_when_it_ranks_first(monkeypatch):
    from vtrack.kernels.sdpa import SdpaBackend
    from vtrack.models.backbones.vit import ViT

    _without_the_extension(monkeypatch)
    calls = []
    real = SdpaBackend.run
    monkeypatch.setattr(SdpaBackend, "run", lambda self, inputs: calls.append(inputs.op_name) or real(self, inputs))
    vit = ViT(embed_dim=16, depth=2, num_heads=2, patch_size=4).eval()
    with torch.no_grad():
        x, _ = vit.embed(torch.randn(1, 3, 16, 16))
        for block in vit.blocks:
            x = block(x)
    assert calls == ["dense", "dense"]


class _OnCuda(K.AttentionInputs):
    """Inputs that declare a CUDA device: the dispatcher's choice reads declarations and metadata
    only, so it can be checked on a CPU-only machine."""

    @property
    def device(self):
        return torch.device("cuda")


def test_auto_on_cuda_runs_dense_attention_on_sdpa(monkeypatch):
    """On CUDA sdpa (110) ranks above triton (100) and cuda (90): on an H200 dense SDPA took a
    quarter of the fused kernels' time or less (docs/kernels.md "The sdpa backend"). Its
    declaration keeps everything but dense attention on the fused kernels; on CPU cpp stays first."""
    from dataclasses import fields

    from vtrack.kernels.sdpa import PRIORITY

    for name in ("triton", "cuda"):  # as on a GPU machine with vtrack._C built
        monkeypatch.setattr(type(K.get_backend(name)), "unavailable_reason", lambda self: None)
    q = torch.randn(1, 2, 9, 8)
    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[0, 3] = True

    def on_cuda(**kw):
        inputs = K.build_inputs(q, q, q, **kw)
        return _OnCuda(**{f.name: getattr(inputs, f.name) for f in fields(inputs)})

    assert K.registered_backends("cuda")[:3] == ["sdpa", "triton", "cuda"] and PRIORITY["cuda"] == 110
    for kw in ({}, {"key_padding_mask": mask}, {"topk": 9}):  # topk >= M is dense attention
        assert K.select_backend(on_cuda(**kw)).name == "sdpa", kw
    fda = {"alpha": 0.1, "beta": 0.1, "delta": 0.1}
    for kw in ({"topk": 3}, {"fda": fda}, {"ce": {"num_template": 4, "keep": 2}}):
        assert K.select_backend(on_cuda(**kw)).name == "triton", kw
    assert K.select_backend(on_cuda(topk=3, ce={"num_template": 4, "keep": 2})).name == "cuda"  # not fused in Triton
    assert K.registered_backends("cpu").index("cpp") < K.registered_backends("cpu").index("sdpa")


def test_multihead_attention_dense_path_goes_through_the_dispatcher(monkeypatch):
    """SparseTT's/VLT's MultiHeadAttention: the dense path runs on sdpa under "auto" (what their zoo
    weights were scored with, also where cpp ranks first), and on the backend a user names."""
    from vtrack.kernels.sdpa import SdpaBackend
    from vtrack.models.layers.transformer import MultiHeadAttention

    calls = []
    for cls in (SdpaBackend, K.ReferenceBackend):
        real = cls.run
        monkeypatch.setattr(cls, "run", lambda self, inputs, real=real: calls.append((self.name, inputs.op_name))
                            or real(self, inputs))
    mha = MultiHeadAttention(16, 2, topk=4).eval()
    x, y = torch.randn(2, 3, 16), torch.randn(2, 6, 16)
    with torch.no_grad():
        auto = mha(x, x, x)  # 3 keys <= topk: dense
        mha.set_backend("reference")
        ref = mha(x, x, x)
        mha(x, y, y)  # 6 keys > topk: sparse, on the named backend too
    assert calls == [("sdpa", "dense"), ("reference", "dense"), ("reference", "topk")]
    torch.testing.assert_close(auto, ref)


def test_the_supported_check_never_loads_or_builds(monkeypatch):
    """Asking whether a backend runs reads declarations and the loader's state only: with every
    load/import/build entry of the loader made to fail, the checks still answer."""
    from vtrack.kernels import _ext

    def boom(*a, **k):
        raise AssertionError("the supported-check tried to load or build vtrack._C")

    for fn in ("load", "fast_load", "_try_import", "_try_jit", "unavailable_reason", "loaded_from"):
        monkeypatch.setattr(_ext, fn, boom)
    q = torch.randn(1, 2, 5, 8)
    for kw in ({}, {"topk": 2}, {"ce": {"num_template": 4, "keep": 1}}):
        inputs = K.build_inputs(q, q, q, **kw)
        for name in K.registered_backends():
            K.not_supported_reasons(name, inputs)
        K.available_backends(inputs)
        K.select_backend(inputs)
    # and a library that is not loaded: the reason says so (and how to build it) without building it
    monkeypatch.setattr(_ext._State, "tried", False)
    monkeypatch.setattr(_ext._State, "import_error", "import vtrack._C failed (missing)")
    monkeypatch.setattr(_ext, "ops_registered", lambda: False)
    monkeypatch.delenv("VTRACK_NO_JIT", raising=False)
    reasons = K.not_supported_reasons("cpp", K.build_inputs(q, q, q, topk=2))
    assert reasons and "import vtrack._C failed (missing)" in reasons[-1] and "load_extension()" in reasons[-1]
    assert K.select_backend(K.build_inputs(q, q, q, topk=2)).name == "reference"


def test_dispatch_checks_the_one_output_schema(qkv):
    class Tuple3(_Fake):
        def run(self, inputs):
            return tuple(K.get_backend("reference").run(inputs)[:3])

    K.register_backend(Tuple3("fake_tuple"), priority=-1000)
    try:
        with pytest.raises(TypeError, match="KernelResult"):
            K.attention(*qkv, backend="fake_tuple")
    finally:
        K.unregister_backend("fake_tuple")
    res = K.dispatch(K.build_inputs(*qkv, topk=2), "reference")
    assert isinstance(res, K.KernelResult) and res.lse.shape == (1, 2, 5) and res.index.shape == (1, 2, 5, 2)
