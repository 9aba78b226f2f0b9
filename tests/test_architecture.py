"""The shape of the house: no import cycles, array libraries only behind the backend, every module
importable on its own.

The import graph is read from the source (``ast``), so a cycle hidden behind a function-level
import counts as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "xpmlp"
ARRAY_LIBRARIES = {"cupy", "torch", "cupy_backends", "cupyx"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names), at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # "from . import plots"
    return found


def _graph() -> dict[str, set[str]]:
    return {name: {m for m in _imports(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a package's __init__ importing its own modules is not one), else None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its submodules
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walker_finds_a_cycle_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "p": {"p.x"}, "p.x": {"a"}}) is None


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert len(graph) > 20 and "xpmlp.backend" in graph["xpmlp.model"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_only_the_backend_package_imports_an_array_library():
    offenders = {}
    for name, path in MODULES.items():
        libraries = {m.split(".")[0] for m in _imports(name, path)} & ARRAY_LIBRARIES
        if libraries and not name.startswith("xpmlp.backend") and not name.startswith("xpmlp.bench"):
            offenders[name] = sorted(libraries)
    assert offenders == {}


def test_the_math_imports_no_array_library_and_no_numpy():
    math_modules = ["xpmlp.layers", "xpmlp.lbfgs", "xpmlp.losses", "xpmlp.model", "xpmlp.optim", "xpmlp.schedules",
                    "xpmlp.train"]
    for name in math_modules:
        roots = {m.split(".")[0] for m in _imports(name, MODULES[name])}
        assert not roots & (ARRAY_LIBRARIES | {"numpy", "array_api_compat", "array_api_strict"}), name


IMPORT_EACH_ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "xpmlp" or m.startswith("xpmlp.")]:
        del sys.modules[loaded]  # each module starts from an empty xpmlp, as `python -c "import it"` would
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=1).strip().splitlines()[-1])
print("\\n".join(failed))
"""


def test_each_module_imports_on_its_own():
    names = sorted(n for n in MODULES if not n.endswith("__main__"))  # __main__ would run the command
    proc = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, *names], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "", proc.stdout


def test_import_each_alone_reports_a_broken_module(tmp_path):
    (tmp_path / "broken_mod.py").write_text("import no_such_module_here\n")
    proc = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, "broken_mod", "json"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert proc.stdout.startswith("broken_mod: ModuleNotFoundError"), proc.stdout
