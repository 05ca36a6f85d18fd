"""No Python function is longer than 80 lines (its body, the docstring excluded) outside the kernels
(vtrack/kernels: Triton kernel bodies are long by nature): in vtrack, and in a checkout also in the
benchmark scripts and the tests."""
import ast
from pathlib import Path

import vtrack

ROOT = Path(vtrack.__file__).resolve().parent
MAX_LINES = 80
#: The trees checked: the package, and this checkout's benchmarks/ and tests/.
TREES = [ROOT, Path(__file__).resolve().parents[1] / "benchmarks", Path(__file__).resolve().parent]


def body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return fn.end_lineno - body[0].lineno + 1 if body else 0


def long_functions(root: Path = ROOT) -> dict[str, int]:
    """``{"vtrack/x.py:name": lines}`` of every function over :data:`MAX_LINES` outside the kernels."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        if "kernels" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_lines(node) > MAX_LINES:
                out[f"{path.relative_to(root.parent).as_posix()}:{node.name}"] = body_lines(node)
    return out


def test_no_function_over_80_lines():
    assert all(tree.is_dir() for tree in TREES), TREES
    assert {name: n for tree in TREES for name, n in long_functions(tree).items()} == {}


def test_the_check_measures_the_body(tmp_path):
    pkg = tmp_path / "vtrack"
    pkg.mkdir()
    lines = "\n".join(f"    x{i} = {i}" for i in range(81))
    (pkg / "m.py").write_text(f'def long():\n    """doc\n\n    more doc."""\n{lines}\n\n\ndef short():\n    """doc"""\n    return 1\n')
    assert long_functions(pkg) == {"vtrack/m.py:long": 81}
