"""The FlashAttention accuracy rule for the bf16 kernels, shared by the cpp tests: a low-precision result's error
against the float32 reference must be at most twice that of a same-precision PyTorch run (plus a small floor)."""
from __future__ import annotations

from typing import Any, Sequence

import torch

import vtrack.kernels as K

FDA = {"alpha": 0.7, "beta": 0.2, "delta": 0.15}


def bf16_case(shape: tuple[int, int, int, int, int], kw: dict[str, Any], seed: int,
              ce: dict[str, Any]) -> tuple[list[torch.Tensor], torch.Tensor, dict[str, Any]]:
    """Inputs of one case: q, k, v as float32 holding bf16 values, the bf16 output gradient, and the op's keyword
    arguments from ``kw`` flags (``topk``: K, ``fda``, ``ce``: the ``ce`` options given, ``mask``: random key
    padding with batch 0 fully masked)."""
    b, h, n, m, d = shape
    g = torch.Generator().manual_seed(seed)
    base = [torch.randn(b, h, t, d, generator=g).to(torch.bfloat16).float() for t in (n, m, m)]
    go = torch.randn(b, h, n, d, generator=g).to(torch.bfloat16)
    args: dict[str, Any] = {}
    if kw.get("topk"):
        args["topk"] = kw["topk"]
    if kw.get("fda"):
        args["fda"] = dict(FDA)
    if kw.get("ce"):
        args["ce"] = dict(ce)
    if kw.get("mask"):
        mask = torch.rand(b, m, generator=g) < 0.3
        mask[0] = True  # batch 0: every key masked (zero rows, lse +inf)
        args["key_padding_mask"] = mask
    return base, go, args


def references(base: Sequence[torch.Tensor], args: dict[str, Any], grad: bool) -> tuple[list, list, list, Any, Any]:
    """Leaves for the float32 reference, the bf16 reference and the cpp run, and both reference results."""
    l32 = [t.clone().requires_grad_(grad) for t in base]
    l16 = [t.to(torch.bfloat16).requires_grad_(grad) for t in base]
    lcpp = [t.to(torch.bfloat16).requires_grad_(grad) for t in base]
    ref32 = K.dispatch(K.build_inputs(*l32, **args), "reference")
    ref16 = K.dispatch(K.build_inputs(*l16, **args), "reference")
    return l32, l16, lcpp, ref32, ref16


def assert_flash_rule(checks: Sequence[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]], floor: float = 2e-3,
                      tag: Any = None) -> None:
    """Each (name, result, same-precision PyTorch result, float32 reference): error <= 2x PyTorch's + ``floor``."""
    for name, a, same, hi in checks:
        err = (a.float() - hi.float()).abs().max().item()
        bound = 2 * (same.float() - hi.float()).abs().max().item() + floor
        assert err <= bound, (tag, name, err, bound)
