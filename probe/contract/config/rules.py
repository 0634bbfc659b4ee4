"""Rules that span entries: unique names, references to checks that exist, linking.

Each returns problem lines (`key.path: what`) rather than raising, so that every problem
of a file is reported in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase

from probe.contract.config.schema import AlertsConfig, walk
from probe.contract.plugin import CheckConfig, is_glob
from probe.core.maintenance import WindowConfig


def walk_with_paths(checks: list[CheckConfig], path: str) -> Iterator[tuple[str, CheckConfig]]:
    for i, check in enumerate(checks):
        here = f"{path}[{i}]"
        yield here, check
        yield from walk_with_paths(check.members(), f"{here}.checks")


def unique_names(checks: list[CheckConfig], problems: list[str]) -> dict[str, str]:
    """name -> key path of every check; a second use of a name is a problem."""
    seen: dict[str, str] = {}
    for path, check in walk_with_paths(checks, "checks"):
        if check.name in seen:
            problems.append(
                f"{path}.name: duplicate check name {check.name!r} (also {seen[check.name]})"
            )
        else:
            seen[check.name] = path
    return seen


def unknown_check_references(alerts: AlertsConfig, known: dict[str, str]) -> list[str]:
    problems = [
        f"alerts.overrides.{key}: no check named {key!r}"
        for key in alerts.overrides
        if key not in known
    ]
    for i, silence in enumerate(alerts.silences):
        problems += [
            f"alerts.silences[{i}].checks: no check named {name!r}"
            for name in silence.checks
            if name not in known
        ]
    for i, notifier in enumerate(alerts.notifiers):
        for key in ("checks", "exclude_checks"):
            problems += [
                f"alerts.notifiers[{i}].{key}: {_no_such_check(pattern)}"
                for pattern in getattr(notifier, key)
                if not any(fnmatchcase(name, pattern) for name in known)
            ]
    return problems


def _no_such_check(pattern: str) -> str:
    return f"no check matches {pattern!r}" if is_glob(pattern) else f"no check named {pattern!r}"


def unknown_window_checks(windows: list[WindowConfig], known: dict[str, str]) -> list[str]:
    return [
        f"maintenance[{i}].checks: no check named {name!r}"
        for i, window in enumerate(windows)
        for name in window.checks
        if name not in known
    ]


def linked(checks: list[CheckConfig]) -> list[CheckConfig]:
    """Each top-level check as `CheckConfig.linked` sees it beside every other check."""
    everything = list(walk(checks))
    return [check.linked(everything) for check in checks]


def named_check_problems(checks: list[CheckConfig]) -> list[str]:
    """Each check another one names (`CheckConfig.named_checks`) exists and is of the
    type that key needs."""
    by_name = {check.name: check for check in walk(checks)}
    problems: list[str] = []
    for path, check in walk_with_paths(checks, "checks"):
        for key, name, kind in check.named_checks():
            found = by_name.get(name)
            if found is None:
                problems.append(f"{path}.{key}: no check named {name!r}")
            elif kind and found.type != kind:
                problems.append(f"{path}.{key}: {name!r} is a {found.type} check, not {kind}")
    return problems


def dependency_problems(checks: list[CheckConfig], known: dict[str, str]) -> list[str]:
    """`depends_on` names checks that exist, not itself, not its own group or members,
    and no chain of them comes back to where it started."""
    problems: list[str] = []
    graph: dict[str, list[str]] = {}
    for path, check in walk_with_paths(checks, "checks"):
        graph[check.name] = list(check.depends_on)
        if not check.depends_on:
            continue  # the walk below is O(checks): only for the few that depend on one
        related = _ancestors_and_members(checks, check.name)
        for name in check.depends_on:
            where = f"{path}.depends_on"
            if name == check.name:
                problems.append(f"{where}: a check cannot depend on itself")
            elif name not in known:
                problems.append(f"{where}: no check named {name!r}")
            elif name in related:
                problems.append(
                    f"{where}: cannot depend on {name!r}, its own group or member "
                    "(a group fails when a member does)"
                )
    reported: set[frozenset[str]] = set()
    for name, path in known.items():
        if not graph.get(name):
            continue
        cycle = _cycle_from(name, graph)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            problems.append(f"{path}.depends_on: dependency cycle {' -> '.join(cycle)}")
    return problems


def _ancestors_and_members(checks: list[CheckConfig], name: str) -> set[str]:
    related: set[str] = set()

    def visit(entries: list[CheckConfig], above: list[str]) -> None:
        for check in entries:
            if check.name == name:
                related.update(above)
                related.update(c.name for c in walk(check.members()))
            visit(check.members(), [*above, check.name])

    visit(checks, [])
    return related


def _cycle_from(start: str, graph: dict[str, list[str]]) -> list[str]:
    """The names of a cycle through `start` (`a -> b -> a`), or [] when there is none."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for parent in graph.get(node, []):
            if parent == start and len(trail) > 1:
                return [*trail, start]
            if parent != start and parent not in seen:
                seen.add(parent)
                stack.append((parent, [*trail, parent]))
    return []
