"""The layout's rules (docs/architecture.md): one direction of dependency, no import cycles,
short modules.

Imports are read from the source (``ast``), module-level and function-level alike: a lazy
import inside a function still ties two modules together, and was how ``train.cli`` and the
translation driver once imported each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("functional", "zoo", "train")
MAX_LINES = 620          # "about 600"; a longer module says why in its docstring
WHY_MARKER = "Why one module:"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known) -> set[str]:
    """The project modules ``name`` imports (a package import counts as its __init__)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None. A package's
    ``__init__`` re-exporting its own submodules is no cycle: edges from a package into its
    own submodules are ignored."""
    def edges(m):
        return [d for d in graph.get(m, ()) if not d.startswith(m + ".")]

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in edges(m):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    assert "train.drivers" in graph["train.cli"]
    graph["train.drivers"] = graph["train.drivers"] | {"train.cli"}
    cycle = find_cycle(graph)
    assert cycle is not None and "train.cli" in cycle and cycle[0] == cycle[-1]


@pytest.mark.parametrize("lower, upper", [("functional", "zoo"), ("functional", "train"),
                                          ("zoo", "train")])
def test_dependencies_point_one_way(lower, upper):
    bad = {m: sorted(d for d in deps if d.split(".")[0] == upper)
           for m, deps in import_graph().items() if m.split(".")[0] == lower}
    assert not {m: d for m, d in bad.items() if d}


def test_nothing_imports_the_cli():
    users = [m for m, deps in import_graph().items() if "train.cli" in deps]
    assert users == []


def test_modules_are_short_or_say_why():
    long = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and WHY_MARKER not in doc:
            long.append((name, lines))
    assert long == []
