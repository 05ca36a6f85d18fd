"""Transformer encoder/decoder layers over the vtrack attention kernels.

Tokens are batch-first ``[B, L, C]``. Every layer is post-norm (``Norm(x + Sublayer(x))``,
SparseTT eq. 3 / the vanilla Transformer) and takes an attention ``backend`` name that is passed
to :mod:`vtrack.kernels`.

* :class:`MultiHeadAttention` — projections + scaled dot-product attention. With ``topk`` set
  and smaller than the number of keys it is the *sparse* multi-head attention of SparseTT
  (each query attends to its ``topk`` most similar keys only, via
  :func:`vtrack.kernels.topk_attention`); otherwise it is plain dense attention
  (:func:`vtrack.kernels.attention`; under ``"auto"`` on the ``sdpa`` backend, PyTorch's
  :func:`torch.nn.functional.scaled_dot_product_attention`).
* :class:`TransformerEncoderLayer` — self-attention + FFN (SparseTT's template encoder,
  TransT's ego-context augment).
* :class:`TransformerDecoderLayer` — self-attention (optionally sparse) + cross-attention to a
  memory + FFN (SparseTT's decoder, TransT's cross-feature augment).
* :class:`TransformerEncoder` / :class:`TransformerDecoder` — stacks of the above.

Dropout is applied to each sub-layer's output before the residual sum (Vaswani et al.). The
fused kernels have no attention-probability dropout, so none is applied to attention weights;
this keeps the sparse and dense paths numerically identical when ``topk`` covers every key.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vtrack import kernels
from vtrack.models.layers.backend import KernelLayer, check_backend

__all__ = [
    "FeedForward",
    "MultiHeadAttention",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "sine_position_encoding",
]


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _check_dropout(value: object, name: str = "dropout") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value!r}")
    return float(value)


def _check_topk(value: object, name: str = "topk") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int or None (all keys), got {value!r}")
    return value


def _check_tokens(x: object, name: str, dim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, L, C], got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name}: expected shape [B, L, C], got {tuple(x.shape)}")
    if dim is not None and x.shape[-1] != dim:
        raise ValueError(f"{name}: expected {dim} channels in the last dim, got shape {tuple(x.shape)}")
    return x


def sine_position_encoding(height: int, width: int, dim: int, *, temperature: float = 10000.0,
                           device: torch.device | str | None = None) -> torch.Tensor:
    """2-D sine/cosine spatial position encoding (DETR-style), shape ``[height*width, dim]``.

    Half of the channels encode y, half encode x; row-major token order (y then x), matching
    ``feature.flatten(2).transpose(1, 2)``. ``dim`` must be divisible by 4.
    """
    _check_positive_int(height, "height")
    _check_positive_int(width, "width")
    _check_positive_int(dim, "dim")
    if dim % 4:
        raise ValueError(f"dim: expected a multiple of 4 for the sine position encoding, got {dim}")
    npf = dim // 2
    scale = 2 * math.pi
    y = (torch.arange(height, dtype=torch.float32, device=device) + 1) / height * scale
    x = (torch.arange(width, dtype=torch.float32, device=device) + 1) / width * scale
    dim_t = torch.arange(npf, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    py = y[:, None] / dim_t  # [H, npf]
    px = x[:, None] / dim_t  # [W, npf]
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((py[:, None, :].expand(height, width, npf), px[None, :, :].expand(height, width, npf)), dim=2)
    return pos.reshape(height * width, dim)


class MultiHeadAttention(KernelLayer, nn.Module):
    """Multi-head attention whose core runs on :mod:`vtrack.kernels`.

    Args:
        dim: model width C (divisible by ``num_heads``).
        num_heads: number of heads.
        topk: keep only the ``topk`` largest scores of each query row before the softmax
            (sparse attention, SparseTT's SMSA). ``None`` or a value >= the number of keys gives
            plain dense attention.
        backend: kernel backend of both paths (``"auto"`` or a registered backend, see
            :func:`vtrack.kernels.check_backend`); :meth:`set_backend` switches it. Under ``"auto"``
            the dense path runs on :attr:`dense_auto`.
        qkv_bias: add biases to the q/k/v projections.
    """

    #: The backend of the dense path under ``"auto"``: ``sdpa`` on every device, the kernel SparseTT's
    #: and VLT's zoo weights were trained and scored with (the dispatcher's own CPU choice, ``cpp``,
    #: sums in another order and would move their results at the float level; on CUDA ``sdpa`` is
    #: also the dispatcher's choice, docs/kernels.md "The sdpa backend"). A named backend applies as given.
    dense_auto = "sdpa"

    def __init__(self, dim: int, num_heads: int, *, topk: int | None = None, backend: str = "auto",
                 qkv_bias: bool = True) -> None:
        super().__init__()
        _check_positive_int(dim, "dim")
        _check_positive_int(num_heads, "num_heads")
        if dim % num_heads:
            raise ValueError(f"num_heads: expected a divisor of dim={dim}, got {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.topk = _check_topk(topk)
        self.backend = check_backend(backend)
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.out_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections, zero biases (as torch.nn.MultiheadAttention)."""
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def is_sparse(self, num_keys: int) -> bool:
        """Whether attention over ``num_keys`` keys takes the sparse top-k path."""
        return self.topk is not None and self.topk < num_keys

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend ``query`` [B, N, C] to ``key``/``value`` [B, M, C]; returns [B, N, C].

        ``key_padding_mask`` [B, M] bool marks keys to ignore (True = padding).
        """
        _check_tokens(query, "query", self.dim)
        _check_tokens(key, "key", self.dim)
        _check_tokens(value, "value", self.dim)
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"key/value: expected matching [B, M] with query batch {query.shape[0]}, "
                f"got key {tuple(key.shape)}, value {tuple(value.shape)}")
        num_keys = key.shape[1]
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (key.shape[0], num_keys):
                raise ValueError(
                    f"key_padding_mask: expected a bool tensor of shape {(key.shape[0], num_keys)}, "
                    f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}")
        q = self._split(self.q_proj(query))
        k = self._split(self.k_proj(key))
        v = self._split(self.v_proj(value))
        if self.is_sparse(num_keys):
            out = kernels.topk_attention(q, k, v, self.topk, key_padding_mask=key_padding_mask,
                                         backend=self.backend)
        else:
            backend = self.dense_auto if self.backend == "auto" else self.backend
            out = kernels.attention(q, k, v, key_padding_mask=key_padding_mask, backend=backend)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.dim))

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"dim={self.dim}, num_heads={self.num_heads}, topk={self.topk}, backend={self.backend!r}"


class FeedForward(nn.Module):
    """Position-wise FFN: Linear(C, hidden) - activation - dropout - Linear(hidden, C)."""

    def __init__(self, dim: int, hidden_dim: int, *, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        _check_positive_int(dim, "dim")
        _check_positive_int(hidden_dim, "hidden_dim")
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"activation: expected one of {sorted(acts)}, got {activation!r}")
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = acts[activation]()
        self.drop = nn.Dropout(_check_dropout(dropout))
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the FFN to every token of ``x`` [..., C]."""
        return self.fc2(self.drop(self.act(self.fc1(x))))


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class TransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: ``x = Norm(x + MSA(x)); x = Norm(x + FFN(x))``.

    ``pos`` (optional, broadcastable to x) is added to queries and keys of the self-attention
    (DETR-style); SparseTT instead adds its position encoding once to the encoder input.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, *, dropout: float = 0.1, topk: int | None = None,
                 backend: str = "auto", activation: str = "relu", norm_eps: float = 1e-5) -> None:
        super().__init__()
        p = _check_dropout(dropout)
        self.self_attn = MultiHeadAttention(dim, num_heads, topk=topk, backend=backend)
        self.drop1 = nn.Dropout(p)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.ffn = FeedForward(dim, ffn_dim, dropout=p, activation=activation)
        self.drop2 = nn.Dropout(p)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, *, pos: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode tokens ``x`` [B, L, C]."""
        _check_tokens(x, "x")
        qk = _with_pos(x, pos)
        x = self.norm1(x + self.drop1(self.self_attn(qk, qk, x, key_padding_mask=key_padding_mask)))
        return self.norm2(x + self.drop2(self.ffn(x)))


class TransformerDecoderLayer(nn.Module):
    """Post-norm decoder layer (SparseTT eq. 3).

    ``x = Norm(x + SA(x))`` (sparse when ``self_topk`` is set), ``x = Norm(x + CA(x, memory))``,
    ``x = Norm(x + FFN(x))``. ``cross_topk`` optionally makes the cross-attention sparse too.
    ``self_attention=False`` drops the first block (a pure cross-attention + FFN layer).
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, *, dropout: float = 0.1,
                 self_topk: int | None = None, cross_topk: int | None = None, backend: str = "auto",
                 activation: str = "relu", self_attention: bool = True, norm_eps: float = 1e-5) -> None:
        super().__init__()
        p = _check_dropout(dropout)
        self.self_attn: MultiHeadAttention | None = None
        if self_attention:
            self.self_attn = MultiHeadAttention(dim, num_heads, topk=self_topk, backend=backend)
            self.drop1 = nn.Dropout(p)
            self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn = MultiHeadAttention(dim, num_heads, topk=cross_topk, backend=backend)
        self.drop2 = nn.Dropout(p)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.ffn = FeedForward(dim, ffn_dim, dropout=p, activation=activation)
        self.drop3 = nn.Dropout(p)
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, pos: torch.Tensor | None = None,
                memory_pos: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Decode tokens ``x`` [B, N, C] against ``memory`` [B, M, C]."""
        _check_tokens(x, "x")
        _check_tokens(memory, "memory", x.shape[-1])
        if self.self_attn is not None:
            qk = _with_pos(x, pos)
            x = self.norm1(x + self.drop1(self.self_attn(qk, qk, x)))
        ca = self.cross_attn(_with_pos(x, pos), _with_pos(memory, memory_pos), memory,
                             key_padding_mask=memory_key_padding_mask)
        x = self.norm2(x + self.drop2(ca))
        return self.norm3(x + self.drop3(self.ffn(x)))


class TransformerEncoder(nn.Module):
    """A stack of ``num_layers`` :class:`TransformerEncoderLayer` (``num_layers=0`` is identity)."""

    def __init__(self, num_layers: int, dim: int, num_heads: int, ffn_dim: int, **layer_kwargs: object) -> None:
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers: expected an int >= 0, got {num_layers!r}")
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(dim, num_heads, ffn_dim, **layer_kwargs) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, *, pos: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run every layer in turn on ``x`` [B, L, C]."""
        for layer in self.layers:
            x = layer(x, pos=pos, key_padding_mask=key_padding_mask)
        return x


class TransformerDecoder(nn.Module):
    """A stack of ``num_layers`` :class:`TransformerDecoderLayer` sharing one memory."""

    def __init__(self, num_layers: int, dim: int, num_heads: int, ffn_dim: int, **layer_kwargs: object) -> None:
        super().__init__()
        _check_positive_int(num_layers, "num_layers")
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(dim, num_heads, ffn_dim, **layer_kwargs) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, pos: torch.Tensor | None = None,
                memory_pos: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run every layer in turn on ``x`` [B, N, C] with ``memory`` [B, M, C]."""
        for layer in self.layers:
            x = layer(x, memory, pos=pos, memory_pos=memory_pos, memory_key_padding_mask=memory_key_padding_mask)
        return x
