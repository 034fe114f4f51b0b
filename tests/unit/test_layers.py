"""The package's shape, checked from its source: layers only point down.

- No import cycle between pgqueue's modules, lazy imports (inside functions)
  included; imports under ``if TYPE_CHECKING:`` are for type checkers only.
- Only entry points import the worker: the CLI, the testing helpers, the
  integrations, and the worker itself. A producer (App, Task, eager mode,
  results) never does.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pgqueue"
ENTRY_POINTS = ("pgqueue.cli", "pgqueue.testing", "pgqueue.pytest_plugin", "pgqueue.contrib.",
                "pgqueue.worker", "pgqueue.demo")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, known: set[str]) -> set[str]:
    """Modules of the package this file imports at run time (lazily or not)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_no_import_cycle_in_the_package() -> None:
    cycle = _cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_only_entry_points_import_the_worker() -> None:
    offenders = {name: sorted(m for m in deps if m.startswith("pgqueue.worker"))
                 for name, deps in graph().items()
                 if not name.startswith(ENTRY_POINTS)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_cycles_and_lazy_imports() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    app = graph()["pgqueue.app"]
    assert "pgqueue.task" in app and "pgqueue.worker" not in app
