"""The values that flow from checks to the store, endpoints, metrics and alerts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Unit lives with the formatting it decides; re-exported because it is part of the model.
from probe.core.units import Unit as Unit
from probe.core.units import format_value


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]


_STATUS_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.PASS)


class Health(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class Sample:
    """One raw measured value, as a check reports it (before thresholds are applied).

    `component` is empty for a measure of the check as a whole (its response time),
    and names the part otherwise: a queue name, `memory`, a disk path.
    """

    measure: str
    value: float | None
    unit: Unit = Unit.COUNT
    component: str = ""
    note: str = ""  # says why `value` is None, or adds context ("source: cgroup v1")
    # An unknown value is a warn when a limit is set on the measure: the limit cannot be
    # checked (bullmq `workers` when CLIENT LIST is refused), and silence would read as pass.
    unknown_warns: bool = False
    # The note says why a breached limit was breached (bullmq's top failure reasons), so
    # it is part of the words of a breach, not only of an unknown value.
    note_explains: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """A sample judged against the configured limits."""

    component: str
    measure: str
    value: float | None
    unit: Unit
    status: Status
    threshold: str | None = None  # the breached limit as text, e.g. "> 1,000"
    note: str = ""
    note_explains: bool = False  # see Sample.note_explains
    # The built-in error_rate, the share of failed runs: a consequence of the failures
    # that a failed run's own words name, so alerts fold it into the check's `up`.
    run_share: bool = False

    def describe(self, with_component: bool = True) -> str:
        """`ai-assistant backlog 1,240 > 1,000` style words."""
        # `memory memory 37%` reads as a stutter: a component named after its measure
        # (the system check's `cpu` and `memory`) is said once.
        named = with_component and self.component and self.component != self.measure
        subject = f"{self.component} {self.measure}" if named else self.measure
        shown = format_value(self.value, self.unit) if self.value is not None else "unknown"
        text = f"{subject} {shown}"
        if self.threshold:
            text += f" {self.threshold}"
        if self.note and (self.value is None or (self.threshold and self.note_explains)):
            text += f" ({self.note})"
        return text


def problem_words(observations: tuple[Observation, ...] | list[Observation]) -> list[str]:
    """Words for the non-pass observations, worst first, one clause per component:
    `ai-assistant: backlog 1,240 > 1,000, oldest_waiting_age 7m12s > 5m`."""
    bad = sorted(
        (o for o in observations if o.status is not Status.PASS), key=lambda o: -o.status.rank
    )
    by_component: dict[str, list[Observation]] = {}
    for obs in bad:
        by_component.setdefault(obs.component, []).append(obs)
    words: list[str] = []
    for component, found in by_component.items():
        if component and len(found) > 1:
            words.append(f"{component}: " + ", ".join(o.describe(False) for o in found))
        else:
            words += [o.describe() for o in found]
    return words


@dataclass(frozen=True, slots=True)
class CheckResult:
    status: Status
    response_time: float  # seconds the run took
    output: str  # one line saying why, for non-pass results; may be empty for pass
    observed_at: float  # unix time the run finished
    observations: tuple[Observation, ...] = ()
    members: tuple[tuple[str, CheckResult], ...] = field(default=())  # group members, in order
