"""The house rules of docs/development.md, read from the source: no import cycles (deferred and
type-checking imports included), and no import upward or sideways between layers."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from probe.plugins import CHECK_TYPES, NOTIFIER_TYPES

PACKAGE = Path(__file__).resolve().parent.parent / "probe"

# (importer prefix, imported prefix, why): a module matches a prefix when it is the
# prefix or lies under it.
FORBIDDEN = (
    *(
        ("probe.contract", spec.partition(":")[0], "the contract imports no plugin")
        for spec in [*CHECK_TYPES.values(), *NOTIFIER_TYPES.values()]
    ),
    ("probe.metrics", "probe.checks", "metrics reads only the store and what plugins declare"),
    ("probe.alerts", "probe.checks", "alerts know nothing of check types"),
    ("probe.contract", "probe.checks", "the contract imports no check module"),
    ("probe.plugins", "probe.checks", "registries name their plugins, they do not import them"),
    ("probe.plugins", "probe.alerts", "registries name their plugins, they do not import them"),
    ("probe.model", "probe.contract", "the model is below the contract"),
    ("probe.units", "probe.model", "units are below the model"),
    *(
        (below, "probe.web", "the web reads the engine; nothing under it reads the web")
        for below in ("probe.checks", "probe.history", "probe.alerts", "probe.store")
    ),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> Iterator[str]:
    """Every probe module `path` imports, at any depth of the file."""
    tree = ast.parse(path.read_text(), str(path))
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from probe.checks import cgroup` imports a module, not a name.
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    yield submodule
                elif base in known:
                    yield base


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(path, known)) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_graph_is_read_from_real_imports() -> None:
    edges = graph()
    # If the parser stopped seeing imports, the two tests below would pass vacuously.
    assert "probe.contract" in edges["probe.checks.postgres"]
    assert "probe.checks.cgroup" in edges["probe.checks.system"]
    assert "probe.config.loader" in edges["probe.config"]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_forbidden_imports() -> None:
    broken = [
        f"{importer} imports {imported}: {why}"
        for importer, targets in sorted(graph().items())
        for imported in sorted(targets)
        for source, target, why in FORBIDDEN
        if under(importer, source) and under(imported, target)
    ]
    assert broken == [], "\n".join(broken)


def test_every_plugin_is_one_module_that_the_registry_names() -> None:
    # Registered names never hold a hyphen, so tests can use `no-such-type` for a type
    # that can never exist.
    for name in [*CHECK_TYPES, *NOTIFIER_TYPES]:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), f"registry name {name!r}"
    found = modules()
    for spec in [*CHECK_TYPES.values(), *NOTIFIER_TYPES.values()]:
        module, _, cls = spec.partition(":")
        assert module in found, f"{spec}: no module {module}"
        source = found[module].read_text()
        assert f"class {cls}(" in source, f"{spec}: no class {cls} in {found[module]}"


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/ helper modules (tests/support.py and its kin): a test
    module imported by another runs its tests' fixtures and names in both."""
    tests = Path(__file__).resolve().parent
    found = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [f"{path.name} imports {n}" for n in names if n.startswith("tests.test_")]
    assert found == [], "\n".join(found)
