"""What may import what (docs/design.md, "What may import what"), checked on the source.

The model packages (``vtrack/models``) build networks, criteria and trackers from configs; they may
import ``vtrack.kernels``, ``vtrack.tracking``, ``vtrack.config``, ``vtrack.io`` and each other,
and ``vtrack.train.losses`` (loss functions shared with training). They never import the training
engine, the data or evaluation layers, benchmarks or experiments: those are built on top of the
models (``vtrack.experiments`` runs ablations and searches through ``vtrack.train`` and
``vtrack.eval``). Every import counts, also one inside a function.
"""
import ast
from pathlib import Path

import vtrack

ROOT = Path(vtrack.__file__).resolve().parent
FORBIDDEN_IN_MODELS = ("vtrack.eval", "vtrack.data", "vtrack.train", "vtrack.bench", "vtrack.experiments",
                       "vtrack.demo", "vtrack.cli", "vtrack.zoo")
ALLOWED = ("vtrack.train.losses",)
# lower layers never import upper ones either (a package's ``commands.py``, its `vtrack` CLI entry,
# belongs to the application layer and may)
FORBIDDEN = {
    "kernels": ("vtrack.models", "vtrack.tracking", "vtrack.train", "vtrack.eval", "vtrack.data", "vtrack.bench",
                "vtrack.experiments"),
    "tracking": ("vtrack.train", "vtrack.eval", "vtrack.bench", "vtrack.experiments"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "vtrack"]
    return out


def _violations(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name == "commands.py" and package != "models":
            continue
        for line, name in _imports(path):
            hit = any(name == f or name.startswith(f + ".") for f in forbidden)
            if hit and not any(name == a or name.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {name}")
    return bad


def test_models_import_only_layers_kernels_tracking_and_config():
    assert _violations("models", FORBIDDEN_IN_MODELS, ALLOWED) == []


def test_kernels_and_tracking_do_not_import_upper_layers():
    for package, forbidden in FORBIDDEN.items():
        assert _violations(package, forbidden) == [], package


def test_the_rule_catches_a_function_level_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from vtrack.eval.runner import run_tracker\n    import vtrack.data\n")
    assert [n for _, n in _imports(bad)] == ["vtrack.eval.runner", "vtrack.data"]
