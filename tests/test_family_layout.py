"""Every tracker family package has the file layout of docs/design.md ("Tracker families"):
``__init__.py`` (re-exports only), ``family.py`` (the registered class), ``config.py`` (the
section dataclasses), ``model.py``, ``criterion.py``, ``tracker.py`` and ``branches.py``."""
import ast
import importlib
from pathlib import Path

from vtrack.models import registry

FILES = ("__init__.py", "family.py", "config.py", "model.py", "criterion.py", "tracker.py", "branches.py")


def _package(name: str) -> str:
    module = type(registry.get_family(name)).__module__
    assert module.endswith(".family"), f"{name}: family class defined in {module}, expected <package>.family"
    return module.rsplit(".", 1)[0]


def test_every_family_package_has_the_contract_files():
    for name in registry.list_families():
        pkg = _package(name)
        folder = Path(importlib.import_module(pkg).__file__).parent
        assert [f for f in FILES if not (folder / f).is_file()] == [], pkg
        # the package's __init__ only re-exports: every definition lives in a named module
        tree = ast.parse((folder / "__init__.py").read_text())
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert defs == [], f"{pkg}/__init__.py defines {defs}"


def test_the_model_section_dataclass_lives_in_config():
    for name in registry.list_families():
        parsed = registry.get_family(name).parse_model({"name": name})
        assert type(parsed).__module__ == f"{_package(name)}.config", name
