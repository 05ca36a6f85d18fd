"""Engines: how a tracker runs its network.

A tracker keeps its pre- and post-processing and calls the network only through
``self.engine.run(branch, **inputs) -> dict[str, Tensor]``. The network is cut into
:class:`Branch` modules (e.g. a template branch run once at initialisation and a search branch
run per frame). :class:`TorchEngine` calls the branch modules; :class:`OrtEngine` runs the same
branches exported to ONNX with onnxruntime. Swapping the engine is all it takes to move a
tracker from PyTorch to onnxruntime, so there is one copy of the tracking code.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from vtrack.extras import require

__all__ = ["Branch", "Engine", "TorchEngine", "OrtEngine"]

logger = logging.getLogger(__name__)

class Branch(nn.Module):
    """A part of a tracker's network with named tensor inputs and outputs.

    Subclasses set :attr:`input_names` / :attr:`output_names`, implement ``forward(*inputs)``
    returning a tuple in the order of ``output_names``, and :meth:`example_inputs` (tensors of
    the shapes the tracker feeds, used for export).
    """

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    #: Why the branch cannot be exported with a symbolic batch axis (``vtrack export --dynamic-batch``),
    #: or None when it can: every input and output then has the batch on axis 0.
    no_dynamic_batch: str | None = None

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Inputs of the shapes used at tracking time (batch 1), in ``input_names`` order."""
        raise NotImplementedError


@runtime_checkable
class Engine(Protocol):
    """What a tracker needs from its engine."""

    def run(self, branch: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run ``branch`` on named tensors; returns its named outputs."""
        ...


def _ordered(branch: str, names: tuple[str, ...], inputs: Mapping[str, Any]) -> list[Any]:
    if set(inputs) != set(names):
        raise ValueError(f"inputs: branch {branch!r} takes {list(names)}, got {sorted(inputs)}")
    return [inputs[n] for n in names]


class TorchEngine:
    """Runs the branch modules with PyTorch (no autograd; the modules are put in eval mode).

    Args:
        branches: branch name -> :class:`Branch` module.
    """

    runtime = "pytorch"

    def __init__(self, branches: Mapping[str, Branch]) -> None:
        if not isinstance(branches, Mapping) or not branches:
            raise TypeError(f"branches: expected a non-empty mapping name -> Branch, got {branches!r}")
        for name, b in branches.items():
            if not isinstance(b, Branch):
                raise TypeError(f"branches[{name!r}]: expected a Branch module, got {type(b).__name__}")
        self.branches = {name: b.eval() for name, b in branches.items()}

    def run(self, branch: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Call branch module ``branch`` on ``inputs``."""
        if branch not in self.branches:
            raise ValueError(f"branch: expected one of {sorted(self.branches)}, got {branch!r}")
        mod = self.branches[branch]
        with torch.inference_mode():
            out = mod(*_ordered(branch, mod.input_names, inputs))
        return dict(zip(mod.output_names, out))


class OrtEngine:
    """Runs exported branches (one ONNX file each) with onnxruntime on the CPU.

    Args:
        files: branch name -> ONNX file.
        threads: intra-op threads of onnxruntime (1 = single-threaded; 0 = onnxruntime's default).
    """

    runtime = "onnxruntime"

    def __init__(self, files: Mapping[str, str | os.PathLike[str]], threads: int = 1) -> None:
        ort = require("onnxruntime", "deploy", "the onnxruntime runtime")
        if not isinstance(files, Mapping) or not files:
            raise TypeError(f"files: expected a non-empty mapping branch -> ONNX file, got {files!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads: expected an int >= 0, got {threads!r}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.files = {name: Path(p) for name, p in files.items()}
        self.sessions = {}
        for name, path in self.files.items():
            if not path.is_file():
                raise FileNotFoundError(f"files[{name!r}]: ONNX file not found: {path}")
            self.sessions[name] = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._inputs = {n: tuple(i.name for i in s.get_inputs()) for n, s in self.sessions.items()}
        self._outputs = {n: tuple(o.name for o in s.get_outputs()) for n, s in self.sessions.items()}

    def run(self, branch: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the session of ``branch``; outputs come back as CPU tensors."""
        if branch not in self.sessions:
            raise ValueError(f"branch: expected one of {sorted(self.sessions)}, got {branch!r}")
        names = self._inputs[branch]
        feed = {}
        for name, value in zip(names, _ordered(branch, names, inputs)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name}: expected a tensor, got {type(value).__name__}")
            if value.device.type != "cpu":
                raise ValueError(f"{name}: the onnxruntime engine runs on the CPU, got a tensor on {value.device}")
            feed[name] = np.ascontiguousarray(value.detach().numpy())
        outs = self.sessions[branch].run(list(self._outputs[branch]), feed)
        return {n: torch.from_numpy(o) for n, o in zip(self._outputs[branch], outs)}
