"""The alert state machine: results in, due alert events out. No I/O, no clock of its own.

One state per alert key (check, component, measure): absent (ok) -> pending -> firing ->
gone (resolved). A run that could not measure anything (connection refused, HTTP 503) is
the key's measure `up`, as Prometheus names a failed scrape. Keying by measure makes an
alert describe one cause: when the workers are back but the backlog is high, the workers
alert resolves and the backlog is a new alert, instead of the old words staying up.

What is notified is decided by one reconcile step per firing key, comparing the
severity it has with the severity last notified:
- never notified            -> `firing`    (also when a silence or quiet hours end)
- notified warning, now critical -> `escalated`
- notified and `repeat` elapsed  -> `reminder`
A silence or a maintenance window suppresses these three; the key stays un-notified and
goes out when the window ends, and a key that resolves inside it was never told of, so
nothing is sent about it. Maintenance does not hide a key already notified from
Alertmanager's re-sends: the window does not resolve what was firing before it opened.
Quiet hours do the same for the severities they hold, and also hold the resolves of
those severities (phase `held`), so the digest at the end of the window says what
happened meanwhile. A resolve goes out only for a key that was notified or held.

Cause change: when a notified key resolves while another measure of the same component is
still pending, that one fires at once, carrying the resolved words as `previous_summary`:
the component was never healthy in between, so its `for` already ran. Notifiers show the
pair as one line ("now backlog ..., was workers ...").

The cause in every alert: a run that failed is one `up` verdict with the run's words
(`connection refused (127.0.0.1:3000)`). The built-in error_rate, the share of failed runs,
is a consequence of those failures: while `up` fires for the check it is folded into
that alert (its words follow the cause in the `up` summary), and once a notified `up`
resolved it stays folded until it passes or a run fails again, so the tail of an outage
in the window is not a second alert. On its own (failures too short-lived to fire `up`)
it is an alert of its own that names the most recent failure (`runner` adds the words).

Dependencies (`depends_on`): while a parent check fails, a child's non-pass opens nothing
(its pending keys are dropped, so its `for` starts again once the parent is back), open
keys stay open and still resolve. A child alert that became due just before its parent's
failure was seen is taken back at flush time (`inhibit`), within `group_wait`.

A firing key's severity only rises: critical falling back to warn stays critical until it
resolves, so Alertmanager never sees the same alert change labels back and forth.

Keys restored from a version-1 state file have measure "" (the whole component): the
first non-pass measure of that component adopts it, so a firing alert survives the upgrade
without being notified again, and it resolves when its component is healthy.
"""

from __future__ import annotations

import enum
import functools
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import TypeAdapter

from probe.contract.config import AlertsConfig
from probe.contract.notification import Alert, Kind, Severity
from probe.core.dependencies import blocked_by
from probe.core.maintenance import Maintenance
from probe.core.model import CheckResult, Status

Key = tuple[str, str, str]  # (check, component, measure)
UP = "up"  # the measure of a run that could not measure anything
LEGACY = ""  # the measure of keys restored from a version-1 state file


