"""Runs one check once: deadline, timing, failure words and thresholds, in one place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import replace
from typing import Any

from probe.contract.plugin import Check, CheckConfig, CheckFailed, Report
from probe.core.model import CheckResult, Observation, Sample, Status, Unit, problem_words, worst
from probe.core.redact import Redactor
from probe.core.times import Clock
from probe.core.units import DEFAULT_SOURCE, Limit, timed_out_after

log = logging.getLogger("probe.runner")

# A group's members are bounded by their own timeouts (never longer than the group's);
# the group itself gets this much more, so the members' deadlines always fire first.
NESTED_GRACE_SECONDS = 0.25


# Limit maps are the same for most checks of a type (its defaults plus a few common user
# limits): runners share one read-only copy of each instead of two dicts a check. Bounded
# so that reloads with ever-changing limits cannot grow it without end.
_SHARED_LIMITS: dict[tuple[tuple[str, Limit, str], ...], dict[str, Limit]] = {}
_MAX_SHARED_LIMITS = 10_000

LimitPair = tuple[dict[str, Limit], dict[str, Limit]]


def _shared(limits: dict[str, Limit]) -> dict[str, Limit]:
    # `source` is not compared by Limit's `==`, but it decides whose limit it is.
    key = tuple((measure, limit, limit.source) for measure, limit in limits.items())
    found = _SHARED_LIMITS.get(key)
    if found is None:
        if len(_SHARED_LIMITS) >= _MAX_SHARED_LIMITS:
            _SHARED_LIMITS.clear()
        found = _SHARED_LIMITS[key] = limits
    return found


class CheckRunner:
    """Owns one check and what is needed to judge it across runs (the error-rate window)."""

    # One per check: slots instead of a __dict__ (and a weakref slot, so that a test can
    # see a reload let go of the old config's runners).
    __slots__ = (
        "__weakref__",
        "_last_failure",
        "_limits",
        "_own_limits",
        "_runs",
        "check",
        "clock",
        "config",
        "monotonic",
        "redact",
    )

    def __init__(
        self,
        check: Check[Any],
        redactor: Redactor | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.check = check
        self.config: CheckConfig = check.config
        self.redact = redactor or Redactor(self.config.secrets())
        self.clock = clock
        # The error-rate window is an age, so it is measured on a clock no one steps; a
        # hand-moved clock (tests) is the only time there is and moves it too.
        self.monotonic: Clock = time.monotonic if clock is time.time else clock
        # (finished_at, failed) per run inside `window`; bounded by the window and a hard cap.
        # Made on first use: an empty deque is 760 bytes, and most checks set no error_rate.
        self._runs: deque[tuple[float, bool]] | None = None
        # The words of the latest failed run: what an error_rate on its own names.
        self._last_failure = ""
        # Effective limits: the whole check's, and per component (made on first use, as
        # most checks have none). The config never changes under a runner.
        self._own_limits: LimitPair | None = None
        self._limits: dict[str, LimitPair] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def run(self) -> CheckResult:
        timeout = self.config.timeout
        deadline = timeout + (NESTED_GRACE_SECONDS if self.config.has_members else 0.0)
        started = time.perf_counter()
        failure = ""
        report = Report()
        try:
            async with asyncio.timeout(deadline):
                report = await self.check.run()
            failure = report.failure
        except TimeoutError:
            failure = timed_out_after(timeout)
        except CheckFailed as exc:
            failure = str(exc) or "failed"
        except Exception as exc:  # the one broad catch: a check bug must not kill the agent
            log.exception("check %s crashed", self.name, extra={"check": self.name})
            failure = f"check crashed: {exc}" if str(exc) else "check crashed"
        elapsed = time.perf_counter() - started
        return self._judge(report, failure, elapsed)

    def limits_for(self, component: str) -> LimitPair:
        if not component:
            if self._own_limits is None:
                self._own_limits = self._judged_limits(component)
            return self._own_limits
        if self._limits is None:
            self._limits = {}
        found = self._limits.get(component)
        if found is None:
            found = self._limits[component] = self._judged_limits(component)
        return found

    def _judged_limits(self, component: str) -> LimitPair:
        warn, fail = self.config.limits_for(component)
        return _shared(warn), _shared(fail)

    def _judge(self, report: Report, failure: str, elapsed: float) -> CheckResult:
        now = self.clock()
        samples = [Sample("response_time", elapsed, Unit.SECONDS), *report.samples]
        observations = [judge_sample(s, *self.limits_for(s.component)) for s in samples]
        member_statuses = [result.status for _, result in report.members]
        if report.members_status is not None:
            member_statuses = [report.members_status]
        base = worst([Status.FAIL if failure else Status.PASS, *member_statuses])
        if base is Status.FAIL:
            words = _output(failure, [], report.members, Status.FAIL)
            self._last_failure = " ".join(self.redact(words).split())

        error_rate = self._error_rate(self.monotonic(), failed=base is Status.FAIL)
        # A check that measures an `error_rate` of its own (the app's, from a prometheus
        # scrape) means that one: the share of failed runs would be judged twice otherwise.
        own = any(s.measure == "error_rate" and not s.component for s in report.samples)
        if error_rate is not None and not own:
            observations.append(self._run_share(error_rate, failed=base is Status.FAIL))

        status = worst([base, *(o.status for o in observations)])
        # One line, whatever a driver's message looked like: it goes into JSON, Nagios
        # output and Slack, all of which read a line break as the end of the message.
        output = " ".join(
            self.redact(_output(failure, observations, report.members, status)).split()
        )
        return CheckResult(
            status=status,
            response_time=elapsed,
            output=output,
            observed_at=now,
            observations=tuple(observations),
            members=report.members,
        )

    def _run_share(self, error_rate: float, failed: bool) -> Observation:
        """The built-in error_rate. A run that failed says its own words; one that passed
        names the most recent failure, so an error_rate alert on its own has its cause."""
        note = f"last failure: {self._last_failure}" if self._last_failure and not failed else ""
        sample = Sample("error_rate", error_rate, Unit.RATIO, note=note, note_explains=True)
        return replace(judge_sample(sample, *self.limits_for("")), run_share=True)

    def _error_rate(self, now: float, failed: bool) -> float | None:
        warn, fail = self.limits_for("")
        if "error_rate" not in warn and "error_rate" not in fail:
            return None
        if self._runs is None:
            self._runs = deque(maxlen=10_000)
        runs = self._runs
        runs.append((now, failed))
        horizon = now - self.config.window
        while runs and runs[0][0] < horizon:
            runs.popleft()
        return sum(1 for _, bad in runs if bad) / len(runs)

    async def close(self) -> None:
        """Close the check's connections, bounded: a hung server must not hold up a
        shutdown or a reload."""
        try:
            async with asyncio.timeout(self.config.timeout):
                await self.check.close()
        except TimeoutError:
            log.warning("closing check %s timed out", self.name, extra={"check": self.name})
        except Exception:
            log.warning("closing check %s failed", self.name, exc_info=True)


def judge_sample(sample: Sample, warn: dict[str, Limit], fail: dict[str, Limit]) -> Observation:
    status, threshold = Status.PASS, None
    if sample.value is not None:
        for verdict, limits in ((Status.FAIL, fail), (Status.WARN, warn)):
            limit = limits.get(sample.measure)
            if limit is not None and limit.breached(sample.value):
                status, threshold = verdict, limit.describe(sample.unit)
                break
    elif sample.unknown_warns and _users(warn, fail, sample.measure):
        # Only a limit the user set makes an unknown figure a warning: a type's default
        # that cannot be checked here (CLIENT LIST refused) is said in the note instead.
        status = Status.WARN
    return Observation(
        component=sample.component,
        measure=sample.measure,
        value=sample.value,
        unit=sample.unit,
        status=status,
        threshold=threshold,
        note=sample.note,
        note_explains=sample.note_explains,
    )


def _users(warn: dict[str, Limit], fail: dict[str, Limit], measure: str) -> bool:
    return any(
        limit is not None and limit.source != DEFAULT_SOURCE
        for limit in (warn.get(measure), fail.get(measure))
    )


def _output(
    failure: str,
    observations: list[Observation],
    members: tuple[tuple[str, CheckResult], ...],
    status: Status,
) -> str:
    if status is Status.PASS:
        return ""
    parts = [failure] if failure else []
    bad_members = [(n, r) for n, r in members if r.status is not Status.PASS]
    bad_members.sort(key=lambda item: -item[1].status.rank)
    parts += [f"{name}: {result.output}" for name, result in bad_members]
    parts += problem_words(observations)
    return "; ".join(parts)
