"""``vtrack demo``: the whole pipeline on a CPU in minutes.

1. generate the synthetic benchmark if absent (``vtrack.data.synthetic``),
2. the model zoo (:mod:`vtrack.zoo`): run every zoo tracker, OpenCV CSRT and KCF (when
   opencv-contrib is installed) and the static box on the test split, with AO, SR0.5, SR0.75,
   success AUC, precision and FPS (an empty zoo is said so, and the demo goes on),
3. train a small tracker (default OSTrack-tiny) on the train split, to show that training works,
   and run it (and its family's variants, e.g. CE off) on the test split next to the baselines,
4. write a report folder: both tables, success/precision plots, annotated videos of one test
   sequence, the tracker speed table and the kernel benchmark table,
and print the zoo table and where the report is. ``--quick`` shrinks everything (tests, under a
minute).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vtrack.configs import resolve_config
from vtrack.io import atomic_write_text
from vtrack.provenance import cpu_model
from vtrack.train.numerics import NUMERICS

log = logging.getLogger(__name__)

# demo trackers: name -> config (a family's tiny config; more trackers can be added here)
TRACKERS: dict[str, str] = {
    "ostrack": "configs/ostrack/ostrack_tiny.yaml",
    "esat": "configs/esat/esat_tiny.yaml",
    "sparsett": "configs/sparsett/sparsett_tiny.yaml",
}
# what the report says about the training's numerics (train.numerics; vtrack.train.numerics)
_NUMERICS_NOTE: dict[str, str] = {
    "portable": " (every library pinned to AVX2 code and 2 threads, MKL in its vendor-independent mode: the "
                "weights, and so these scores, are the same on any x86-64 CPU with AVX2)",
    "native": " (the CPU's own vector code: the scores of this short training differ between CPUs)",
}
# the synthetic benchmark of --quick: a few short, small sequences
QUICK_DATA: dict[str, Any] = {"train": 4, "val": 0, "test": 2, "frames": 12, "width": 128, "height": 128}


@dataclass
class DemoOptions:
    """Options of :func:`run_demo` (see ``vtrack demo --help``)."""

    data: Path = Path("data/synthetic")
    out: Path = Path("reports/demo")
    trackers: list[str] = field(default_factory=lambda: ["ostrack"])
    config: Path | None = None
    quick: bool = False
    device: str = "cpu"
    epochs: int | None = None
    samples_per_epoch: int | None = None
    csrt: bool = True
    zoo: bool = True
    train: bool = True
    bench: bool = True
    seed: int = 0
    threads: int | None = None
    workers: int | None = None
    overrides: list[str] = field(default_factory=list)
    numerics: str = "portable"

    def __post_init__(self) -> None:
        if self.workers is None:  # one tracker per core, two at most (see _run_trackers)
            from vtrack.eval.runner import usable_cores  # imports torch: not at the module's import

            self.workers = min(2, usable_cores()) if self.device == "cpu" else 1
        unknown = [t for t in self.trackers if t not in TRACKERS]
        if unknown or not self.trackers:
            raise ValueError(f"trackers: expected names from {sorted(TRACKERS)}, got {self.trackers}")
        if self.config is not None and len(self.trackers) != 1:
            raise ValueError("config: a custom config replaces one tracker's; pass a single --tracker with it")
        if self.numerics not in NUMERICS:
            raise ValueError(f"numerics: expected {' or '.join(map(repr, NUMERICS))}, got {self.numerics!r}")
        for name in ("epochs", "samples_per_epoch", "threads", "workers"):
            val = getattr(self, name)
            if val is not None and val < 1:
                raise ValueError(f"{name}: expected a positive int, got {val}")


def prepare_data(opts: DemoOptions) -> Path:
    """Generate (or reuse) the synthetic benchmark under ``opts.data``."""
    from vtrack.data.synthetic import ensure_synthetic

    params = dict(QUICK_DATA) if opts.quick else {}
    return ensure_synthetic(opts.data, workers=1, progress=True, **params)


def train_config(path: Path, opts: DemoOptions, data_root: Path) -> dict[str, Any]:
    """The tracker's config pointed at the synthetic train split, shrunk with ``--quick``."""
    from vtrack.config import apply_overrides, load_yaml

    cfg = apply_overrides(copy.deepcopy(load_yaml(path)), opts.overrides)
    data = cfg.setdefault("data", {})
    data["datasets"] = [{"name": "synthetic", "root": str(data_root), "split": "train"}]
    from vtrack.eval.runner import usable_cores

    # one loader process beside the training when there is a core for it: every sample is a pure function of
    # (seed, epoch, index) (vtrack.train.samplers), so the batches, and the weights, are the same as without it
    data["num_workers"] = 1 if usable_cores() >= 2 else 0
    train = cfg.setdefault("train", {})
    train["device"] = opts.device
    train["seed"] = opts.seed
    train["numerics"] = opts.numerics
    sampler = data.setdefault("sampler", {})
    if opts.quick:
        train.update(epochs=1, batch_size=8, log_interval=1)
        sampler["samples_per_epoch"] = 16
    if opts.epochs is not None:
        train["epochs"] = opts.epochs
    if opts.samples_per_epoch is not None:
        sampler["samples_per_epoch"] = opts.samples_per_epoch
    return cfg


