"""The model zoo: trained trackers shipped inside the package, each usable by name alone.

The zoo folder (``vtrack/zoo/``; the environment variable ``VTRACK_ZOO_DIR`` points elsewhere,
e.g. in tests) holds ``manifest.json`` and, per entry, the tracker's full config
(``<name>.yaml``) and its weights (``<name>.safetensors``, floating tensors in fp16, at most
24 MB). The manifest entry gives the name, family, config, weights file with its sha256 and size,
the exact training command with its seed, the commit, wall time and CPU model of the training
run, and the val and test metrics.

* :func:`get_entry` / :func:`list_entries` read the manifest;
* :func:`verified_weights` checks size and sha256 before any weight is read: a missing,
  truncated or altered file raises :class:`ZooWeightsError` naming the file and the checksum,
  never a silently different tracker;
* :func:`build_zoo_tracker` builds the tracker (used by ``build_tracker(NAME)``, hence by
  ``vtrack eval/track --tracker NAME``);
* :func:`add_entry` turns a ``vtrack train`` checkpoint into an entry (``vtrack zoo add``);
* :func:`measure_entry` measures an entry's val/test metrics again (``vtrack zoo measure``);
* :func:`metrics_row` scores a result folder with the zoo's metrics (AO, SR0.5, SR0.75, success
  AUC, precision, FPS), as the manifest and ``vtrack demo`` report them.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from vtrack.io import atomic_write_bytes, atomic_write_text, file_sha256, read_json, tensors_sha256
from vtrack.provenance import cpu_model, git_commit

__all__ = [
    "MANIFEST", "MAX_WEIGHTS_BYTES", "METRIC_KEYS", "ZOO_ENV", "ZooEntry", "ZooWeightsError",
    "add_entry", "build_zoo_tracker", "entry_extras", "measure_entry", "cpu_model", "get_entry", "git_commit",
    "is_zoo_name",
    "list_entries", "load_entry_weights", "load_zoo_state_dict", "metrics_row", "verified_weights", "zoo_dir",
]

log = logging.getLogger(__name__)

#: environment variable naming another zoo folder (tests, a user's own zoo)
ZOO_ENV = "VTRACK_ZOO_DIR"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: the largest weights file an entry may ship, a cap that keeps the package lean: duml_cpu (a
#: ResNet-18 trained from scratch, 11.3 M parameters) takes 22.5 MB in fp16, the others 1-3 MB
MAX_WEIGHTS_BYTES = 24 * 1024 * 1024
#: the metrics of a split, in the order tables show them (fractions, FPS in frames per second)
METRIC_KEYS = ("ao", "sr50", "sr75", "auc", "precision", "fps")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class ZooWeightsError(ValueError):
    """A zoo weights file is missing, truncated or altered (the message names file and checksum)."""


@dataclass(frozen=True)
class ZooEntry:
    """One manifest entry (see the module docstring); paths are relative to the zoo folder."""

    name: str
    family: str
    config: str
    weights: str
    sha256: str
    bytes: int
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    base_config: str = ""
    dtype: str = "float16"
    from_build: dict[str, Any] = field(default_factory=dict)
    metrics_measured: dict[str, Any] = field(default_factory=dict)

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """The entry as ``vtrack zoo list --json`` prints it (``config``/``weights`` inside the package)."""
        root = zoo_dir() if root is None else root
        return {
            "name": self.name, "family": self.family,
            "config": self.config, "config_path": str(root / self.config),
            "weights": {"file": self.weights, "path": str(root / self.weights), "sha256": self.sha256,
                        "bytes": self.bytes, "dtype": self.dtype, "from_build": self.from_build},
            "base_config": self.base_config, "extras": list(entry_extras(self, root)),
            "training": self.training, "metrics": self.metrics,
            **({"metrics_measured": self.metrics_measured} if self.metrics_measured else {}),
        }


def zoo_dir() -> Path:
    """The zoo folder: ``$VTRACK_ZOO_DIR`` when set, else the package's ``vtrack/zoo``."""
    env = os.environ.get(ZOO_ENV)
    return Path(env) if env else Path(__file__).resolve().parent


