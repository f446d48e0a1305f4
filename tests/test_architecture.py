"""The layers hold: no import cycle inside ci/ or modelops/ (lazy imports included), and imports point one way."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.support.paths import ROOT

PACKAGES = ("ci", "modelops")


def module_names() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere: at the top, inside functions, except under TYPE_CHECKING."""
    modules = module_names()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        imported = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        graph[name] = {found for dep in imported if (found := owner(dep)) and found != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_ci_or_modelops():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the packages
    assert cycles(graph) == [], "an import cycle: move the shared piece down into a module both import"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_modelops_never_imports_ci_and_notebooks_never_import_ci():
    graph = import_graph()
    assert not [(m, d) for m, deps in graph.items() if m.startswith("modelops") for d in deps if d.startswith("ci")]
    for path in [*ROOT.glob("*/*.ipynb"), *ROOT.glob("notebooks/**/*.ipynb")]:
        if ".venv" in path.parts:
            continue
        sources = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                            if c["cell_type"] == "code")
        assert "import ci" not in sources and "from ci" not in sources, path