def _numerics(cfg: dict[str, Any]) -> str:
    """The config's ``train.numerics``; ``portable`` falls back to ``native`` (logged) on a CPU without AVX2,
    or off the CPU."""
    from vtrack.train.numerics import portable_supported

    train_cfg = cfg.setdefault("train", {})
    numerics = str(train_cfg.get("numerics", "native"))
    if numerics != "portable":
        return numerics
    ok, why = portable_supported()
    if str(train_cfg.get("device", "cpu")) != "cpu":
        ok, why = False, f"training on {train_cfg.get('device')}"
    if not ok:
        log.warning("portable numerics unavailable (%s): training with native numerics; the trained tracker's AO "
                    "will not match other machines'", why)
        train_cfg["numerics"] = numerics = "native"
    return numerics


def _trained_tracker(name: str, opts: DemoOptions, data_root: Path) -> tuple[Any, dict[str, Any]]:
    """Train tracker ``name``; returns (a TrackerFactory for it, training info)."""
    import yaml

    from vtrack.tracking.loader import TrackerFactory
    from vtrack.train import train
    from vtrack.train.numerics import missing_env, run_portable
    from vtrack.train.trainer import latest_checkpoint

    cfg_path = opts.config if opts.config is not None else resolve_config(TRACKERS[name])
    cfg = train_config(Path(cfg_path), opts, data_root)
    run_dir = opts.out / "train" / name
    numerics = _numerics(cfg)
    t0 = time.perf_counter()
    if numerics == "portable" and missing_env():
        # the pinned environment has to be there before torch loads: the training runs in a child process
        spec = opts.out / "train" / f"{name}_train_config.yaml"
        atomic_write_text(spec, yaml.safe_dump(cfg, sort_keys=False))
        rc = run_portable(["train", str(spec), "--out-dir", str(run_dir), "--overwrite"])
        if rc != 0:
            raise RuntimeError(f"vtrack train {spec} (portable numerics) failed with exit code {rc}")
        ckpt = latest_checkpoint(run_dir)
    else:
        ckpt = train(cfg, out_dir=run_dir, overwrite=True)  # a demo rerun replaces its own training
    minutes = (time.perf_counter() - t0) / 60.0
    cfg_file = run_dir / "demo_config.yaml"
    atomic_write_text(cfg_file, yaml.safe_dump(cfg, sort_keys=False))
    info = {"config": str(cfg_path), "checkpoint": str(ckpt), "minutes": minutes, "numerics": numerics,
            "epochs": cfg["train"]["epochs"], "samples_per_epoch": cfg["data"]["sampler"].get("samples_per_epoch")}
    factory = TrackerFactory(f"{name}_tiny" if opts.config is None else name, device=opts.device,
                             config=str(cfg_file), checkpoint=str(ckpt))
    return factory, info


