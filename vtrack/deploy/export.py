"""Export a tracker's network branches to ONNX and run trackers on onnxruntime.

:func:`export_engine` writes one ONNX model per branch of a tracker's :class:`TorchEngine`
(opset :data:`vtrack.deploy.onnx_ops.OPSET`) plus ``manifest.json``. vtrack's attention layers
run their compiled ``cpp`` kernels during the export, so the graph holds ``torch.ops.vtrack.*``
nodes, and :mod:`vtrack.deploy.onnx_ops` writes each as standard ONNX operators. Every file is
checked with ``onnx.checker`` (full check, with shape inference) before it is renamed into place.

:func:`use_onnxruntime` swaps a tracker's engine for an :class:`OrtEngine`: the ONNX files come
from a folder written by ``vtrack export``, or are exported on first use into a cache folder
keyed by the hash of the config and the weights.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from vtrack.deploy.engine import Branch, OrtEngine, TorchEngine
from vtrack.extras import require
from vtrack.io import atomic_write_text, read_json

__all__ = ["FORMAT", "export_engine", "read_manifest", "cache_dir", "model_key", "use_onnxruntime"]

logger = logging.getLogger(__name__)

#: Version of the export layout (branches, manifest): part of the cache key.
FORMAT = 1
MANIFEST = "manifest.json"
_STANDARD_DOMAINS = ("", "ai.onnx")


@contextlib.contextmanager
def kernel_backend(module: nn.Module, backend: str) -> Iterator[None]:
    """Temporarily set the kernel ``backend`` of every vtrack attention layer in ``module``."""
    from vtrack.models.layers.backend import KernelLayer

    saved = []
    for m in module.modules():
        if isinstance(m, KernelLayer):
            saved.append((m, m.backend))
            m.backend = backend
    try:
        yield
    finally:
        for m, b in saved:
            m.backend = b


def _check_onnx(path: Path) -> dict[str, Any]:
    """``onnx.checker`` (full) and the opset/domains of the model at ``path``."""
    onnx = require("onnx", "deploy", "vtrack export")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    domains = sorted({n.domain for n in model.graph.node} - set(_STANDARD_DOMAINS))
    if domains:
        raise RuntimeError(f"export: {path.name} holds non-standard operator domains {domains}")
    opset = max(o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS)
    return {"opset": int(opset), "nodes": len(model.graph.node), "op_types": sorted({n.op_type for n in model.graph.node})}


def _batch_axes(branch: Branch) -> tuple[tuple[torch.Tensor, ...], tuple[dict[int, Any], ...]]:
    """Example inputs at batch 2 and ``dynamic_shapes`` with a symbolic batch on axis 0 of each input.

    The examples are the branch's own (batch 1) repeated twice: ``torch.export`` specialises a
    dimension whose example size is 1, so a batch of 1 would come out fixed."""
    batch = torch.export.Dim("batch", min=1)
    inputs = tuple(torch.cat([t, t]) for t in branch.example_inputs())
    return inputs, tuple({0: batch} for _ in inputs)


def export_engine(engine: TorchEngine, out_dir: str | os.PathLike[str], *, info: Mapping[str, Any] | None = None,
                  overwrite: bool = False, dynamic_batch: bool = False) -> dict[str, Any]:
    """Export every branch of ``engine`` to ``out_dir/<branch>.onnx`` and write ``manifest.json``.

    Args:
        engine: the tracker's PyTorch engine (its branch modules are exported as they are).
        out_dir: folder to create; it must not exist unless ``overwrite``.
        info: extra fields for the manifest (config name, hashes...).
        overwrite: replace an existing export folder.
        dynamic_batch: give every input and output a symbolic batch axis 0 (``batch``), for running
            many crops per call; the default exports batch 1, the tracker's. A branch that cannot
            (``Branch.no_dynamic_batch``) is refused before anything is written.

    Returns:
        the manifest: ``branches`` (file, inputs, outputs, opset, bytes, seconds), ``opset``,
        ``dynamic_batch``, ``info``.
    """
    require("onnx", "deploy", "vtrack export")
    require("onnxscript", "deploy", "vtrack export")
    from vtrack.deploy.onnx_ops import OPSET, translation_table

    if not isinstance(engine, TorchEngine):
        raise TypeError(f"engine: expected a TorchEngine (a PyTorch tracker's engine), got {type(engine).__name__}")
    if not isinstance(dynamic_batch, bool):
        raise TypeError(f"dynamic_batch: expected a bool, got {type(dynamic_batch).__name__}")
    if dynamic_batch:
        refused = {name: b.no_dynamic_batch for name, b in engine.branches.items() if b.no_dynamic_batch}
        if refused:
            raise ValueError("dynamic_batch: this tracker exports with batch 1 only; "
                             + "; ".join(f"branch {name!r}: {why}" for name, why in refused.items()))
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"out_dir: {out} exists already; choose a new folder (an export never overwrites one)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    table = translation_table()
    manifest: dict[str, Any] = {"format": FORMAT, "opset": OPSET, "dynamic_batch": dynamic_batch, "branches": {},
                                "info": dict(info or {})}
    try:
        for name, branch in engine.branches.items():
            t0 = time.perf_counter()
            path = tmp / f"{name}.onnx"
            modes = [(m, m.training) for m in branch.modules()]
            branch.eval()
            inputs, shapes = _batch_axes(branch) if dynamic_batch else (branch.example_inputs(), None)
            try:
                with kernel_backend(branch, "cpp"), torch.no_grad(), _quiet_exporter():
                    prog = torch.onnx.export(
                        branch, inputs, dynamo=True, opset_version=OPSET, dynamic_shapes=shapes,
                        input_names=list(branch.input_names), output_names=list(branch.output_names),
                        custom_translation_table=table, verbose=False,
                    )
                prog.save(str(path))
            finally:
                for m, mode in modes:
                    m.training = mode
            checked = _check_onnx(path)
            seconds = time.perf_counter() - t0
            manifest["branches"][name] = {
                "file": path.name, "inputs": list(branch.input_names), "outputs": list(branch.output_names),
                "bytes": path.stat().st_size, "seconds": round(seconds, 3), **checked,
            }
            logger.info("exported branch %r: %d nodes, %.1f MB, %.1f s", name, checked["nodes"],
                        path.stat().st_size / 1e6, seconds)
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out.exists():
            if not overwrite:  # another process exported meanwhile
                raise FileExistsError(f"out_dir: {out} was written by another process during the export")
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints its progress, warns about treespecs and logs its graph passes at INFO:
    keep that out of the CLI output (and out of stdout, the TraX channel of `vtrack vot`)."""
    import io
    import warnings

    loggers = [logging.getLogger(n) for n in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an export folder, checked: every branch file exists."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"onnx_dir: {folder} holds no {MANIFEST} (not written by `vtrack export`)")
    manifest = read_json(path, what="onnx_dir")
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("branches"), dict):
        raise ValueError(f"onnx_dir: {path} has format {manifest.get('format')!r}, expected {FORMAT}; export again")
    for name, b in manifest["branches"].items():
        if not (folder / b["file"]).is_file():
            raise FileNotFoundError(f"onnx_dir: branch {name!r} file {folder / b['file']} is missing")
    return manifest


