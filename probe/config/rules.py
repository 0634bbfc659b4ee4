"""Rules that span entries: unique names, references to checks that exist, linking.

Each returns problem lines (`key.path: what`) rather than raising, so that every problem
of a file is reported in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator

from probe.config.schema import AlertsConfig, walk
from probe.contract import CheckConfig


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
    return problems


def linked(checks: list[CheckConfig]) -> list[CheckConfig]:
    """Each top-level check as `CheckConfig.linked` sees it beside every other check."""
    everything = list(walk(checks))
    return [check.linked(everything) for check in checks]