def _manifest_path(root: Path) -> Path:
    return root / MANIFEST


def _read_manifest(root: Path) -> list[dict[str, Any]]:
    path = _manifest_path(root)
    if not path.is_file():
        return []
    data = read_json(path, what="zoo manifest")
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("entries"), list):
        raise ValueError(f"zoo manifest: {path} must be {{'format': {MANIFEST_FORMAT}, 'entries': [...]}}")
    return data["entries"]


def _entry(raw: Any, path: Path) -> ZooEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"zoo manifest: {path}: expected an entry mapping, got {raw!r}")
    try:
        entry = ZooEntry(
            name=raw["name"], family=raw["family"], config=raw["config"], weights=raw["weights"]["file"],
            sha256=raw["weights"]["sha256"], bytes=int(raw["weights"]["bytes"]),
            dtype=raw["weights"].get("dtype", "float16"), from_build=dict(raw["weights"].get("from_build") or {}),
            training=dict(raw.get("training") or {}),
            metrics=dict(raw.get("metrics") or {}), base_config=str(raw.get("base_config") or ""),
            metrics_measured=dict(raw.get("metrics_measured") or {}),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"zoo manifest: {path}: entry {raw.get('name', '?')!r} lacks {err}") from None
    if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
        raise ValueError(f"zoo manifest: {path}: entry {entry.name!r}: sha256 must be 64 hex digits")
    return entry


def list_entries(root: str | os.PathLike | None = None) -> list[ZooEntry]:
    """Every entry of the manifest (an empty list when the zoo has none)."""
    base = zoo_dir() if root is None else Path(root)
    return [_entry(raw, _manifest_path(base)) for raw in _read_manifest(base)]


def is_zoo_name(name: Any, root: str | os.PathLike | None = None) -> bool:
    """True when ``name`` names a zoo entry."""
    return isinstance(name, str) and any(e.name == name for e in list_entries(root))


def get_entry(name: str, root: str | os.PathLike | None = None) -> ZooEntry:
    """The entry ``name``; ValueError listing the known names otherwise."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a zoo tracker name (str), got {name!r}")
    entries = list_entries(root)
    for entry in entries:
        if entry.name == name:
            return entry
    raise ValueError(f"name: no zoo tracker {name!r}; the zoo holds {sorted(e.name for e in entries) or 'nothing'}")


def verified_weights(entry: ZooEntry, root: str | os.PathLike | None = None) -> Path:
    """The entry's weights file after checking its size and sha256 against the manifest.

    Raises:
        ZooWeightsError: the file is missing, has the wrong size (truncated) or the wrong sha256
            (altered); the message names the file and the expected checksum.
    """
    base = zoo_dir() if root is None else Path(root)
    path = base / entry.weights
    expect = f"expected sha256 {entry.sha256} ({entry.bytes} bytes) from {_manifest_path(base)}"
    if not path.is_file():
        raise ZooWeightsError(f"zoo tracker {entry.name!r}: weights file {path} is missing; {expect}")
    size = path.stat().st_size
    if size != entry.bytes:
        raise ZooWeightsError(f"zoo tracker {entry.name!r}: weights file {path} has {size} bytes (truncated or "
                              f"altered); {expect}")
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise ZooWeightsError(f"zoo tracker {entry.name!r}: weights file {path} has sha256 {digest} (altered); "
                              f"{expect}")
    return path


def load_zoo_state_dict(entry: ZooEntry, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The entry's verified weights as a state dict (fp16 tensors as stored; ``load_state_dict``
    casts them to the model's dtype)."""
    from safetensors.torch import load_file

    path = verified_weights(entry, root)
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - a checksum-valid file that safetensors refuses
        raise ZooWeightsError(f"zoo tracker {entry.name!r}: cannot read {path}: {err}") from None


