"""The house rules of docs/development.md, read from the source: no import cycles (deferred
and type-checking imports included), every module in a layer, and no import up the layers
or sideways between the folders of one layer."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from probe.contract.plugins import CHECK_TYPES, NOTIFIER_TYPES

PACKAGE = Path(__file__).resolve().parent.parent / "probe"

# Bottom to top. A module may import its own layer and the layers below it, never one
# above: values and words at the ground; what a plugin is; the plugins; the engine that
# runs, stores and judges; the faces on top. `probe` itself (its version) is ground.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("probe.core",)),
    ("contract", ("probe.contract",)),
    ("plugins", ("probe.checks", "probe.notifiers")),
    ("engine", ("probe.engine",)),
    ("faces", ("probe.web", "probe.cli", "probe.agent", "probe.__main__")),
)

# Within a layer, (importer prefix, imported prefix, why).
FORBIDDEN = (
    ("probe.checks", "probe.notifiers", "check types know nothing of notifiers"),
    ("probe.notifiers", "probe.checks", "notifiers know nothing of check types"),
    *(
        ("probe.contract.plugins", spec.partition(":")[0], "registries name plugins, not import")
        for spec in [*CHECK_TYPES.values(), *NOTIFIER_TYPES.values()]
    ),
    ("probe.engine.metrics", "probe.checks", "metrics reads only what plugins declare"),
    ("probe.engine.alerts", "probe.checks", "alerts know nothing of check types"),
    *(
        ("probe.engine", spec.partition(":")[0], "the engine builds notifiers by the registry")
        for spec in NOTIFIER_TYPES.values()
    ),
    ("probe.core.model", "probe.core.fields", "the model is below the config's value types"),
    ("probe.core.units", "probe.core.model", "units are below the model"),
    ("probe.web", "probe.cli", "the web and the CLI are two faces of one engine"),
    ("probe.web", "probe.agent", "the agent builds the web, not the other way round"),
    ("probe.agent", "probe.cli", "the CLI starts the agent, not the other way round"),
)


def layer_of(module: str) -> int | None:
    if module == "probe":
        return 0
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(under(module, prefix) for prefix in prefixes):
            return index
    return None


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import that points up the layers, as `importer (layer) -> imported (layer)`."""
    names = [name for name, _ in LAYERS]
    found = []
    for importer, targets in sorted(edges.items()):
        for imported in sorted(targets):
            low, high = layer_of(importer), layer_of(imported)
            if low is not None and high is not None and high > low:
                found.append(f"{importer} ({names[low]}) -> {imported} ({names[high]})")
    return found


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
    assert "probe.contract.plugin" in edges["probe.checks.postgres"]
    assert "probe.checks.cgroup" in edges["probe.checks.system"]
    assert "probe.contract.config.loader" in edges["probe.contract.config"]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_module_is_in_a_layer() -> None:
    lost = sorted(name for name in graph() if layer_of(name) is None)
    assert lost == [], "modules in no layer (add their folder to LAYERS): " + ", ".join(lost)


def test_no_import_points_up_the_layers() -> None:
    found = upward(graph())
    assert found == [], "imports up the layers:\n" + "\n".join(found)


def test_the_layer_check_sees_an_upward_import() -> None:
    edges = {"probe.core.units": {"probe.engine.store"}, "probe.web.routes": {"probe.core.units"}}
    assert upward(edges) == ["probe.core.units (ground) -> probe.engine.store (engine)"]


def test_no_forbidden_imports() -> None:
    broken = [
        f"{importer} imports {imported}: {why}"
        for importer, targets in sorted(graph().items())
        for imported in sorted(targets)
        for source, target, why in FORBIDDEN
        if under(importer, source) and under(imported, target)
    ]
    assert broken == [], "\n".join(broken)


def test_every_folder_says_what_lives_there_and_what_it_may_import() -> None:
    """A package's docstring is the folder's sign: one paragraph, naming its imports."""
    unsigned = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if len(doc.split()) < 25 or "import" not in doc:
            unsigned.append(init.parent.relative_to(PACKAGE.parent).as_posix())
    assert unsigned == [], "folders without a sign: " + ", ".join(unsigned)


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
