"""What the engine hands to notifiers: alert snapshots grouped into notifications.

Plain values with no I/O, plus the words every notifier shares, so Slack, Alertmanager
and `probe alert-test` describe an alert the same way.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter

from probe.core.model import Status
from probe.core.times import readable_utc
from probe.core.units import format_duration


class Severity(enum.StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 1 if self is Severity.WARNING else 2

    @classmethod
    def of(cls, status: Status) -> Severity:
        return cls.CRITICAL if status is Status.FAIL else cls.WARNING


# What became of a notification handed to a notifier: counted per notifier, logged, and
# the `result` label of probe_notifications_total.
NOTIFICATION_RESULTS = ("sent", "failed", "dropped")


class Kind(enum.StrEnum):
    """Why a notification about an alert goes out."""

    FIRING = "firing"
    ESCALATED = "escalated"  # was warning, is now critical
    REMINDER = "reminder"  # still firing after `repeat`
    RESOLVED = "resolved"
    TEST = "test"  # `probe alert-test`


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert key as it stood when the notification became due."""

    check: str
    component: str
    severity: Severity
    kind: Kind
    summary: str  # `ai-assistant backlog 1,240 > 1,000`, or the check's failure words
    since: float  # unix time the problem began (first non-pass result)
    at: float  # unix time of this event: fired, escalated, reminded or resolved
    fired_at: float = 0.0  # unix time it first fired (Alertmanager `startsAt`)
    previous_severity: Severity | None = None  # set on escalation
    measure: str = ""  # what is judged: `backlog`, `workers`; `up` when the check cannot run
    # Set when this alert took over from a cause of the same component that just ended
    # (workers back, backlog high): that cause's words and measure.
    previous_summary: str = ""
    previous_measure: str = ""
    held: bool = False  # kept back by quiet hours; goes out in the digest at the window's end

    @property
    def key(self) -> str:
        return alert_key(self.check, self.component)

    @property
    def lasted(self) -> float:
        return max(0.0, self.at - self.since)

    def replaces(self, other: Alert) -> bool:
        """Whether this alert took over from `other`, the resolve of its previous cause."""
        return (
            bool(self.previous_summary)
            and other.kind is Kind.RESOLVED
            and (other.check, other.component, other.measure)
            == (self.check, self.component, self.previous_measure)
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """One message per notifier: every alert that became due within `group_wait`."""

    agent: str
    created: float  # unix time it became due; `max_delivery_age` counts from here
    alerts: tuple[Alert, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        # The enums are StrEnums, so this is JSON as it stands; alerts come out as dicts.
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Notification:
        """What `to_dict` wrote, read back by the fields' own types (alerts included)."""
        return _notification().validate_python(data)


@functools.cache
def _notification() -> TypeAdapter[Notification]:
    # Built on first use: only a restart with queued deliveries reads one back, and the
    # schema is memory every agent would otherwise hold from its start (issue 28).
    return TypeAdapter(Notification)


def alert_key(check: str, component: str) -> str:
    """`queues/ai-assistant`, `system/memory`, `database`."""
    return f"{check}/{component}" if component else check


def status_word(alert: Alert) -> str:
    """`CRITICAL`, `WARNING`, `RESOLVED`, `TEST`."""
    if alert.kind is Kind.RESOLVED:
        return "RESOLVED"
    if alert.kind is Kind.TEST:
        return "TEST"
    return alert.severity.value.upper()


def event_words(alert: Alert) -> str:
    """When it began and, depending on the event, what changed or how long it lasted."""
    since = readable_utc(alert.since)
    quiet = ", held during quiet hours" if alert.held else ""
    if alert.kind is Kind.RESOLVED:
        return f"lasted {format_duration(alert.lasted)} (since {since}){quiet}"
    if alert.previous_summary:
        return f"cause changed, was: {alert.previous_summary}, now ended; since {since}{quiet}"
    if alert.kind is Kind.ESCALATED:
        was = alert.previous_severity.value if alert.previous_severity else "warning"
        return f"escalated from {was}, since {since}{quiet}"
    if alert.kind is Kind.REMINDER:
        return f"still firing after {format_duration(alert.lasted)}, since {since}{quiet}"
    if alert.kind is Kind.TEST:
        return f"sent at {readable_utc(alert.at)}"
    return f"since {since}{quiet}"


def alert_line(alert: Alert) -> str:
    """`CRITICAL queues/ai-assistant: ai-assistant backlog 1,240 > 1,000 (since ...)`."""
    return f"{status_word(alert)} {alert.key}: {alert.summary} ({event_words(alert)})"


def shown(notification: Notification) -> list[Alert]:
    """The alerts a person reads, open ones first: the resolve of a cause that another one
    took over is said on the new cause's line ("cause changed, was: ..."), not on its own."""
    alerts = notification.alerts
    kept = [a for a in alerts if not any(b.replaces(a) for b in alerts)]
    # What still needs someone first; what is over after.
    return sorted(kept, key=lambda a: a.kind is Kind.RESOLVED)


def headline(notification: Notification) -> str:
    """`botflow-probe: 2 critical, 1 resolved`; a quiet-hours digest says it is one."""
    alerts = shown(notification)
    counts: dict[str, int] = {}
    for alert in alerts:
        word = status_word(alert).lower()
        counts[word] = counts.get(word, 0) + 1
    order = ("critical", "warning", "resolved", "test")
    parts = [f"{counts[w]} {w}" for w in order if w in counts]
    changed = sum(1 for a in alerts if a.previous_summary)
    if changed:
        parts.append(f"{changed} cause changed" if changed == 1 else f"{changed} causes changed")
    digest = "quiet hours digest: " if alerts and all(a.held for a in alerts) else ""
    return f"{notification.agent}: {digest}{', '.join(parts) or 'no alerts'}"


def plain_text(notification: Notification) -> str:
    """The whole notification as plain lines (Slack `text`, logs)."""
    lines = [f"[{headline(notification)}]"]
    lines += [alert_line(a) for a in shown(notification)]
    return "\n".join(lines)


def alert_test_notification(agent: str, now: float) -> Notification:
    alert = Alert(
        check="probe",
        component="alert-test",
        severity=Severity.WARNING,
        kind=Kind.TEST,
        summary=f"test notification from {agent}; alerts from this agent will arrive here",
        since=now,
        at=now,
        fired_at=now,
    )
    return Notification(agent=agent, created=now, alerts=(alert,))
