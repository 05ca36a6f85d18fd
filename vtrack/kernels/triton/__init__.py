"""The "triton" attention backend: fused forward and backward Triton kernels.

Registered with priority 100 on CUDA and -100 on CPU: on CPU tensors Triton only runs as its
interpreter (``TRITON_INTERPRET=1`` set before this module is imported), which is for tests, so
``"auto"`` never picks it there; name it explicitly (``backend="triton"``) to use it.
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import fused
from ..checks import AttentionInputs
from ..dispatch import Capabilities, KernelResult, register_backend
from .ops import INTERPRET, MAX_HEAD_DIM, MAX_TOPK, PREFIX

__all__ = ["TritonBackend", "INTERPRET", "PREFIX"]


_GPU_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def capabilities(interpret: bool) -> Capabilities:
    """The Triton backend's declaration: CUDA always; CPU tensors only under the interpreter, and
    there without bfloat16 (its tl.dot is wrong in the interpreter)."""
    dtypes = {"cuda": _GPU_DTYPES}
    if interpret:
        dtypes["cpu"] = (torch.float16, torch.float32)
    return Capabilities(
        dtypes=dtypes, max_head_dim=MAX_HEAD_DIM, max_topk=MAX_TOPK, topk_with_ce=False,
        notes={"cpu": "CPU tensors need the Triton interpreter: set TRITON_INTERPRET=1 before importing vtrack "
                      "(slow; for tests only)",
               "bfloat16": "bfloat16 tl.dot is wrong under the Triton interpreter; bfloat16 needs a GPU"})


class TritonBackend:
    """Fused Triton kernels (one kernel family; constexpr flags for top-K, FDA and CE) behind the fused ops' schema."""

    name = "triton"

    @property
    def capabilities(self) -> Capabilities:
        """:func:`capabilities` for this process (whether the kernels run under the interpreter)."""
        return capabilities(INTERPRET)

    def unavailable_reason(self) -> Optional[str]:
        """Always available once imported (the ``triton`` package imported)."""
        return None

    def run(self, inputs: AttentionInputs) -> KernelResult:
        """Run the ops ``torch.ops.vtrack.triton_*`` (the C++ ops' schema) through :func:`vtrack.kernels.fused.run`."""
        return fused.run(inputs, PREFIX)


register_backend(TritonBackend(), priority={"cuda": 100, "cpu": -100, "default": -100})
