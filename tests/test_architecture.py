"""The import graph points one way: core <- log <- features <- storage <- tracker <- edges.

Read from the source with ``ast``, so a new cycle, a core module reaching up into a
feature package, or a dependency hidden inside a function fails here, not in review.
``docs/explanation/architecture.md`` explains the layers.
"""

from __future__ import annotations

import ast
import inspect
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from salespipeline import _unchecked

SRC = Path(__file__).resolve().parents[1] / "src" / "salespipeline"

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "core",
        frozenset(
            {
                "errors",
                "limits",
                "_currencies",
                "_checks",
                "_durations",
                "_kinds",
                "_unchecked",
                "_history",
                "stages",
                "deal",
                "guards",
                "_engine",
                "pipeline",
                "presets",
                "migration",
                "followups",
            }
        ),
    ),
    ("log", frozenset({"log"})),
    ("features", frozenset({"metrics", "definitions", "scoring"})),
    ("storage", frozenset({"storage"})),
    ("tracker", frozenset({"tracker", "_listeners", "_commands", "_tracking", "_bulk"})),
    ("aio", frozenset({"aio"})),
    ("edges", frozenset({"cli", "testing"})),
    ("entry", frozenset({"__main__"})),
)
INDEPENDENT = frozenset({"features", "edges"})
"""Layers whose pieces never import each other (``metrics`` knows nothing of ``scoring``)."""
RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = ["salespipeline", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def unit(module: str) -> str:
    """The top-level piece a module belongs to: ``salespipeline.storage.sql._x`` -> storage."""
    return module.split(".")[1]


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST, *, local: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement, with whether it sits inside a function; TYPE_CHECKING skipped."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, local
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from imports(node, local=inner)


def targets(node: ast.stmt, importer: str) -> Iterator[str]:
    """The salespipeline modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        assert node.level == 0, f"{importer}: use absolute imports"
        base = node.module or ""
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [n if n in MODULES else base for n in names]
    for name in names:
        if name.startswith("salespipeline.") or name == "salespipeline":
            while name not in MODULES:
                name = name.rsplit(".", 1)[0]
            yield name


def _packages() -> set[str]:
    return {module_name(p) for p in MODULES.values() if p.name == "__init__.py"}


def graph() -> dict[str, set[str]]:
    """Module -> the salespipeline modules it imports at run time (the root package aside)."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if name == "salespipeline":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = {t for node, _ in imports(tree) for t in targets(node, name)}
        edges[name] = {t for t in found if t not in ("salespipeline", name)}
    return edges


def test_every_module_has_a_layer() -> None:
    missing = sorted({unit(m) for m in MODULES if m != "salespipeline"} - set(RANK))
    assert missing == [], f"give these a layer in LAYERS: {missing}"


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1  # on the current path
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2  # done

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_imports_point_down_the_layers() -> None:
    """A module imports its own piece or lower layers, never a higher one or a sibling feature."""
    wrong = []
    for importer, imported in graph().items():
        for target in imported:
            a, b = unit(importer), unit(target)
            sibling = a != b and RANK[a] == RANK[b] and LAYERS[RANK[a]][0] in INDEPENDENT
            if RANK[b] > RANK[a] or sibling:
                wrong.append(f"{importer} -> {target}")
    assert sorted(wrong) == []


def test_no_dependency_hides_inside_a_function() -> None:
    hidden = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, local in imports(tree):
            if local and any(True for _ in targets(node, name)):
                hidden.append(f"{name}:{node.lineno}")
    assert hidden == []


@pytest.mark.parametrize("package", sorted(_packages() - {"salespipeline"}))
def test_each_package_init_only_re_exports(package: str) -> None:
    """A package's ``__init__`` holds its curated names (and ``__all__``), no implementation."""
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    assert defined == []


def test_generated_code_is_visible_to_tracebacks_and_debuggers() -> None:
    """The hot-path copiers are generated; their source is in ``linecache``, not ``<string>``."""
    for function in (_unchecked.replace, _unchecked.after_move, _unchecked.stage_change):
        filename = function.__code__.co_filename
        assert filename.startswith("<salespipeline generated ")
        assert inspect.getsource(function).startswith(f"def {function.__name__}(")
    try:
        _unchecked.replace(object())  # no slots to read: fails inside the generated code
    except AttributeError as error:
        frames = traceback.extract_tb(error.__traceback__)
        assert frames[-1].line is not None and frames[-1].line.startswith("new.")
    else:
        raise AssertionError("replace(object()) should fail")