def _variant_factories(factory: Any) -> dict[str, tuple[Any, str]]:
    """The same checkpoint tracked as each variant its family declares (``family.variants()``)
    that changes the trained config, e.g. OSTrack with candidate elimination off:
    ``{name: (TrackerFactory, "key=value, ...")}``."""
    import re

    import yaml

    from vtrack.config import apply_overrides, get_by_path, load_yaml, override_strings
    from vtrack.models import get_family
    from vtrack.tracking.loader import TrackerFactory

    cfg = load_yaml(factory.config)
    out: dict[str, tuple[Any, str]] = {}
    for variant, overrides in get_family(cfg["model"]["name"]).variants().items():
        if all(get_by_path(cfg, k, object()) == v for k, v in overrides.items()):
            continue  # the trained config already is this variant
        slug = re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")
        path = Path(factory.config).with_name(f"demo_config_{slug}.yaml")
        strings = override_strings(overrides)
        atomic_write_text(path, yaml.safe_dump(apply_overrides(cfg, strings), sort_keys=False))
        name = f"{factory.name}_{slug}"
        out[name] = (TrackerFactory(name, device=factory.device, config=str(path), checkpoint=factory.checkpoint),
                     ", ".join(strings))
    return out


def _baselines(opts: DemoOptions) -> dict[str, Any]:
    from vtrack.tracking.baselines import opencv_tracker_available
    from vtrack.tracking.loader import TrackerFactory

    out = {"static": TrackerFactory("static")}
    if opts.csrt:
        for kind in ("csrt", "kcf"):
            if opencv_tracker_available(kind):
                out[kind] = TrackerFactory(kind)
            else:
                log.warning("OpenCV %s not installed (pip install opencv-contrib-python-headless in place of "
                            "opencv-python-headless): skipped", kind.upper())
    return out


def _speed_section(factories: dict[str, Any], opts: DemoOptions) -> str:
    """FPS of each trained tracker's model at batch 1 for every variant of its family, e.g. CE
    on/off (vtrack.bench.trackers)."""
    from vtrack.bench.trackers import bench_tracker, format_table
    from vtrack.config import load_yaml
    from vtrack.models import get_family
    from vtrack.tracking.loader import load_model_weights

    rows = []
    frames = 5 if opts.quick else 40
    for name, fac in factories.items():
        if fac.config is None:
            continue
        cfg = load_yaml(fac.config)
        family = get_family(cfg["model"]["name"])
        model = family.build_model(cfg["model"])
        load_model_weights(model, fac.checkpoint)
        for variant in list(family.variants()) or [None]:  # kernels as configured (backend=None)
            rows.append(bench_tracker(cfg, backend=None, variant=variant, device=opts.device, frames=frames,
                                      model=model, name=name))
    return format_table(rows) if rows else ""


def _kernel_section(opts: DemoOptions) -> str:
    """The kernel benchmark table (vtrack.bench.kernels, quick mode)."""
    try:
        from vtrack.bench import kernels as kbench
    except ImportError as err:
        log.warning("kernel benchmark unavailable: %s", err)
        return f"(kernel benchmark unavailable: {err})\n"
    return kbench.quick_table(device=opts.device)