class Phase(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    HELD = "held"  # resolved inside quiet hours; the resolve goes out with the digest


@dataclass(frozen=True, slots=True)
class Policy:
    """The alert settings of one check, after `alerts.overrides`."""

    for_warn: float
    for_fail: float
    resolve_after: int
    repeat: float
    enabled: bool
    flap_fail: int = 1  # non-pass runs needed among the last `flap_of` before pending
    flap_of: int = 1


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
    measure: str = LEGACY
    held: bool = False  # quiet hours kept a notification of it back
    resolved_at: float | None = None  # phase `held`: when it resolved
    previous_summary: str = ""  # the resolved cause it replaced, until notified
    previous_measure: str = ""

    @property
    def key(self) -> Key:
        return (self.check, self.component, self.measure)

    def snapshot(
        self, kind: Kind, now: float, previous: Severity | None = None, *, held: bool = False
    ) -> Alert:
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
            measure=self.measure,
            previous_summary=self.previous_summary if kind is not Kind.RESOLVED else "",
            previous_measure=self.previous_measure if kind is not Kind.RESOLVED else "",
            held=held,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> AlertState:
        """What `to_dict` wrote, read back by the fields' own types."""
        return _alert_state().validate_python(data)


@functools.cache
def _alert_state() -> TypeAdapter[AlertState]:
    # Built on first use: only a start with a saved state file reads one back, and the
    # schema is memory every agent would otherwise hold from its start (issue 28).
    return TypeAdapter(AlertState)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    summary: str
    run_share: bool = False  # the built-in error_rate: folded into `up` (module docstring)


def cannot_run(result: CheckResult) -> bool:
    """A failed run that no measured fail explains: nothing it reported was measured. The
    share of failed runs explains nothing: it is high because runs like this one failed."""
    if result.status is not Status.FAIL or result.members:
        return False
    return not any(o.status is Status.FAIL and not o.run_share for o in result.observations)


def verdicts(result: CheckResult) -> dict[tuple[str, str], Verdict]:
    """(component, measure) -> what this result says about it.

    A run that could not measure is one verdict on `up`, with the run's output (its
    failure words first, then the share of failed runs folded in); its other observations
    (the response time of a refused connection) say nothing about their measures. Group
    results leave their members' failures to the members.
    """
    failed = cannot_run(result)
    found: dict[tuple[str, str], Verdict] = {}
    for obs in result.observations:
        if failed:
            continue
        key = (obs.component, obs.measure)
        words = obs.describe() if obs.status is not Status.PASS else ""
        before = found.get(key)
        if before is None or obs.status.rank > before.status.rank:
            found[key] = Verdict(obs.status, words, obs.run_share)
    if failed:
        found[("", UP)] = Verdict(Status.FAIL, result.output or "check failed")
    return found


class AlertEngine:
    def __init__(
        self,
        config: AlertsConfig,
        parents: dict[str, str] | None = None,
        depends_on: dict[str, list[str]] | None = None,
        maintenance: Maintenance | None = None,
    ) -> None:
        self.config = config
        self.maintenance = maintenance or Maintenance()
        self.parents = parents or {}  # group member -> its group, for overrides and silences
        self.depends_on = depends_on or {}  # check -> the checks it depends on
        self.states: dict[Key, AlertState] = {}
        self.failing: set[str] = set()  # checks whose latest run failed
        # Last runs of keys that were non-pass lately, for `flap`; not persisted.
        self._recent: dict[Key, deque[bool]] = {}
        # Checks whose notified `up` resolved while their error_rate may still be high
        # from that outage: the error_rate stays folded (module docstring); not persisted.
        self._outage_tail: set[str] = set()
        # Bumped on every change worth persisting; the service saves when it moves.
        self.version = 0

    # ------------------------------------------------------------ policy

    def policy(self, check: str) -> Policy:
        overrides = self.config.overrides
        override = overrides.get(check) or overrides.get(self.parents.get(check, ""))
        base = self.config
        flap = (override.flap if override else None) or base.flap
        flap_fail, flap_of = (flap.fail, flap.of) if flap else (1, 1)
        if override is None:
            return Policy(
                base.for_.warn,
                base.for_.fail,
                base.resolve_after,
                base.repeat,
                True,
                flap_fail,
                flap_of,
            )
        return Policy(
            for_warn=_first(override.for_.warn, base.for_.warn),
            for_fail=_first(override.for_.fail, base.for_.fail),
            resolve_after=override.resolve_after or base.resolve_after,
            repeat=_first(override.repeat, base.repeat),
            enabled=override.enabled,
            flap_fail=flap_fail,
            flap_of=flap_of,
        )

    def muted(self, check: str, now: float) -> bool:
        """Nothing new goes out for this check now: a silence or a maintenance window."""
        return self.silenced(check, now) or self.maintenance.covers(check, now)

    def silenced(self, check: str, now: float) -> bool:
        names = {check, self.parents.get(check, check)}
        return any(
            s.start.timestamp() <= now < s.end.timestamp() and names.intersection(s.checks)
            for s in self.config.silences
        )

    def holds(self, severity: Severity, now: float) -> bool:
        """Whether quiet hours keep a notification of this severity back right now."""
        return any(
            Severity(q.hold).rank >= severity.rank and q.covers(now)
            for q in self.config.quiet_hours
        )

    def blocked_by(self, check: str) -> str | None:
        return blocked_by(check, self.depends_on, self.failing)

    # ------------------------------------------------------------ input

    def observe(self, check: str, result: CheckResult, now: float) -> list[Alert]:
        """Feed one result (members of a group result included); return alerts now due."""
        self._record_failing(check, result)
        return self._observe(check, result, now)

    def _record_failing(self, check: str, result: CheckResult) -> None:
        if result.status is Status.FAIL:
            self.failing.add(check)
        else:
            self.failing.discard(check)
        for member, member_result in result.members:
            self._record_failing(member, member_result)

    def _observe(self, check: str, result: CheckResult, now: float) -> list[Alert]:
        due: list[Alert] = []
        policy = self.policy(check)
        if policy.enabled:
            blocked = self.blocked_by(check) is not None
            seen = verdicts(result)
            folded = self._share_folded(check, result, seen.values())
            applied: list[tuple[Key, Verdict]] = [
                ((check, *k), v)
                for k, v in seen.items()
                if not (folded and v.run_share and v.status is not Status.PASS)
            ]
            if not cannot_run(result):
                # A key that stopped being reported (a queue removed, the check runs again
                # after `up` failed) counts as passing; when nothing could be measured,
                # its absence says nothing.
                missing = [k for k in self.states if k[0] == check and (k[1], k[2]) not in seen]
                applied += [(k, Verdict(Status.PASS, "")) for k in missing]
                stale = [k for k in self._recent if k[0] == check and (k[1], k[2]) not in seen]
                applied += [(k, Verdict(Status.PASS, "")) for k in stale if k not in missing]
            # Non-pass first: a cause that appears in the same run as another one ends is
            # already pending when the ended one resolves, and takes over from it.
            applied.sort(key=lambda item: item[1].status is Status.PASS)
            for key, verdict in applied:
                due += self._apply(key, verdict, policy, now, blocked)
        for member, member_result in result.members:
            due += self._observe(member, member_result, now)
        return due

    def _share_folded(self, check: str, result: CheckResult, seen: Iterable[Verdict]) -> bool:
        """Whether this run's non-pass share of failed runs is part of the check's `up`
        alert (firing, or notified and ended while the share is still high)."""
        shares = [v for v in seen if v.run_share]
        if cannot_run(result) or any(v.status is Status.PASS for v in shares):
            self._outage_tail.discard(check)  # failing again, or the tail is over
        # A pending `up` is dropped by this passing run (a flap nobody heard of): the share
        # of those failures is then the only word about them, and stands on its own.
        up = self.states.get((check, "", UP))
        return check in self._outage_tail or (up is not None and up.phase is Phase.FIRING)

    def tick(self, now: float) -> list[Alert]:
        """Reminders, firing keys whose silence or quiet hours ended, and held resolves."""
        due = []
        for state in list(self.states.values()):
            if state.phase is Phase.HELD:
                if not self.holds(state.severity, now):
                    del self.states[state.key]
                    self.version += 1
                    at = state.resolved_at if state.resolved_at is not None else now
                    due.append(state.snapshot(Kind.RESOLVED, at, held=True))
                continue
            alert = self._reconcile(state, self.policy(state.check), now)
            if alert is not None:
                due.append(alert)
        return due

    def inhibit(self, alerts: list[Alert]) -> list[Alert]:
        """Take back new alerts of checks whose parent is now seen failing.

        A parent and its child fail together, but the child may have been run first; the
        grouping delay lets the parent's failure arrive before anything is sent. The
        child's key is dropped: nobody was told, and once the parent is back its own `for`
        starts again.
        """
        kept = []
        for alert in alerts:
            key = (alert.check, alert.component, alert.measure)
            state = self.states.get(key)
            new = alert.kind is Kind.FIRING and not alert.previous_summary and not alert.held
            ours = state is not None and state.notified_at == alert.at
            if new and ours and self.blocked_by(alert.check) is not None:
                del self.states[key]
                self.version += 1
                continue
            kept.append(alert)
        return kept

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
        self._recent = {k: v for k, v in self._recent.items() if k[0] in known}
        self._outage_tail &= known
        return due

    # ------------------------------------------------------------ state machine

    def _apply(
        self, key: Key, verdict: Verdict, policy: Policy, now: float, blocked: bool
    ) -> list[Alert]:
        state = self.states.get(key)
        non_pass = verdict.status is not Status.PASS
        recent = self._flap(key, non_pass, policy)
        if not non_pass:
            if state is None or (state.phase is Phase.PENDING and recent):
                return []  # healthy, or flapping: pending until a whole window passes
            return self._passed(state, policy, now)
        if blocked:
            self._blocked(state)
            return []
        if state is None:
            if recent < policy.flap_fail:
                return []
            state = self._adopt_legacy(key, verdict, now) or self._open(key, verdict, now)
        elif state.phase is Phase.HELD:
            # Back within quiet hours: it never really ended, and nobody was told it did.
            state.phase, state.resolved_at = Phase.FIRING, None
            self.version += 1
        self._not_passed(state, verdict, now)
        self._maybe_fire(state, policy, now)
        alert = self._reconcile(state, policy, now)
        return [alert] if alert is not None else []

    def _flap(self, key: Key, non_pass: bool, policy: Policy) -> int:
        """How many of the last `flap.of` runs of this key were non-pass (this one included).

        `flap.fail` of them open a pending key; it stays pending until a whole window
        passes, so a check failing every other run does not drop in and out of pending.
        """
        if policy.flap_of <= 1:
            return int(non_pass)
        window = self._recent.get(key)
        if window is None:
            if not non_pass:
                return 0
            window = self._recent[key] = deque(maxlen=policy.flap_of)
        window.append(non_pass)
        count = sum(window)
        if count == 0:
            del self._recent[key]
        return count

    def _open(self, key: Key, verdict: Verdict, now: float) -> AlertState:
        state = AlertState(
            check=key[0],
            component=key[1],
            measure=key[2],
            phase=Phase.PENDING,
            severity=Severity.of(verdict.status),
            summary=verdict.summary,
            since=now,
            nonpass_since=None,
            fail_since=None,
        )
        self.states[key] = state
        self.version += 1
        return state

    def _adopt_legacy(self, key: Key, verdict: Verdict, now: float) -> AlertState | None:
        """A version-1 key of this component becomes this measure's, keeping what it was."""
        legacy = self.states.pop((key[0], key[1], LEGACY), None) if key[2] else None
        if legacy is None:
            return None
        legacy.measure = key[2]
        self.states[key] = legacy
        self.version += 1
        return legacy

    def _blocked(self, state: AlertState | None) -> None:
        if state is None:
            return
        if state.phase is Phase.PENDING:
            del self.states[state.key]
            self.version += 1
        elif state.passes:
            state.passes = 0
            self.version += 1

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
        if state.phase is Phase.HELD:
            return []
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
        if state.notified_severity is None and not state.held:
            return []  # fired only inside a silence: nothing to close
        if state.measure == UP:
            self._outage_tail.add(state.check)
        due = []
        if self.holds(state.severity, now):
            state.phase, state.resolved_at = Phase.HELD, now
            self.states[state.key] = state
        else:
            due.append(state.snapshot(Kind.RESOLVED, now))
        if state.notified_severity is not None:
            due += self._take_over(state, policy, now)
        return due

    def _take_over(self, ended: AlertState, policy: Policy, now: float) -> list[Alert]:
        """Pending causes of the component whose notified cause just ended fire at once."""
        due = []
        for state in list(self.states.values()):
            same = (state.check, state.component) == (ended.check, ended.component)
            if not same or state.phase is not Phase.PENDING:
                continue
            state.phase, state.fired_at = Phase.FIRING, now
            state.previous_summary, state.previous_measure = ended.summary, ended.measure
            self.version += 1
            alert = self._reconcile(state, policy, now)
            if alert is not None:
                due.append(alert)
        return due

    def _reconcile(self, state: AlertState, policy: Policy, now: float) -> Alert | None:
        if state.phase is not Phase.FIRING or self.muted(state.check, now):
            return None
        notified = state.notified_severity
        if notified is None:
            kind, previous = Kind.FIRING, None
        elif state.severity.rank > notified.rank:
            kind, previous = Kind.ESCALATED, notified
        elif policy.repeat > 0 and now - (state.notified_at or now) >= policy.repeat:
            kind, previous = Kind.REMINDER, None
        else:
            return None
        if self.holds(state.severity, now):
            if not state.held:
                state.held = True
                self.version += 1
            return None
        alert = state.snapshot(kind, now, previous, held=state.held)
        state.notified_severity, state.notified_at = state.severity, now
        state.held = False
        state.previous_summary = state.previous_measure = ""
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
            and not self.silenced(s.check, now)
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