def load_entry_weights(model: Any, entry: ZooEntry, root: str | os.PathLike | None = None) -> None:
    """Load the entry's verified weights into ``model`` (built from the entry's config), strictly.

    Tensors that the model's build itself reproduces exactly (``from_build``: e.g. a frozen
    pretrained text encoder loaded from its package) are not stored in the weights file; their
    digest is checked against the freshly built model, so a different package version is an
    error, not a silently different tracker.
    """
    from vtrack.tracking.loader import load_state_into

    stored = load_zoo_state_dict(entry, root)
    state = dict(stored)
    keys = list(entry.from_build.get("keys", []))
    if keys:
        fresh = model.state_dict()
        missing = [k for k in keys if k not in fresh]
        if missing or tensors_sha256(fresh, keys) != entry.from_build.get("sha256"):
            raise ZooWeightsError(
                f"zoo tracker {entry.name!r}: the model built from {entry.config} does not reproduce the "
                f"{len(keys)} tensors its manifest entry takes from the build (e.g. {keys[0]}; expected sha256 "
                f"{entry.from_build.get('sha256')}): a pretrained component's package differs from the one it "
                "was added with")
        state.update({k: fresh[k] for k in keys})
    load_state_into(model, state, source=f"{entry.weights} (zoo tracker {entry.name!r})")