def _run_trackers(factories: dict[str, Any], test: list[Any], results: Path, opts: DemoOptions) -> dict[str, Path]:
    """Run each tracker one-pass on ``test`` into ``results/<name>`` (with its summary.json).

    With ``opts.workers`` > 1 the trackers run side by side, one per worker process (each with
    ``opts.threads`` or one torch thread, as in this process), taken in order as workers free up; a
    tracker's FPS is then measured beside another tracker's run on the other core.
    """
    jobs = [(name, fac, results / name) for name, fac in factories.items()]
    workers = min(opts.workers or 1, len(jobs))
    if workers <= 1:
        with _tracking_threads(opts):
            for name, fac, rdir in jobs:
                _track(name, fac, test, rdir, progress=True)
        return {name: rdir for name, _, rdir in jobs}
    from vtrack.eval.runner import init_worker_threads

    threads = opts.threads or 1
    log.info("tracking %d trackers in %d processes of %d CPU thread(s)", len(jobs), workers, threads)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker_threads,
                             initargs=(threads, logging.getLogger().level)) as pool:
        for fut in [pool.submit(_track, name, fac, test, rdir, False) for name, fac, rdir in jobs]:
            fut.result()  # a tracker's error is raised here
    return {name: rdir for name, _, rdir in jobs}


def _track(name: str, fac: Any, test: list[Any], rdir: Path, progress: bool) -> None:
    """One tracker over ``test`` into ``rdir``, scored (its summary.json)."""
    from vtrack.eval.evaluate import evaluate_results
    from vtrack.eval.runner import run_tracker

    t0 = time.perf_counter()
    run_tracker(fac, test, rdir, protocol="ope", overwrite=True, progress=progress)
    evaluate_results(rdir, test, protocol="ope", tracker=name, dataset="synthetic-test")
    log.info("%s: %d sequences in %.0f s", name, len(test), time.perf_counter() - t0)


def zoo_step(opts: DemoOptions, test: list[Any], baselines: dict[str, Any]) -> tuple[str, dict[str, Path]]:
    """Run every zoo tracker and the baselines on ``test``; returns (the report section, result
    folders by tracker name)."""
    from vtrack.extras import install_command, missing_extras
    from vtrack.tracking.loader import TrackerFactory
    from vtrack.zoo import entry_extras, list_entries, zoo_dir

    entries, skipped = [], []
    for entry in list_entries():
        missing = missing_extras(entry_extras(entry))
        if missing:  # like CSRT without opencv-contrib: said, skipped, the demo goes on
            need = " && ".join(install_command(m) for m in missing)
            skipped.append(f"`{entry.name}` (needs `{need}`)")
            log.warning("zoo tracker %s skipped: it needs %s", entry.name, need)
        else:
            entries.append(entry)
    factories = {e.name: TrackerFactory(e.name, device=opts.device) for e in entries}
    dirs = _run_trackers({**factories, **baselines}, test, Path(opts.out) / "results", opts)
    parts = ["## The model zoo on the synthetic test split\n\n"]
    if entries:
        parts.append(f"{len(entries)} zoo tracker(s) from {zoo_dir()} (`vtrack zoo list`), each built by name "
                     "alone, next to the baselines:\n\n")
    elif not skipped:
        parts.append(f"The zoo ({zoo_dir()}) holds no trackers yet (`vtrack zoo list`): the table shows the "
                     "baselines only.\n\n")
    if skipped:
        parts.append(f"Skipped, an optional extra is not installed: {', '.join(skipped)}.\n\n")
    parts.append(_ao_table(list(dirs.values()), test))
    return "".join(parts), dirs