def cache_dir() -> Path:
    """Root of the ONNX cache: ``$VTRACK_CACHE/onnx`` or ``~/.cache/vtrack/onnx``."""
    root = os.environ.get("VTRACK_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "vtrack") / "onnx"


def model_key(cfg: Mapping[str, Any], engine: TorchEngine) -> str:
    """Hash of the config, the weights of the engine's branches and the export format: the cache key."""
    model = _root_module(engine)
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "torch": torch.__version__.split("+")[0]}, sort_keys=True).encode())
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def use_onnxruntime(tracker: Any, cfg: Mapping[str, Any], *, onnx_dir: str | os.PathLike[str] | None = None,
                    threads: int | None = None) -> Any:
    """Swap ``tracker``'s PyTorch engine for onnxruntime (same tracker object, returned).

    Args:
        tracker: a tracker whose ``engine`` is a :class:`TorchEngine` (built on the CPU).
        cfg: the full config the tracker was built from (part of the cache key).
        onnx_dir: a folder written by ``vtrack export``; None: export into (or reuse) the cache
            folder ``cache_dir()/<model_key>``.
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``, so the
            thread settings of a run apply to both runtimes).
    """
    engine = getattr(tracker, "engine", None)
    if not isinstance(engine, TorchEngine):
        raise ValueError(f"runtime: tracker {getattr(tracker, 'name', type(tracker).__name__)!r} has no network "
                         "engine that can run on onnxruntime (baselines run on OpenCV/NumPy)")
    device = getattr(tracker, "device", torch.device("cpu"))
    if torch.device(device).type != "cpu":
        raise ValueError(f"device: the onnxruntime runtime runs on the CPU, got device {device}")
    require("onnxruntime", "deploy", "the onnxruntime runtime")
    if onnx_dir is None:
        folder = cache_dir() / model_key(cfg, engine)
        if not (folder / MANIFEST).is_file():
            logger.info("exporting %s to ONNX (first use) -> %s", getattr(tracker, "name", "tracker"), folder)
            try:
                export_engine(engine, folder, info={"model": cfg.get("model", {}).get("name")})
            except FileExistsError:
                if not (folder / MANIFEST).is_file():  # not a parallel worker's finished export
                    raise
    else:
        folder = Path(onnx_dir)
    manifest = read_manifest(folder)
    missing = set(engine.branches) - set(manifest["branches"])
    if missing:
        raise ValueError(f"onnx_dir: {folder} lacks the branches {sorted(missing)} this tracker runs")
    files = {name: folder / manifest["branches"][name]["file"] for name in engine.branches}
    tracker.engine = OrtEngine(files, threads=torch.get_num_threads() if threads is None else threads)
    return tracker


def _root_module(engine: TorchEngine) -> nn.Module:
    """One module holding every branch's parameters (for hashing the weights)."""
    return nn.ModuleDict(engine.branches)