def zoo_config(entry: ZooEntry, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The entry's full tracker config (sections ``model`` and ``tracker``, and the training ones)."""
    from vtrack.config import load_yaml

    base = zoo_dir() if root is None else Path(root)
    return load_yaml(base / entry.config)


def entry_extras(entry: ZooEntry, root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The optional extras (``pip install 'vtrack[EXTRA]'``) that building the entry needs, from
    its family's ``extras`` hook (e.g. ``text`` for a VLT with the MiniLM sentence encoder)."""
    from vtrack.models import get_family

    cfg = zoo_config(entry, root)
    hook = getattr(get_family(cfg["model"]["name"]), "extras", None)
    return tuple(hook(cfg)) if hook is not None else ()


def build_zoo_tracker(name: str, *, device: Any = "cpu", root: str | os.PathLike | None = None,
                      runtime: str = "pytorch", onnx_dir: str | os.PathLike | None = None,
                      config: dict[str, Any] | None = None) -> Any:
    """Build the zoo tracker ``name`` (weights verified first) on ``device``; ``runtime`` and
    ``onnx_dir`` as in :func:`vtrack.tracking.loader.build_trained_tracker`. ``config``: a full
    config to use in place of the entry's own (e.g. other tracker options to tune); its ``model``
    section must equal the entry's, since the weights are the entry's.

    Raises:
        ValueError: ``config``'s ``model`` section differs from the entry's.
    """
    from vtrack.models import get_family
    from vtrack.tracking.loader import build_trained_tracker

    entry = get_entry(name, root)
    verified_weights(entry, root)  # a damaged file fails before the (possibly slow) model build
    cfg = zoo_config(entry, root)
    if config is not None:
        if not isinstance(config, dict) or config.get("model") != cfg["model"]:
            raise ValueError(f"config: the zoo tracker {name!r} runs its own weights, so the config's 'model' section "
                             f"must equal the one of {entry.config} (only the tracker options may differ)")
        cfg = config
    model = get_family(cfg["model"]["name"]).build_model(cfg["model"])
    load_entry_weights(model, entry, root)
    return build_trained_tracker(name, cfg, None, model=model, device=device, runtime=runtime, onnx_dir=onnx_dir)


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------
def metrics_row(result_dir: str | os.PathLike, sequences: Iterable[Any]) -> dict[str, float]:
    """AO, SR0.5, SR0.75 (GOT-10k toolkit, :func:`vtrack.eval.evaluate.got10k_scores`: absent-target
    frames left out, the same numbers as ``vtrack eval``), success AUC and precision at 20 px (OPE)
    and FPS of the one-pass results in ``result_dir`` (as :func:`vtrack.eval.runner.run_tracker`
    writes them with ``protocol="ope"``), all fractions except FPS."""
    from vtrack.eval.evaluate import evaluate_results, got10k_scores
    from vtrack.eval.runner import read_box_file

    seqs = list(sequences)
    summary = evaluate_results(result_dir, seqs, protocol="ope", write=False)
    preds = {s.name: read_box_file(Path(result_dir) / f"{s.name}.txt") for s in seqs}
    got = got10k_scores(preds, seqs)
    scores = summary.get("scores", {})
    return {"ao": float(got.ao), "sr50": float(got.sr50), "sr75": float(got.sr75),
            "auc": float(scores["auc"]), "precision": float(scores["precision"]),
            "fps": float(summary.get("fps", math.nan))}


def evaluate_splits(factory: Any, data_root: str | os.PathLike, out_dir: str | os.PathLike,
                    splits: Iterable[str] = ("val", "test"), *, progress: bool = False) -> dict[str, dict[str, float]]:
    """Run ``factory``'s tracker (one-pass, in this process) on each split of the synthetic
    benchmark at ``data_root`` and return ``{split: metrics_row}``; results go to ``out_dir/<split>``."""
    from vtrack.data import load_dataset
    from vtrack.eval.runner import run_tracker

    out: dict[str, dict[str, float]] = {}
    for split in splits:
        seqs = load_dataset("synthetic", str(data_root), split)
        if not seqs:
            raise ValueError(f"data_root: no {split} sequences under {data_root}")
        rdir = Path(out_dir) / split
        run_tracker(factory, seqs, rdir, protocol="ope", overwrite=True, progress=progress)
        out[split] = metrics_row(rdir, seqs)
    return out


def _check_metrics(metrics: Any) -> dict[str, dict[str, float]]:
    if not isinstance(metrics, dict) or set(metrics) != {"val", "test"}:
        raise ValueError(f"metrics: expected a mapping with exactly the splits 'val' and 'test', got "
                         f"{sorted(metrics) if isinstance(metrics, dict) else type(metrics).__name__}")
    out: dict[str, dict[str, float]] = {}
    for split, row in metrics.items():
        if not isinstance(row, dict) or "ao" not in row:
            raise ValueError(f"metrics.{split}: expected a mapping with at least 'ao' (keys {list(METRIC_KEYS)}), "
                             f"got {row!r}")
        for key, value in row.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"metrics.{split}.{key}: expected a finite number, got {value!r}")
        out[split] = {k: float(v) for k, v in row.items()}
    return out


# ----------------------------------------------------------------------------------------------
# adding an entry
# ----------------------------------------------------------------------------------------------
def _read_checkpoint(path: Path, ema: bool) -> tuple[dict[str, Any], dict[str, Any] | None, int | None, list[Any]]:
    """(state dict, the run's config or None, optimizer step or None, the training sessions'
    provenance records or []) of a trainer checkpoint or of a plain state dict."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"checkpoint: cannot read {path}: {err}") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        state = ckpt.get("ema") if ema else ckpt["model"]
        if not isinstance(state, dict) or not state:
            raise ValueError(f"checkpoint: {path} holds no {'ema' if ema else 'model'} weights")
        cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
        prov = ckpt.get("provenance")
        return state, cfg, ckpt.get("step"), [p for p in prov if isinstance(p, dict)] if isinstance(prov, list) else []
    if ema:
        raise ValueError(f"checkpoint: {path} is a plain state dict: it has no EMA weights (drop --ema)")
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, None, None, []
    raise ValueError(f"checkpoint: {path} holds neither a state dict nor a trainer checkpoint with a 'model' key")


def _training_source(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's commit and CPU of a training: from the checkpoint's session records (each
    resumed session adds one), else (a checkpoint from before they existed) this checkout's commit
    and CPU at ``zoo add`` time, marked as such."""
    if not sessions:
        return {"commit": git_commit(), "cpu": cpu_model(), "commit_source": "zoo add (the checkpoint records none)"}
    commits = list(dict.fromkeys(str(p.get("commit", "unknown")) for p in sessions))
    cpus = list(dict.fromkeys(str(p.get("cpu", "unknown")) for p in sessions))
    out: dict[str, Any] = {"commit": ", ".join(commits), "cpu": ", ".join(cpus), "commit_source": "checkpoint"}
    if len(sessions) > 1:
        out["sessions"] = sessions
    return out


def _fp16(state: dict[str, Any]) -> dict[str, Any]:
    """Floating tensors in fp16 where that is lossless in range (finite); the rest unchanged."""
    import torch

    out = {}
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        if value.dtype.is_floating_point and value.dtype != torch.float16:
            half = value.to(torch.float16)
            if bool(torch.isfinite(half).all()) or not bool(torch.isfinite(value).all()):
                value = half
            else:
                log.warning("zoo: %s overflows fp16: kept in %s", key, value.dtype)
        out[key] = value.clone()  # no shared storage (safetensors refuses aliased tensors)
    return out


def _check_add_arguments(name: Any, train_command: Any, seed: Any, wall_minutes: Any, metrics: Any,
                         data_root: Any) -> dict[str, dict[str, float]] | None:
    """The checks of :func:`add_entry`'s arguments; returns the checked metrics (or None)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name: expected lower-case letters, digits and '_.-' (e.g. ostrack_tiny_zoo), got {name!r}")
    if not isinstance(train_command, str) or not train_command.strip():
        raise ValueError("train_command: expected the exact training command, got an empty string")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if not isinstance(wall_minutes, (int, float)) or not (math.isfinite(wall_minutes) and wall_minutes > 0):
        raise ValueError(f"wall_minutes: expected a positive number, got {wall_minutes!r}")
    if (metrics is None) == (data_root is None):
        raise ValueError("metrics/data_root: give exactly one (the metrics, or the benchmark to measure them on)")
    return _check_metrics(metrics) if metrics is not None else None


def _weights_blob(half: dict[str, torch.Tensor], name: str, family: str) -> bytes:
    """The entry's safetensors bytes. One metadata key: safetensors writes a map's keys in a random
    order, and the file's sha256 must depend on the weights alone (one checkpoint, one file)."""
    from safetensors.torch import save as st_save

    return st_save(half, metadata={"vtrack": json.dumps({"family": family, "name": name}, sort_keys=True)})


def add_entry(
    name: str,
    checkpoint: str | os.PathLike,
    *,
    train_command: str,
    seed: int,
    wall_minutes: float,
    metrics: dict[str, dict[str, float]] | None = None,
    data_root: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    ema: bool = False,
    replace: bool = False,
    root: str | os.PathLike | None = None,
) -> ZooEntry:
    """Add a trained tracker to the zoo: its fp16 safetensors weights, its full config, and a
    manifest entry with sha256, training provenance (command, seed, commit, wall time, CPU) and
    metrics.

    Args:
        name: entry name (lower case letters, digits, ``_.-``); must be new unless ``replace``.
        checkpoint: a ``vtrack train`` checkpoint (its ``model`` weights and config) or a plain
            state dict (then ``config`` is required).
        train_command: the exact command that trained it (with its seed).
        seed: the training seed.
        wall_minutes: training wall time in minutes.
        metrics: ``{"val": {...}, "test": {...}}`` rows of :func:`metrics_row` (at least ``ao``);
            None: measured here on ``data_root`` with the shipped (fp16) weights.
        data_root: the synthetic benchmark whose val and test splits give the metrics (with
            ``metrics=None``).
        config: tracker config to ship (default: the one stored in the checkpoint).
        overrides: ``key=value`` overrides applied to that config (e.g. tracker settings tuned on val).
        ema: ship the EMA weights of the checkpoint instead of the raw ones.
        replace: overwrite an existing entry of the same name.
        root: zoo folder (default :func:`zoo_dir`).
    """
    from vtrack.config import apply_overrides, load_yaml
    from vtrack.models import get_family
    from vtrack.tracking.loader import load_state_into

    metrics = _check_add_arguments(name, train_command, seed, wall_minutes, metrics, data_root)
    base = zoo_dir() if root is None else Path(root)
    from vtrack.tracking.loader import BASELINES

    if name in BASELINES:
        raise ValueError(f"name: {name!r} is a baseline tracker's name; choose another")
    raw_entries = _read_manifest(base)
    if any(e.get("name") == name for e in raw_entries) and not replace:
        raise ValueError(f"name: the zoo already holds {name!r} (pass replace=True / --replace to overwrite it)")

    state, ckpt_cfg, step, sessions = _read_checkpoint(Path(checkpoint), ema)
    if config is not None:
        cfg = load_yaml(config)
    elif ckpt_cfg is not None:
        cfg = copy.deepcopy(ckpt_cfg)
    else:
        raise ValueError(f"config: {checkpoint} is a plain state dict without a config; pass --config")
    cfg = apply_overrides(cfg, list(overrides))
    if not isinstance(cfg.get("model"), dict) or not isinstance(cfg["model"].get("name"), str):
        raise ValueError("config: needs a 'model' section with a 'name' (the tracker family)")
    cfg_seed = (cfg.get("train") or {}).get("seed")
    if cfg_seed is not None and cfg_seed != seed:
        raise ValueError(f"seed: {seed} differs from the config's train.seed {cfg_seed}")
    family = cfg["model"]["name"]
    # non-constant tensors that every build of the model reproduces exactly (a pretrained
    # component loaded from its package, index tables) are taken from the build instead of being
    # stored: two builds under different seeds tell them from randomly initialised ones; constant
    # ones (zero biases, unit norms an initialisation may change) are stored
    import torch

    builds = []
    rng = torch.random.get_rng_state()
    try:
        for build_seed in (1, 2):
            torch.manual_seed(build_seed)
            builds.append(get_family(family).build_model(cfg["model"]))
    finally:
        torch.random.set_rng_state(rng)
    model, other = builds
    fresh, fresh2 = model.state_dict(), other.state_dict()
    from_build = sorted(
        k for k, v in state.items()
        if k in fresh and fresh[k].shape == v.shape and fresh[k].dtype == v.dtype
        and v.numel() > 1 and not bool((v == v.reshape(-1)[0]).all())
        and torch.equal(fresh[k], fresh2[k]) and torch.equal(fresh[k].cpu(), v.detach().cpu()))
    half = _fp16({k: v for k, v in state.items() if k not in from_build})
    shipped = {**half, **{k: fresh[k] for k in from_build}}  # what a load of the entry gives the model
    # the shipped weights must load (strict) into the model the shipped config builds
    load_state_into(model, shipped, source=str(checkpoint))
    built = {"keys": from_build, "sha256": tensors_sha256(fresh, from_build)} if from_build else {}
    blob = _weights_blob(half, name, family)
    if len(blob) > MAX_WEIGHTS_BYTES:
        raise ValueError(f"checkpoint: {name}'s fp16 weights take {len(blob) / 2**20:.1f} MB; the zoo allows at most "
                         f"{MAX_WEIGHTS_BYTES / 2**20:.0f} MB")
    if metrics is None:
        metrics = _measure_metrics(name, cfg, shipped, data_root)
    import yaml

    source = _training_source(sessions)  # before anything is written: the checkout is still clean
    weights_file, config_file = f"{name}.safetensors", f"{name}.yaml"
    atomic_write_bytes(base / weights_file, blob)
    atomic_write_text(base / config_file, yaml.safe_dump(cfg, sort_keys=False))
    entry = ZooEntry(
        name=name, family=family, config=config_file, weights=weights_file,
        sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob), from_build=built,
        training={"command": train_command, "seed": seed, **source, "wall_minutes": float(wall_minutes),
                  "checkpoint": Path(checkpoint).name, "step": step, "ema": bool(ema)},
        metrics=metrics, base_config=str(config) if config is not None else "",
    )
    raw = {k: v for k, v in entry.to_json(base).items() if k not in ("config_path", "extras")}  # derived when listed
    raw["weights"].pop("path")
    _store_entry(base, name, raw)
    return entry


