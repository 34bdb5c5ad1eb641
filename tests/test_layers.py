"""The house's layering: no import circles among the engine's and the plugins' modules, and the
import-linter contracts of pyproject.toml (the engine imports no plugin; its spine runs one way) hold.
CI also runs `lint-imports` on its own (.ci/run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return circles


def test_no_import_circles() -> None:
    """No module of harness/, students/ or teachers/ imports itself back through others (imports under
    TYPE_CHECKING aside: they never run)."""
    graph = grimp.build_graph("harness", "students", "teachers", exclude_type_checking_imports=True)
    assert "harness.engine.stages" in graph.modules and graph.find_modules_directly_imported_by("harness.engine.stages")
    assert import_circles(graph) == []


def test_a_circle_is_found() -> None:
    """The check can fail: a graph with a circle has it named."""
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert import_circles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_layering_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts are kept."""
    proc = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
