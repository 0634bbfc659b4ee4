"""Default limits and how a user's `warn:` / `fail:` merge with them.

Every check type declares the limits of states that are bad wherever it runs (a scheduler
overdue, lost events, a Redis that evicts BullMQ's keys) next to its measures; a user's
limits go over them measure by measure, and only `off` switches a default off.

Pure: imports nothing of probe but units, so the contract and every plugin can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from probe.core.units import DEFAULT_SOURCE, Limit, parse_limit

LimitMap = Mapping[str, Limit]


def defaults(raw: Mapping[str, object]) -> dict[str, Limit]:
    """Default limits written as a user writes them (`5m`, `<1`, `50%`, `0`)."""
    return {
        measure: replace(parse_limit(value), source=DEFAULT_SOURCE)
        for measure, value in raw.items()
    }


def merge(
    warn: LimitMap, fail: LimitMap, default_warn: LimitMap, default_fail: LimitMap
) -> tuple[dict[str, Limit], dict[str, Limit]]:
    """The user's limits over the defaults, level by level; `off` entries are dropped.

    A limit the user sets (or switches `off`) replaces the default of the same measure
    and level. A default of the other level stays only while it still makes sense beside
    the user's limit: the default `fail` is dropped when it is not beyond the user's
    `warn` (`warn: {lock_waiters: 50}` must not fail at 20), and the default `warn` is
    dropped when the user's `fail` is not beyond it (it could never show). A user's limit
    pointing the other way (`<` where the default has none) drops both defaults of that
    measure.
    """
    merged_warn, merged_fail = dict(warn), dict(fail)
    for measure, limit in default_fail.items():
        mine = warn.get(measure)
        if measure not in fail and (mine is None or mine.off or _beyond(limit, mine)):
            merged_fail[measure] = limit
    for measure, limit in default_warn.items():
        mine = fail.get(measure)
        if measure not in warn and (mine is None or mine.off or _beyond(mine, limit)):
            merged_warn[measure] = limit
    return _on(merged_warn), _on(merged_fail)


def _on(limits: dict[str, Limit]) -> dict[str, Limit]:
    return {measure: limit for measure, limit in limits.items() if not limit.off}


def _beyond(worse: Limit, better: Limit) -> bool:
    """`worse` lies further on the bad side than `better`, both pointing the same way."""
    if worse.below != better.below:
        return False
    return worse.value < better.value if worse.below else worse.value > better.value


@dataclass(frozen=True, slots=True)
class LimitRow:
    """One effective limit and the config key it came from (`default` for the type's)."""

    component: str
    level: str  # warn or fail
    measure: str
    limit: Limit
    source: str


def rows(
    component: str,
    effective: tuple[LimitMap, LimitMap],
    configured: Mapping[str, tuple[LimitMap, LimitMap]],
) -> list[LimitRow]:
    """Rows for one component's effective (warn, fail) limits. `configured` maps a key
    path (`warn`, `queue_overrides.billing`) to the user's (warn, fail) maps at that path,
    nearest first; a limit found in none of them is a default."""
    found: list[LimitRow] = []
    for level, limits in zip(("warn", "fail"), effective, strict=True):
        for measure, limit in sorted(limits.items()):
            source = limit.source or DEFAULT_SOURCE
            for path, maps in configured.items():
                mine = maps[0 if level == "warn" else 1].get(measure)
                if mine is limit:
                    source = f"{path}{'.' if path else ''}{level}.{measure}"
                    break
            found.append(LimitRow(component, level, measure, limit, source))
    return found