def _measure_metrics(name: str, cfg: dict[str, Any], half: dict[str, Any], data_root: Any) -> dict[str, Any]:
    """Val and test metrics of the shipped (fp16) weights on ``data_root``, tracking on one thread."""
    import functools

    from vtrack.tracking.loader import build_trained_tracker

    return _single_thread_metrics(
        functools.partial(build_trained_tracker, name, cfg, half, source=f"{name} (fp16)"), data_root)


def _single_thread_metrics(factory: Any, data_root: Any) -> dict[str, Any]:
    """:func:`evaluate_splits` of ``factory``'s tracker into a temporary folder, on one thread (batch-1
    tracking: the FPS the zoo reports is single-threaded), checked by :func:`_check_metrics`."""
    import tempfile

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="vtrack-zoo-") as tmp:
            return _check_metrics(evaluate_splits(factory, data_root, tmp, progress=True))
    finally:
        torch.set_num_threads(before)


def measure_entry(name: str, data_root: str | os.PathLike, *, root: str | os.PathLike | None = None,
                  commit: str | None = None) -> ZooEntry:
    """Measure the zoo entry ``name``'s val and test metrics again with its shipped weights on the
    synthetic benchmark at ``data_root`` (one thread, :func:`metrics_row`) and store them in its
    manifest entry, with the commit and CPU of this measurement under ``metrics_measured``; the
    weights, config and training provenance stay as they are. ``commit``: the source commit to
    record (default: read now; ``vtrack zoo measure`` reads it once, before the first entry
    rewrites the manifest). ``vtrack zoo measure``."""
    import functools

    if data_root is None or not Path(data_root).is_dir():
        raise ValueError(f"data_root: expected the synthetic benchmark's folder, got {data_root!r}")
    base = zoo_dir() if root is None else Path(root)
    get_entry(name, base)  # unknown names fail before any tracking
    metrics = _single_thread_metrics(functools.partial(build_zoo_tracker, name, root=base), data_root)
    with _manifest_lock(base):
        raws = _read_manifest(base)
        raw = next((e for e in raws if e.get("name") == name), None)
        if raw is None:
            raise ValueError(f"name: {name!r} left the zoo while it was measured")
        raw["metrics"] = metrics
        raw["metrics_measured"] = {"commit": commit or git_commit(), "cpu": cpu_model()}
        _write_manifest(base, raws)
    return get_entry(name, base)


def _store_entry(base: Path, name: str, raw: dict[str, Any]) -> None:
    """Put ``raw`` into the manifest, replacing an entry of that name."""
    with _manifest_lock(base):
        # re-read under the lock: another `zoo add` may have written the manifest while this one evaluated
        entries = [e for e in _read_manifest(base) if e.get("name") != name] + [raw]
        _write_manifest(base, entries)


def _write_manifest(base: Path, entries: list[dict[str, Any]]) -> None:
    """Write the manifest atomically (call under :func:`_manifest_lock`)."""
    atomic_write_text(_manifest_path(base), json.dumps({"format": MANIFEST_FORMAT, "entries": entries}, indent=2) + "\n")


@contextlib.contextmanager
def _manifest_lock(base: Path) -> Iterator[None]:
    """Exclusive lock (``fcntl.flock`` on ``.manifest.lock``) around a manifest read-modify-write."""
    import fcntl

    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".manifest.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
