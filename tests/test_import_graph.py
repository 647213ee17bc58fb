"""No import circles in `liif_cli`, and no module using another's private names. The graph is built from the
source with `ast`, every import at any depth
(inside functions too, where the lazy imports are), except those under `if TYPE_CHECKING:`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "liif_cli"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _from_target(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a `from X import ...` in module `name` reads from, relative levels resolved."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        deps: set[str] = set()

        def visit(node: ast.AST, name=name, is_package=is_package, deps=deps) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for other in child.orelse:
                        visit(ast.Module(body=[other], type_ignores=[]))
                    continue
                if isinstance(child, ast.Import):
                    deps.update(a.name for a in child.names)
                elif isinstance(child, ast.ImportFrom):
                    target = _from_target(name, is_package, child)
                    for alias in child.names:  # `from . import x` imports the module x when there is one
                        full = f"{target}.{alias.name}"
                        deps.add(full if full in modules else target)
                visit(child)

        visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_graph_sees_imports_at_any_depth_but_not_type_checking_ones():
    graph = import_graph()
    assert "liif_cli.api" in graph["liif_cli.cli.plan"]  # imported inside a function
    assert "liif_cli.encoding" in graph["liif_cli.api"]
    assert "liif_cli.api" not in graph["liif_cli.encoding"]  # only under TYPE_CHECKING
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_liif_cli_has_no_import_circles():
    assert circles(import_graph()) == []


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports() -> list[str]:
    """`from <a liif_cli module> import _name`, and `module._name` on a liif_cli module imported by name:
    a private name used outside the module that defines it."""
    modules = _modules()
    found = []
    for name, (path, is_package) in sorted(modules.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound: set[str] = set()  # names this module binds to liif_cli modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _from_target(name, is_package, node)
                if target not in modules:
                    continue
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {target}")
                    elif f"{target}.{alias.name}" in modules:
                        bound.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                bound.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("liif_cli"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
                if _private(node.attr):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    assert private_imports() == []


def test_the_private_name_check_sees_both_forms(tmp_path, monkeypatch):
    package = tmp_path / "liif_cli"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("_hidden = 1\n__version__ = '1'\n")
    (package / "sub" / "b.py").write_text("from .a import _hidden, __version__\nfrom PIL import _imaging\n")
    (package / "c.py").write_text("from .sub import a\n\ndef f():\n    return a._hidden\n")
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "ROOT", tmp_path)
    monkeypatch.setattr(here, "PACKAGE", package)
    assert private_imports() == [
        "liif_cli/c.py:4 uses a._hidden",
        "liif_cli/sub/b.py:1 imports _hidden from liif_cli.sub.a",
    ]
