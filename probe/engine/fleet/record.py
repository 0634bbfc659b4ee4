"""The alert record: for each alert key, what the fleet last told people, and its resolve.

Every replica runs the alert engine on its own results; the record decides which of the
leader's due alerts go out, so a new leader neither repeats what the old one sent nor
forgets a resolve it owed. Plain values and pure functions; the leader keeps a copy in
memory and writes changes through to the lease store (fenced by the lease).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from probe.contract.notification import Alert, Kind, Severity

REMINDER_SLACK = 0.9  # a new leader's engine may count `repeat` from a later start


@dataclass(frozen=True, slots=True)
class Entry:
    check: str
    component: str
    measure: str
    severity: Severity
    summary: str
    since: float
    fired_at: float
    notified_at: float
    resolved_at: float | None = None  # None while firing

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        resolved = data.get("resolved_at")
        return cls(
            check=str(data["check"]),
            component=str(data["component"]),
            measure=str(data["measure"]),
            severity=Severity(data["severity"]),
            summary=str(data["summary"]),
            since=float(data["since"]),
            fired_at=float(data["fired_at"]),
            notified_at=float(data["notified_at"]),
            resolved_at=None if resolved is None else float(resolved),
        )

    def resolve_alert(self, now: float) -> Alert:
        """The resolve a dead leader owed, told in the words it fired with."""
        return Alert(
            check=self.check,
            component=self.component,
            severity=self.severity,
            kind=Kind.RESOLVED,
            summary=self.summary,
            since=self.since,
            at=now,
            fired_at=self.fired_at,
            measure=self.measure,
        )


def record_key(check: str, component: str, measure: str) -> str:
    # The unit separator: not in any name a config would hold, and PostgreSQL text takes
    # it (it refuses NUL).
    return "\x1f".join((check, component, measure))


def key_of(alert: Alert) -> str:
    return record_key(alert.check, alert.component, alert.measure)


def decide(entry: Entry | None, alert: Alert, repeat: float, now: float) -> Alert | None:
    """The alert to send given what the fleet already said (None: nothing to send)."""
    if alert.kind is Kind.RESOLVED:
        return alert if entry is not None and entry.open else None
    closed_at = entry.resolved_at if entry is not None else None
    if closed_at is not None and alert.since <= closed_at:
        return None  # an episode the fleet already closed, seen late by this engine
    if entry is None or not entry.open:
        # Never told (a reminder or escalation of an alert the old leader never sent
        # is news): fire it.
        return dataclasses.replace(alert, kind=Kind.FIRING, previous_severity=None)
    if alert.severity.rank > entry.severity.rank:
        return dataclasses.replace(alert, kind=Kind.ESCALATED, previous_severity=entry.severity)
    if alert.kind is Kind.REMINDER and repeat > 0:
        return alert if now - entry.notified_at >= repeat * REMINDER_SLACK else None
    return None


def apply(entry: Entry | None, sent: Alert, now: float) -> Entry:
    """The entry after `sent` went out."""
    if sent.kind is Kind.RESOLVED:
        base = entry or _entry_of(sent, now)
        return dataclasses.replace(base, resolved_at=sent.at)
    return _entry_of(sent, now)


def _entry_of(alert: Alert, now: float) -> Entry:
    return Entry(
        check=alert.check,
        component=alert.component,
        measure=alert.measure,
        severity=alert.severity,
        summary=alert.summary,
        since=alert.since,
        fired_at=alert.fired_at or alert.at,
        notified_at=now,
    )
