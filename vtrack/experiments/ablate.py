"""``vtrack ablate``: train and evaluate every point of a grid of config overrides.

A point is a set of dotted config overrides (``model.mode: ofc``). Points that differ only in
``tracker.*`` keys share one training run. Each training goes through :func:`vtrack.train.train`,
each evaluation through :func:`vtrack.eval.runner.run_tracker` and
:func:`vtrack.eval.evaluate.evaluate_results`, so an ablation is the same code path as any
training and benchmark run. Finished trainings and result folders are reused (resumable).

Two ways to give the points::

    vtrack ablate configs/duml/duml_tiny.yaml --grid model.mode=ofc,onr,dual --steps 300 --out runs/abl
    vtrack ablate configs/experiments/duml_modes.yaml --out runs/duml_ablation

An experiment spec (YAML with a top-level ``config`` key, see :class:`Experiment`) names the base
config, the points, the protocols and the rest; ``--grid`` on a tracker config makes the points
the Cartesian product of the listed values.

Trained weights are evaluated without training with ``--checkpoint CKPT`` (with the tracker
config given) or ``--zoo NAME`` (a model-zoo entry, its own config as the base); every point then overrides
``tracker.*`` keys only, e.g. tracker options tuned on a validation set::

    vtrack ablate --zoo duml_cpu --grid tracker.window_influence=0.3,0.42 --root data/tune --split val \
        --protocol got10k --out runs/duml_tune
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence as Seq

import numpy as np
import yaml

from vtrack.config import apply_overrides, from_dict, load_yaml, override_strings, parse_override
from vtrack.io import atomic_write_text

log = logging.getLogger(__name__)

#: score columns of the Markdown table per protocol (those present in the summary are shown)
COLUMNS: dict[str, tuple[str, ...]] = {
    "ope": ("auc", "precision", "norm_precision"),
    "got10k": ("ao", "sr50"),
    "vot": ("accuracy", "robustness", "failures", "eao"),
    "trackingnet": ("success", "precision", "norm_precision"),
}


@dataclass
class Experiment:
    """An ablation: a base config and named points of config overrides.

    Attributes:
        config: base tracker config (YAML path).
        points: point name -> ``{dotted.key: value}`` overrides of the base config.
        overrides: ``key=value`` overrides applied to every point (e.g. the dataset root).
        protocols: evaluation protocols (``ope``, ``got10k``, ``vot``, ``trackingnet``).
        steps: optimizer steps per training (the schedule is sized to end there); None: the
            config's ``train.epochs``.
        baselines: untrained trackers evaluated next to the points (``static``...).
        dataset, root, split, max_sequences: the evaluation sequences (``vtrack.data.load_dataset``).
        group_by: a sequence attribute; the first protocol is also scored over the sequences where
            it is set (non-zero) and where it is not (e.g. ``distractors``).
        eao_interval: VOT EAO range: ``[low, high]``, an edition (``vot2018``) or ``lengths``
            (the 25th-75th percentile of the sequence lengths, for short synthetic sequences).
        checkpoint: evaluate these trained weights (with ``config``) instead of training; every
            point then overrides ``tracker.*`` keys only.
        zoo: evaluate this model-zoo entry's weights (``config`` is its config) instead of
            training; every point then overrides ``tracker.*`` keys only.
    """

    config: str
    points: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=lambda: ["ope"])
    steps: int | None = None
    baselines: list[str] = field(default_factory=list)
    dataset: str = "synthetic"
    root: str = "data/synthetic"
    split: str = "test"
    max_sequences: int | None = None
    group_by: str | None = None
    eao_interval: Any = "lengths"
    checkpoint: str | None = None
    zoo: str | None = None

    def __post_init__(self) -> None:
        if not self.points and not self.baselines:
            raise ValueError("points: expected at least one point (or a baseline), got none")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps: expected a positive int or null, got {self.steps}")
        bad = [p for p in self.protocols if p not in COLUMNS]
        if bad or not self.protocols:
            raise ValueError(f"protocols: expected a non-empty list of {sorted(COLUMNS)}, got {self.protocols}")
        for name, over in self.points.items():
            if not isinstance(over, dict):
                raise TypeError(f"points.{name}: expected a mapping dotted.key -> value, got {over!r}")
        if self.checkpoint is not None and self.zoo is not None:
            raise ValueError(f"checkpoint/zoo: expected at most one source of weights, got {self.checkpoint!r} "
                             f"and {self.zoo!r}")
        if self.evaluate_only:
            if self.steps is not None:
                raise ValueError(f"steps: nothing is trained with fixed weights (checkpoint/zoo), got {self.steps}")
            for name, over in self.points.items():
                bad = [k for k in over if not str(k).startswith("tracker.")]
                if bad:
                    raise ValueError(f"points.{name}: with fixed weights (checkpoint/zoo) a point overrides "
                                     f"tracker.* keys only, got {bad}")

    @property
    def evaluate_only(self) -> bool:
        """True when the points share fixed weights (``checkpoint`` or ``zoo``): nothing is trained."""
        return self.checkpoint is not None or self.zoo is not None


def grid_points(grid: Seq[str]) -> dict[str, dict[str, Any]]:
    """``["model.mode=ofc,dual", "train.lr=1e-4,1e-3"]`` -> the Cartesian product of the values,
    each point named ``key=value,...`` (values parsed as YAML)."""
    axes: list[tuple[str, list[Any]]] = []
    for text in grid:
        key, _, raw = str(text).partition("=")
        if not raw.strip():
            raise ValueError(f"--grid: expected key=v1,v2,... got {text!r}")
        values = [parse_override(f"{key}={v}")[1] for v in raw.split(",")]
        axes.append((key.strip(), values))
    points = {}
    for combo in itertools.product(*(values for _, values in axes)):
        over = {key: value for (key, _), value in zip(axes, combo)}
        points[",".join(f"{k}={json.dumps(v)}" for k, v in over.items())] = over
    return points


def load_experiment(path: str | Path | None, grid: Seq[str] = (), **options: Any) -> Experiment:
    """An :class:`Experiment` from a spec YAML, or from a tracker config plus ``--grid`` axes;
    ``options`` (not None) override the spec's fields. ``path`` may be None with a ``zoo`` option
    (the entry's config is the base config)."""
    if path is None:
        if options.get("zoo") is None:
            raise ValueError("config: expected an experiment spec or a tracker config (or --zoo NAME), got none")
        spec: dict[str, Any] = {}
    else:
        data = load_yaml(path)
        if "config" in data or "zoo" in data:
            spec = dict(data)
        elif "model" in data:
            spec = {"config": str(path)}
        else:
            raise ValueError(f"config: {path} is neither an experiment spec (top-level 'config') nor a tracker config")
    if grid:
        spec["points"] = grid_points(grid)
    spec.update({k: v for k, v in options.items() if v is not None})
    if spec.get("zoo") is not None and spec.get("config") is None:
        from vtrack import zoo

        spec["config"] = str(zoo.zoo_dir() / zoo.get_entry(str(spec["zoo"])).config)
    return from_dict(Experiment, spec, "experiment")


def eao_interval_for(lengths: Seq[int]) -> tuple[int, int]:
    """EAO range for short sequences: the 25th..75th percentile of the sequence lengths.

    VOT derives its range from the length distribution of its own sequences ([100, 356] for
    VOT2018); the synthetic sequences are 40-100 frames, so the same rule is applied to them.
    """
    q = np.percentile(np.asarray(lengths, dtype=np.float64), [25, 75])
    lo = max(int(q[0]), 2)
    return lo, max(int(q[1]), lo + 1)


def slug(name: str) -> str:
    """A folder name for a point (``dual+voting`` -> ``dual_voting``)."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", name).strip("_") or "base"


def point_config(exp: Experiment, overrides: dict[str, Any]) -> dict[str, Any]:
    """The base config with the experiment's and the point's overrides."""
    from vtrack.config import load_config

    return apply_overrides(load_config(exp.config, exp.overrides), override_strings(overrides))


def train_point(exp: Experiment, overrides: dict[str, Any], out: Path) -> Path:
    """Train the point's model (its non-``tracker.*`` overrides) and return the checkpoint; a
    finished run (``DONE`` file) is reused."""
    from vtrack.train import train

    model_over = {k: v for k, v in overrides.items() if not k.startswith("tracker.")}
    run_dir = out / "train" / slug(",".join(f"{k}={v}" for k, v in sorted(model_over.items())))
    done = run_dir / "DONE"
    if done.is_file():
        return Path(done.read_text().strip())
    cfg = point_config(exp, model_over)
    if exp.steps is not None:  # size the epochs so that the learning-rate schedule ends at ``steps``
        epochs = int(cfg["train"]["epochs"])
        batch = int(cfg["train"]["batch_size"]) * int(cfg["train"].get("accum_steps", 1))
        cfg.setdefault("data", {}).setdefault("sampler", {})["samples_per_epoch"] = max(
            batch, -(-exp.steps * batch // epochs))
    t0 = time.time()
    ckpt = Path(train(cfg, out_dir=run_dir, max_steps=exp.steps, overwrite=True))  # an unfinished run restarts
    log.info("trained %s in %.0f s -> %s", run_dir.name, time.time() - t0, ckpt)
    atomic_write_text(run_dir / "train_seconds.txt", f"{time.time() - t0:.1f}\n")
    atomic_write_text(done, str(ckpt))
    return ckpt


def evaluate_groups(result_dir: Path, sequences: Seq[Any], by: str, *, protocol: str = "ope") -> dict[str, Any]:
    """Scores of ``result_dir`` over all sequences and over those with / without attribute ``by``
    (``{"all": {...}, by: {...}, "no_" + by: {...}}``, each with its sequence count)."""
    from vtrack.eval.evaluate import evaluate_results

    groups = {"all": list(sequences), by: [s for s in sequences if s.attributes.get(by, 0)],
              f"no_{by}": [s for s in sequences if not s.attributes.get(by, 0)]}
    out: dict[str, Any] = {}
    for key, seqs in groups.items():
        if seqs:
            scores = evaluate_results(result_dir, seqs, protocol=protocol, write=False)["scores"]
            out[key] = {"sequences": len(seqs), **scores}
    return out


def evaluate_point(name: str, factory: Any, exp: Experiment, sequences: list[Any], out: Path,
                   eao: Any) -> dict[str, Any]:
    """Run one tracker with every protocol of ``exp``; its scores per protocol (and groups)."""
    from vtrack.eval.evaluate import evaluate_results
    from vtrack.eval.runner import run_tracker

    scores: dict[str, Any] = {}
    for protocol in exp.protocols:
        res_dir = out / "results" / protocol / slug(name)
        t0 = time.time()
        run_tracker(factory, sequences, res_dir, protocol=protocol, progress=False)
        kwargs = {"eao_interval": eao} if protocol == "vot" else {}
        summary = evaluate_results(res_dir, sequences, protocol=protocol, tracker=name, **kwargs)
        scores[protocol] = summary["scores"]
        scores[f"{protocol}_seconds"] = round(time.time() - t0, 1)
        if exp.group_by and protocol == exp.protocols[0]:
            scores["groups"] = evaluate_groups(res_dir, sequences, exp.group_by, protocol=protocol)
    return scores


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def to_markdown(rows: dict[str, dict[str, Any]], exp: Experiment) -> str:
    """One line per point: the :data:`COLUMNS` of every protocol."""
    cols = [(p, c) for p in exp.protocols for c in COLUMNS[p]]
    if exp.evaluate_only:
        weights = f"zoo entry `{exp.zoo}`" if exp.zoo is not None else f"checkpoint `{exp.checkpoint}`"
        trained = f"the weights of {weights} (evaluation only)"
    else:
        steps = f"{exp.steps} steps" if exp.steps else "the config's schedule"
        trained = f"every model trained for {steps}"
    lines = [f"`{exp.config}`, {exp.dataset} {exp.split} split ({exp.root}); {trained}.", "",
             "| tracker | " + " | ".join(f"{p} {c}" for p, c in cols) + " |",
             "| --- |" + " ---: |" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(r.get(p, {}).get(c)) for p, c in cols) + " |")
    return "\n".join(lines) + "\n"


def _sequences(exp: Experiment) -> list[Any]:
    from vtrack.data import load_dataset

    seqs = list(load_dataset(exp.dataset, exp.root, exp.split))
    if exp.max_sequences:
        seqs = seqs[: exp.max_sequences]
    if not seqs:
        raise ValueError(f"root: no {exp.split} sequences of {exp.dataset} under {exp.root}")
    return seqs


def run_experiment(exp: Experiment, out: str | Path, *, train_only: bool = False) -> dict[str, dict[str, Any]]:
    """Train and evaluate every point (and baseline); writes ``ablation.json`` (after each point,
    so a crash loses nothing) and ``ablation.md`` under ``out``; returns the rows."""
    from vtrack.tracking.loader import TrackerFactory

    out = Path(out)
    if train_only and exp.evaluate_only:
        raise ValueError("train_only: nothing is trained with fixed weights (checkpoint/zoo)")
    out.mkdir(parents=True, exist_ok=True)
    if train_only:
        for over in exp.points.values():
            train_point(exp, over, out)
        return {}
    seqs = _sequences(exp)
    eao = eao_interval_for([len(s) for s in seqs]) if exp.eao_interval == "lengths" else exp.eao_interval
    report = out / "ablation.json"
    rows: dict[str, Any] = json.loads(report.read_text()) if report.is_file() else {}
    for name in [*exp.baselines, *exp.points]:
        if name in rows:
            continue
        if name in exp.points:
            ckpt = exp.checkpoint if exp.evaluate_only else train_point(exp, exp.points[name], out)
            cfg_path = atomic_write_text(out / "configs" / f"{slug(name)}.yaml",
                                         yaml.safe_dump(point_config(exp, exp.points[name]), sort_keys=False))
            if exp.zoo is not None:  # the zoo entry's verified weights with the point's config
                factory = TrackerFactory(exp.zoo, config=str(cfg_path))
            else:
                factory = TrackerFactory(name, config=str(cfg_path), checkpoint=str(ckpt))
        else:
            factory = TrackerFactory(name)
        rows[name] = evaluate_point(name, factory, exp, seqs, out, eao)
        atomic_write_text(report, json.dumps(rows, indent=2))
        log.info("%s: %s", name, json.dumps(rows[name]))
    atomic_write_text(out / "ablation.md", to_markdown(rows, exp))
    return rows


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ablate`` subcommand."""
    p = sub.add_parser("ablate", help="train and evaluate a grid of config overrides (an ablation)")
    p.add_argument("config", nargs="?", default=None,
                   help="experiment spec (configs/experiments/*.yaml) or a tracker config with --grid "
                        "(optional with --zoo: the entry's config)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides applied to every point")
    p.add_argument("--grid", nargs="+", default=(), metavar="key=v1,v2", help="axes of the grid of points")
    p.add_argument("--out", required=True, help="output folder (trainings, results, ablation.json/.md)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per training")
    p.add_argument("--root", default=None, help="dataset root of the evaluation sequences")
    p.add_argument("--split", default=None, help="evaluation split")
    p.add_argument("--protocol", nargs="+", default=None, dest="protocols", help="evaluation protocols")
    p.add_argument("--max-sequences", type=int, default=None, help="only the first N evaluation sequences")
    p.add_argument("--train-only", action="store_true", help="train the points' models, evaluate nothing")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", default=None,
                         help="evaluate these weights with the config, train nothing (points: tracker.* keys only)")
    weights.add_argument("--zoo", default=None, metavar="NAME",
                         help="evaluate this zoo entry's weights, train nothing (points: tracker.* keys only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``vtrack ablate`` and print the table."""
    exp = load_experiment(args.config, args.grid, steps=args.steps, root=args.root, split=args.split,
                          protocols=args.protocols, max_sequences=args.max_sequences, checkpoint=args.checkpoint,
                          zoo=args.zoo)
    exp = dataclasses.replace(exp, overrides=[*exp.overrides, *args.overrides]) if args.overrides else exp
    run_experiment(exp, args.out, train_only=args.train_only)
    if not args.train_only:
        print((Path(args.out) / "ablation.md").read_text())
    return 0
