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
                # `from modelops import atomic` imports the module modelops.atomic (and runs the package's
                # __init__, as every import of a submodule does: that is not an edge to the facade).
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                imported |= submodules if len(submodules) == len(node.names) else {node.module, *submodules}
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


#: modelops' layers, lowest first: a module may import from its own layer and the layers below it, never above.
#: A module belongs to the longest entry it falls under ("modelops.backends" alone is the chooser, get_backend,
#: whose builders import the implementations lazily by name).
LAYERS = (
    ("modelops.errors", "modelops.atomic", "modelops.settings", "modelops.metrics", "modelops.container"),
    ("modelops.scores", "modelops.config"),
    ("modelops.entities", "modelops.records"),
    ("modelops.backends", "modelops.backends.base", "modelops.backends.invoke"),
    ("modelops.data",),
    ("modelops.training",),
    ("modelops.review",),
    ("modelops.serving",),
    ("modelops.release",),
    ("modelops.monitoring",),
    ("modelops.backends.local", "modelops.backends.sagemaker"),
    ("modelops.notebook",),
    ("modelops",),  # the facade the notebooks import
)


def layer_of(module: str) -> int:
    ranks = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
    unit = max((u for u in ranks if module == u or module.startswith(u + ".")), key=len)
    return ranks[unit]


def test_modelops_imports_point_down_its_layers():
    """release -> review -> training -> data, and everything above the shared records, config and errors."""
    graph = import_graph()
    upward = sorted(f"{module} imports {dep}" for module, deps in graph.items() if module.startswith("modelops")
                    for dep in deps if dep.startswith("modelops") and layer_of(dep) > layer_of(module))
    assert upward == [], "an import that points up the layers: move the shared piece down (LAYERS says the order)"


def test_every_modelops_module_is_in_a_layer_and_the_check_catches_an_upward_import():
    assert {layer_of(m) for m in import_graph() if m.startswith("modelops")} >= set(range(len(LAYERS) - 1))
    assert layer_of("modelops.data.prepare") < layer_of("modelops.training.train") < layer_of("modelops.review.verdict")
    assert layer_of("modelops.review.verdict") < layer_of("modelops.release.deploy")
    assert layer_of("modelops.backends.base") < layer_of("modelops.data.datasets") < layer_of("modelops.backends.local")


def test_the_top_level_holds_few_modules_and_none_is_long():
    top = [p for p in (ROOT / "modelops").glob("*.py")]
    assert len(top) <= 10, sorted(p.name for p in top)
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}, "a module over 600 lines: split it along its own sections"


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
