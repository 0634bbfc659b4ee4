"""The alert state machine: results in, due alert events out. No I/O, no clock of its own.

One state per alert key (check, component): absent (ok) -> pending -> firing -> gone
(resolved). Every method takes `now`, so tests drive time by hand.

What is notified is decided by one reconcile step per firing key, comparing the
severity it has with the severity last notified:
- never notified            -> `firing`    (also when a silence ends over a firing key)
- notified warning, now critical -> `escalated`
- notified and `repeat` elapsed  -> `reminder`
A silence suppresses these three; the key stays un-notified and goes out when the silence
ends. A resolve goes out only for a key that was notified, and is never muted: it closes
something a person has seen.

A firing key's severity only rises: critical falling back to warn stays critical until it
resolves, so Alertmanager never sees the same alert change labels back and forth.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from probe.alerts.notification import Alert, Kind, Severity
from probe.config import AlertsConfig
from probe.model import CheckResult, Observation, Status, problem_words, worst

Key = tuple[str, str]  # (check, component)


class Phase(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class Policy:
    """The alert settings of one check, after `alerts.overrides`."""

    for_warn: float
    for_fail: float
    resolve_after: int
    repeat: float
    enabled: bool


@dataclass(slots=True)
class AlertState:
    check: str
    component: str
    phase: Phase
    severity: Severity  # pending: the worst seen so far; firing: the severity it fires with
    summary: str
    since: float  # first non-pass of this episode
    nonpass_since: float | None  # start of the current unbroken non-pass streak
    fail_since: float | None  # start of the current unbroken fail streak
    passes: int = 0  # consecutive passes while firing
    fired_at: float | None = None
    notified_severity: Severity | None = None
    notified_at: float | None = None

    @property
    def key(self) -> Key:
        return (self.check, self.component)

    def snapshot(self, kind: Kind, now: float, previous: Severity | None = None) -> Alert:
        return Alert(
            check=self.check,
            component=self.component,
            severity=self.severity,
            kind=kind,
            summary=self.summary,
            since=self.since,
            at=now,
            fired_at=self.fired_at if self.fired_at is not None else self.since,
            previous_severity=previous,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        notified = data.get("notified_severity")
        return cls(
            check=str(data["check"]),
            component=str(data.get("component", "")),
            phase=Phase(data["phase"]),
            severity=Severity(data["severity"]),
            summary=str(data.get("summary", "")),
            since=float(data["since"]),
            nonpass_since=_opt_float(data.get("nonpass_since")),
            fail_since=_opt_float(data.get("fail_since")),
            passes=int(data.get("passes", 0)),
            fired_at=_opt_float(data.get("fired_at")),
            notified_severity=Severity(notified) if notified else None,
            notified_at=_opt_float(data.get("notified_at")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    summary: str


def verdicts(result: CheckResult) -> dict[str, Verdict]:
    """component -> what this result says about it.

    Each component is judged by its observations. A failed run that no fail observation
    explains (connection refused, HTTP 503) is put on the check as a whole, component "",
    with the run's output. Group results leave their members' failures to the members.
    """
    by_component: dict[str, list[Observation]] = defaultdict(list)
    for observation in result.observations:
        by_component[observation.component].append(observation)
    found: dict[str, Verdict] = {}
    for component, observations in by_component.items():
        status = worst([o.status for o in observations])
        found[component] = Verdict(status, "; ".join(problem_words(observations)))
    explained = any(o.status is Status.FAIL for o in result.observations)
    if result.status is Status.FAIL and not result.members and not explained:
        found[""] = Verdict(Status.FAIL, result.output or "check failed")
    return found


class AlertEngine:
    def __init__(self, config: AlertsConfig, parents: dict[str, str] | None = None) -> None:
        self.config = config
        self.parents = parents or {}  # group member -> its group, for overrides and silences
        self.states: dict[Key, AlertState] = {}
        # Bumped on every change worth persisting; the service saves when it moves.
        self.version = 0

    # ------------------------------------------------------------ policy

    def policy(self, check: str) -> Policy:
        overrides = self.config.overrides
        override = overrides.get(check) or overrides.get(self.parents.get(check, ""))
        base = self.config
        if override is None:
            return Policy(base.for_.warn, base.for_.fail, base.resolve_after, base.repeat, True)
        return Policy(
            for_warn=_first(override.for_.warn, base.for_.warn),
            for_fail=_first(override.for_.fail, base.for_.fail),
            resolve_after=override.resolve_after or base.resolve_after,
            repeat=_first(override.repeat, base.repeat),
            enabled=override.enabled,
        )

    def muted(self, check: str, now: float) -> bool:
        names = {check, self.parents.get(check, check)}
        return any(
            s.start.timestamp() <= now < s.end.timestamp() and names.intersection(s.checks)
            for s in self.config.silences
        )

    # ------------------------------------------------------------ input

    def observe(self, check: str, result: CheckResult, now: float) -> list[Alert]:
        """Feed one result (members of a group result included); return alerts now due."""
        due: list[Alert] = []
        policy = self.policy(check)
        if policy.enabled:
            seen = verdicts(result)
            for component, verdict in seen.items():
                due += self._apply((check, component), verdict, policy, now)
            if result.status is not Status.FAIL:
                # A component that stopped being reported (a queue removed) counts as passing;
                # after a failed run its absence says nothing.
                missing = [k for k in self.states if k[0] == check and k[1] not in seen]
                for key in missing:
                    due += self._apply(key, Verdict(Status.PASS, ""), policy, now)
        for member, member_result in result.members:
            due += self.observe(member, member_result, now)
        return due

    def tick(self, now: float) -> list[Alert]:
        """Reminders, and firing keys whose silence has ended."""
        due = []
        for state in list(self.states.values()):
            alert = self._reconcile(state, self.policy(state.check), now)
            if alert is not None:
                due.append(alert)
        return due

    def forget_unknown(self, known_checks: Iterable[str], now: float) -> list[Alert]:
        """Drop keys of checks no longer configured; resolve the ones a person was told about."""
        known = set(known_checks)
        due = []
        for key, state in list(self.states.items()):
            if state.check in known:
                continue
            del self.states[key]
            self.version += 1
            if state.notified_severity is not None:
                state.summary = "check removed from the configuration"
                due.append(state.snapshot(Kind.RESOLVED, now))
        return due

    # ------------------------------------------------------------ state machine

    def _apply(self, key: Key, verdict: Verdict, policy: Policy, now: float) -> list[Alert]:
        state = self.states.get(key)
        if verdict.status is Status.PASS:
            return self._passed(state, policy, now) if state is not None else []
        if state is None:
            state = AlertState(
                check=key[0],
                component=key[1],
                phase=Phase.PENDING,
                severity=Severity.of(verdict.status),
                summary=verdict.summary,
                since=now,
                nonpass_since=None,
                fail_since=None,
            )
            self.states[key] = state
            self.version += 1
        self._not_passed(state, verdict, now)
        self._maybe_fire(state, policy, now)
        alert = self._reconcile(state, policy, now)
        return [alert] if alert is not None else []

    def _not_passed(self, state: AlertState, verdict: Verdict, now: float) -> None:
        state.summary = verdict.summary
        if state.passes:
            state.passes = 0
            self.version += 1
        if state.nonpass_since is None:
            state.nonpass_since = now
        if verdict.status is Status.FAIL:
            if state.fail_since is None:
                state.fail_since = now
        else:
            state.fail_since = None
        if state.phase is Phase.PENDING and verdict.status is Status.FAIL:
            state.severity = Severity.CRITICAL

    def _maybe_fire(self, state: AlertState, policy: Policy, now: float) -> None:
        """Pending -> firing, or warning -> critical, once the non-pass lasted `for`."""
        due: Severity | None = None
        if state.fail_since is not None and now - state.fail_since >= policy.for_fail:
            due = Severity.CRITICAL
        elif state.nonpass_since is not None and now - state.nonpass_since >= policy.for_warn:
            due = Severity.WARNING
        if due is None:
            return
        if state.phase is Phase.PENDING:
            state.phase, state.severity, state.fired_at = Phase.FIRING, due, now
            self.version += 1
        elif due.rank > state.severity.rank:
            state.severity = due
            self.version += 1

    def _passed(self, state: AlertState, policy: Policy, now: float) -> list[Alert]:
        if state.phase is Phase.PENDING:
            # Shorter than `for`: a flap, nobody hears of it.
            del self.states[state.key]
            self.version += 1
            return []
        state.passes += 1
        state.nonpass_since = state.fail_since = None
        self.version += 1
        if state.passes < policy.resolve_after:
            return []
        del self.states[state.key]
        if state.notified_severity is None:
            return []  # fired only inside a silence: nothing to close
        return [state.snapshot(Kind.RESOLVED, now)]

    def _reconcile(self, state: AlertState, policy: Policy, now: float) -> Alert | None:
        if state.phase is not Phase.FIRING or self.muted(state.check, now):
            return None
        notified = state.notified_severity
        if notified is None:
            alert = state.snapshot(Kind.FIRING, now)
        elif state.severity.rank > notified.rank:
            alert = state.snapshot(Kind.ESCALATED, now, previous=notified)
        elif policy.repeat > 0 and now - (state.notified_at or now) >= policy.repeat:
            alert = state.snapshot(Kind.REMINDER, now)
        else:
            return None
        state.notified_severity, state.notified_at = state.severity, now
        self.version += 1
        return alert

    # ------------------------------------------------------------ readers

    def firing_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in Severity), 0)
        for state in self.states.values():
            if state.phase is Phase.FIRING:
                counts[state.severity.value] += 1
        return counts

    def active(self, now: float) -> list[Alert]:
        """Firing keys a person was told about and that are not silenced (Alertmanager resend)."""
        return [
            s.snapshot(Kind.FIRING, now)
            for s in self.states.values()
            if s.phase is Phase.FIRING
            and s.notified_severity is not None
            and not self.muted(s.check, now)
        ]

    def export(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.states.values()]

    def restore(self, saved: Iterable[dict[str, Any]]) -> None:
        for data in saved:
            state = AlertState.from_dict(data)
            self.states[state.key] = state


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


class Grouper:
    """Collects due alerts; the batch is due `group_wait` after its first alert arrived."""

    def __init__(self, group_wait: float) -> None:
        self.group_wait = group_wait
        self._alerts: list[Alert] = []
        self._opened: float | None = None

    def __len__(self) -> int:
        return len(self._alerts)

    def add(self, alerts: Iterable[Alert], now: float) -> None:
        for alert in alerts:
            if self._opened is None:
                self._opened = now
            self._alerts.append(alert)

    def due(self, now: float) -> list[Alert]:
        if self._opened is None or now - self._opened < self.group_wait:
            return []
        return self.drain()

    def peek(self) -> list[Alert]:
        return list(self._alerts)

    def drain(self) -> list[Alert]:
        alerts, self._alerts, self._opened = self._alerts, [], None
        return alerts