def run_demo(opts: DemoOptions) -> Path:
    """Run the demo and return the path of the report (``<out>/README.md``)."""
    from vtrack.data import load_dataset
    from vtrack.eval.reports import write_report

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = prepare_data(opts)
    test = load_dataset("synthetic", str(data_root), "test")
    if not test:
        raise ValueError(f"data: no test sequences under {data_root}")
    cpu = cpu_model()
    parts = ["# vtrack demo\n\n", f"Device {opts.device} ({cpu}); tracking single-threaded unless --threads, "
             f"{opts.workers} tracker(s) at a time (--workers).\n\n"]

    baselines = _baselines(opts)
    ran: dict[str, Path] = {}  # every result folder of this run, by tracker
    videos: list[Path] = []
    if opts.zoo:
        section, zoo_dirs = zoo_step(opts, test, baselines)
        log.info("zoo step:\n%s", section)
        parts.append(section)
        ran.update(zoo_dirs)
        baseline_dirs = {k: zoo_dirs[k] for k in baselines}
        zoo_names = [k for k in zoo_dirs if k not in baselines]
        if zoo_names:
            best = max(zoo_names, key=lambda k: _ao(zoo_dirs[k], test))
            videos.append(_video(out, best, zoo_dirs[best], test))
    else:
        baseline_dirs = _run_trackers(baselines, test, out / "results", opts)
        ran.update(baseline_dirs)

    trained: dict[str, Any] = {}
    if opts.train:
        train_info: dict[str, dict[str, Any]] = {}
        for name in opts.trackers:
            fac, info = _trained_tracker(name, opts, data_root)
            if fac.name in ran:  # a zoo tracker of the same name: keep both results
                fac = dataclasses.replace(fac, spec=f"{fac.spec}_demo")
            trained[fac.name] = fac
            train_info[fac.name] = info
        variants = {k: v for fac in trained.values() for k, v in _variant_factories(fac).items()}
        dirs = _run_trackers({**trained, **{k: fac for k, (fac, _) in variants.items()}}, test, out / "results", opts)
        ran.update(dirs)
        result_dirs = [*dirs.values(), *baseline_dirs.values()]
        parts.append("\n## Training a small tracker\n\n")
        for name, info in train_info.items():
            parts.append(
                f"Trained **{name}** ({info['config']}) on the synthetic train split for {info['epochs']} epoch(s) x "
                f"{info['samples_per_epoch']} pairs in {info['minutes']:.1f} min on {opts.device} with {info['numerics']} "
                f"numerics{_NUMERICS_NOTE.get(info['numerics'], '')}; checkpoint "
                f"`{info['checkpoint']}`.\n\n"
            )
        parts.append("Scores on the synthetic test split (one-pass evaluation; AO = the GOT-10k toolkit's mean IoU over "
                     "the frames where the target is present, as `vtrack eval` prints it; SR = success rate at IoU "
                     "0.5/0.75, success AUC, precision at 20 px):\n\n")
        parts.append(_ao_table(result_dirs, test))
        for name, (_, overrides) in variants.items():
            parts.append(f"\n`{name}`: the same checkpoint tracked with `{overrides}` (a variant of its family).\n")
        first = next(iter(trained))
        videos.append(_video(out, first, dirs[first], test))
    report_md = write_report(list(ran.values()), out)
    parts.append("\n")
    parts.append(report_md.read_text().replace("# Tracking results\n", "", 1))
    if videos:
        parts.append("\n## Videos\n\n")
        parts.extend(f"- [{v.name}]({v.name}): the tracker (red) and the ground truth (green).\n" for v in videos)
    if opts.bench and trained:
        parts.append("\n## Tracker speed (batch 1, every variant of the tracker's family, e.g. candidate elimination on/off)\n\n")
        with _tracking_threads(opts):
            parts.append(_speed_section(trained, opts))
    if opts.bench:
        parts.append("\n## Kernel benchmark (quick)\n\n")
        parts.append(_kernel_section(opts))
    readme = out / "README.md"
    atomic_write_text(readme, "".join(parts))
    return readme


def _ao(result_dir: Path, test: list[Any]) -> float:
    from vtrack.zoo import metrics_row

    return metrics_row(result_dir, test)["ao"]


def _video(out: Path, name: str, result_dir: Path, test: list[Any]) -> Path:
    """Annotated video of tracker ``name`` on the longest test sequence."""
    from vtrack.eval.reports import write_video
    from vtrack.eval.runner import read_box_file

    seq = max(test, key=len)
    pred = read_box_file(result_dir / f"{seq.name}.txt")
    return write_video(out / f"{name}_{seq.name}.mp4", (seq.frame(i) for i in range(len(seq))), pred, seq.boxes,
                       fps=15.0, label=name)


