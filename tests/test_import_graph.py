"""Imports in zoo/ flow one way: no cycle between core modules (imports inside functions count), no
plugin package imported by the core, and no module of `zoo` hidden behind a function of its name."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "zoo"


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every zoo module `name` imports, at any depth of its code (`from zoo.x import y` counts
    zoo.x.y when that is a module, else zoo.x)."""
    def module_of(dotted: str) -> str:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {module_of(a.name) for a in node.names if a.name.split(".")[0] == "zoo"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "zoo":
                found |= {module_of(f"{base}.{a.name}") if f"{base}.{a.name}" in known else module_of(base) for a in node.names}
    return found - {name, ""}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_core_modules_import_each_other_one_way():
    found = [sorted(c) for c in cycles(graph())]
    assert found == [], f"import cycles in zoo/ (a shared piece belongs in a module below both): {found}"


def test_a_cycle_added_by_hand_is_caught():
    edges = graph()
    edges["zoo.errors"] = edges["zoo.errors"] | {"zoo.loading"}  # errors <- heads <- loading
    assert any({"zoo.errors", "zoo.loading"} <= c for c in cycles(edges))


def test_the_core_imports_no_plugin_package():
    offenders = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{name} imports {t}" for t in targets if t.split(".")[0].startswith("zoo_")]
    assert offenders == []


def _shadowed() -> list[str]:
    import zoo

    names = [m.name for m in pkgutil.iter_modules([str(ROOT)])]
    shadowed = []
    for name in names:
        module = importlib.import_module(f"zoo.{name}")
        if getattr(zoo, name) is not module:
            shadowed.append(name)
    return shadowed


def test_no_module_of_zoo_is_shadowed_by_a_function():
    assert _shadowed() == []
