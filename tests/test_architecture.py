"""The layers of docs/architecture.md, enforced: every import in btcore, the
plug-in folders and their function bodies is read with ``ast`` (nothing is
imported), and the graph must have no circle, no import from a lower floor to a
higher one, no pandas in kernels, and nothing but the CLI importing the CLI or
``planning``."""
import ast
import collections
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: source folder -> the package it installs as
PACKAGES = {"btcore": "btcore", "executors": "btcore.executors",
            "strategies": "btcore.strategies"}

#: floors, lowest first: a module may import its own floor or lower ones. The
#: longest matching prefix decides a module's floor.
FLOORS = [
    # 0: leaves: names, numbers, checks, pure-numba helpers
    ["btcore._checks", "btcore._expressions", "btcore.metrics", "btcore.indicators",
     "btcore.indicators_extra", "btcore.registry"],
    # 1: kernels (their binding, code keys and cache directories included: kernels/*)
    # and what strategies are made of
    ["btcore.kernels", "btcore.strategies", "btcore.sets",
     "btcore.param_sets", "btcore._dates", "btcore._frames", "btcore._sampling"],
    # 2: engine, executors, inputs, stores, statistics, plots
    ["btcore.engine", "btcore.executors", "btcore.data", "btcore.datasets", "btcore.grid",
     "btcore.settings", "btcore.execution", "btcore.results", "btcore.store", "btcore.stats",
     "btcore.plots", "btcore.benchmark", "btcore.selection", "btcore.stability",
     "btcore.overfitting"],
    # 3: the run template every workflow uses
    ["btcore.workflows.base"],
    # 4: workflows
    ["btcore.workflows", "btcore.workflows.sweep", "btcore.workflows.backtest", "btcore.workflows.walk_forward",
     "btcore.workflows.monte_carlo", "btcore.workflows.portfolio", "btcore.workflows.cross_sectional"],
    # 5: estimates across workflows
    ["btcore.planning"],
    # 6: the user's doors
    ["btcore.cli", "btcore.__main__", "btcore"],
]


def module_files() -> dict:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def imports_of(path: pathlib.Path) -> list:
    """``(imported name, line)`` for every import statement, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def project_edges() -> dict:
    """module -> {imported project module: first line}; a name imported from a
    module resolves to the module (``from btcore.engine import plan`` -> plan)."""
    edges = collections.defaultdict(dict)
    for module, path in MODULES.items():
        for name, line in imports_of(path):
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            # a package's own parents are imported by Python anyway: not an edge
            if name and name != module and not module.startswith(name + "."):
                edges[module].setdefault(name, line)
    return edges


EDGES = project_edges()


def floor_of(module: str) -> int:
    best, floor = "", None
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, floor = prefix, level
    return floor


def circles() -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in EDGES.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    return found


def test_every_module_has_a_floor():
    assert [m for m in MODULES if floor_of(m) is None] == []


def test_no_import_circles():
    assert circles() == []


def test_no_module_imports_a_higher_floor():
    upward = [f"{module} (floor {floor_of(module)}) imports {other} (floor {floor_of(other)}) "
              f"at line {line}"
              for module, targets in EDGES.items() for other, line in targets.items()
              if floor_of(other) > floor_of(module)]
    assert upward == []


def test_only_the_cli_imports_the_cli_or_planning():
    allowed = ("btcore.cli", "btcore.__main__")
    offenders = [f"{module} imports {other}" for module, targets in EDGES.items()
                 for other in targets
                 if (other.startswith("btcore.cli") or other == "btcore.planning")
                 and not module.startswith(allowed) and module != "btcore"]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if m.startswith(("btcore.kernels", "btcore.metrics"))))
def test_kernels_never_import_pandas(module):
    names = {name.partition(".")[0] for name, _ in imports_of(MODULES[module])}
    assert "pandas" not in names


def test_no_module_is_shadowed_by_a_function_of_the_same_name():
    """``btcore.walk_forward`` must be one thing: not a module that the package's
    re-export of a function of the same name hides."""
    import btcore
    shadowed = [name for name in dir(btcore) if f"btcore.{name}" in MODULES
                and callable(getattr(btcore, name)) and not isinstance(getattr(btcore, name),
                                                                       type(btcore))]
    assert shadowed == []


def test_no_module_is_over_500_lines():
    long = {module: n for module, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}