@contextlib.contextmanager
def _tracking_threads(opts: DemoOptions) -> Iterator[None]:
    """Batch-1 tracking is latency-bound: on CPU it runs single-threaded unless ``--threads`` says
    otherwise (several OpenMP threads spin-wait badly on a busy machine)."""
    import torch

    if torch.device(opts.device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(opts.threads or 1)
    log.info("tracking with %d CPU thread(s)", torch.get_num_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _ao_table(result_dirs: list[Path], test: list[Any]) -> str:
    """Markdown table per tracker (:func:`vtrack.zoo.metrics_row`): AO, SR0.5, SR0.75 (GOT-10k
    toolkit), success AUC, precision at 20 px and FPS."""
    from vtrack.eval.evaluate import load_summary
    from vtrack.zoo import metrics_row

    lines = ["| tracker | AO | SR0.5 | SR0.75 | success AUC | precision@20px | FPS |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for d in result_dirs:
        row = metrics_row(d, test)
        lines.append(
            f"| {load_summary(d).get('tracker', d.name)} | {_pct(row['ao'])} | {_pct(row['sr50'])} | "
            f"{_pct(row['sr75'])} | {_pct(row['auc'])} | {_pct(row['precision'])} | {row['fps']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100.0 * float(v):.1f}"


def register(subparsers: Any) -> None:
    """Add ``vtrack demo`` to the CLI."""
    p = subparsers.add_parser("demo", help="generate data, train a small tracker on CPU, evaluate, write a report",
                              description=__doc__)
    p.add_argument("--data", type=Path, default=None, help="synthetic benchmark folder (default data/synthetic)")
    p.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder (default reports/demo)")
    p.add_argument("--tracker", action="append", choices=sorted(TRACKERS), default=None,
                   help="tracker(s) to train and evaluate (repeatable; default ostrack)")
    p.add_argument("--config", type=Path, default=None, help="custom config for the (single) tracker")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--samples-per-epoch", type=int, default=None, help="override data.sampler.samples_per_epoch")
    p.add_argument("--no-csrt", action="store_true", help="skip the OpenCV CSRT and KCF baselines")
    p.add_argument("--no-zoo", action="store_true", help="skip the model-zoo step")
    p.add_argument("--no-train", action="store_true", help="skip the training step (the zoo step only)")
    p.add_argument("--no-bench", action="store_true", help="skip the speed tables")
    p.add_argument("--quick", action="store_true", help="tiny data and training (tests; under a minute)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable (e.g. model.backbone.ce_start_epoch=1)")
    p.add_argument("--numerics", choices=NUMERICS, default="portable",
                   help="training numerics (train.numerics): portable (default) gives the same weights and scores on "
                        "any x86-64 CPU with AVX2, about 2x slower per step; native uses the CPU's own vector code")
    p.add_argument("--workers", type=int, default=None,
                   help="trackers evaluated side by side, one per process (default: 2 on a CPU with 2 or more cores, "
                        "else 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for tracking (default 1) and native-numerics training (default: torch's)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    data = args.data if args.data is not None else Path("data/synthetic_quick" if args.quick else "data/synthetic")
    opts = DemoOptions(
        data=data, out=args.out, trackers=args.tracker or ["ostrack"], config=args.config, quick=args.quick,
        device=args.device, epochs=args.epochs, samples_per_epoch=args.samples_per_epoch, csrt=not args.no_csrt,
        zoo=not args.no_zoo, train=not args.no_train, bench=not args.no_bench, seed=args.seed, threads=args.threads,
        workers=args.workers, overrides=args.overrides, numerics=args.numerics,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = run_demo(opts)
    print(report.read_text().split("\n## Training", 1)[0].split("\n## Tracking", 1)[0].rstrip())
    print(f"\nvtrack demo: report written to {report}")
    return 0
