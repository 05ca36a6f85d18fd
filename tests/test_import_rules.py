"""What may import what (docs/design.md, "Architecture: parts, arrows and what may import what"),
checked on the source.

The model packages (``vtrack/models``) build networks, criteria and trackers from configs; they may
import only ``vtrack.kernels``, ``vtrack.tracking``, ``vtrack.config``, ``vtrack.io``,
``vtrack._compat``, ``vtrack.extras``, each other, ``vtrack.train.losses`` (loss functions shared
with training) and ``vtrack.deploy.engine`` (the engine a tracker runs its network branches on).
Everything else (the training engine, the data and evaluation layers, benchmarks, experiments, the
zoo) is built on top of the models. Every import counts, also one inside a function.
"""
import ast
from pathlib import Path

import vtrack

ROOT = Path(vtrack.__file__).resolve().parent
ALLOWED_IN_MODELS = ("vtrack.models", "vtrack.kernels", "vtrack.tracking", "vtrack.config", "vtrack.io",
                     "vtrack._compat", "vtrack.extras", "vtrack.train.losses", "vtrack.deploy.engine")
# lower layers never import upper ones either (a package's ``commands.py``, its `vtrack` CLI entry,
# belongs to the application layer and may)
FORBIDDEN = {
    "kernels": ("vtrack.models", "vtrack.tracking", "vtrack.train", "vtrack.eval", "vtrack.data", "vtrack.bench",
                "vtrack.experiments"),
    "tracking": ("vtrack.train", "vtrack.eval", "vtrack.bench", "vtrack.experiments"),
}
# the tracker factory (``build_tracker`` by config or zoo name) stands above the models; the rest of
# vtrack.tracking (Tracker, crops, preprocess, windows, postprocess, baselines) stands below them
FACTORIES = ("loader.py", "commands.py")
ABOVE_TRACKING = ("vtrack.models", "vtrack.zoo", "vtrack.deploy")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "vtrack"]
    return out


def _violations(package: str, forbidden: tuple[str, ...], skip: tuple[str, ...] = ("commands.py",)) -> list[str]:
    bad = []
    base = ROOT / package
    for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
        if path.name in skip:
            continue
        for line, name in _imports(path):
            if _within(name, forbidden):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {name}")
    return bad


def test_models_import_only_layers_kernels_tracking_and_config():
    bad = []
    for path in sorted((ROOT / "models").rglob("*.py")):
        for line, name in _imports(path):
            if name != "vtrack" and _within(name, ("vtrack",)) and not _within(name, ALLOWED_IN_MODELS):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {name}")
    assert bad == []


def test_kernels_and_tracking_do_not_import_upper_layers():
    for package, forbidden in FORBIDDEN.items():
        assert _violations(package, forbidden) == [], package
    assert _violations("tracking", ABOVE_TRACKING, FACTORIES) == []
    assert _violations("deploy/engine.py", ("vtrack.models", "vtrack.tracking", "vtrack.zoo")) == []


def test_the_rule_catches_a_function_level_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from vtrack.eval.runner import run_tracker\n    import vtrack.data\n")
    assert [n for _, n in _imports(bad)] == ["vtrack.eval.runner", "vtrack.data"]


def test_the_cli_reaches_the_models_only_through_the_registry():
    cli = ROOT / "cli.py"
    names = [n for _, n in _imports(cli) if _within(n, ("vtrack.models",))]
    assert names and set(names) <= {"vtrack.models.registry"}, names
    # nor by a module name in its command table (a family's commands come from TrackerFamily.commands())
    strings = [n.value for n in ast.walk(ast.parse(cli.read_text())) if isinstance(n, ast.Constant)
               and isinstance(n.value, str) and n.value.startswith("vtrack.models")]
    assert strings == []
