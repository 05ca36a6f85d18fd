"""Dispatcher: priority order, auto selection, explicit-backend errors, registration API."""
import pytest
import torch

import vtrack.kernels as K


class _Fake:
    def __init__(self, name, reasons=()):
        self.name = name
        self.reasons = list(reasons)
        self.calls = 0

    def not_supported_reasons(self, inputs):
        return list(self.reasons)

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
    assert K.select_backend(K.build_inputs(*qkv, topk=2)).name == cpu[0]
    out = K.topk_attention(*qkv, 2)
    assert out.shape == (1, 2, 5, 4)


def test_priority_and_reasons(qkv):
    fast, broken = _Fake("fake_fast"), _Fake("fake_broken", ["needs CUDA tensors", "head dim must be 64"])
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
        assert "head dim must be 64" in str(exc.value)
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
