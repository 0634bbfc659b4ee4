"""Heartbeats: a cron route, a worker or a webhook handler pings the agent
(`/ping/<check>`, recorded by the agent), and this check judges the pings it recorded.

The next ping is due one `every` after the last sign of life (a success or a start), or
at the next `cron` time after it in `tz`; late past `grace`, the check fails. A run
started and not ended within `start_grace` fails, a failed run fails until a success,
and `min_duration` / `max_duration` warn about runs that finished too fast or too slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import field_validator, model_validator

from probe.contract.heartbeat_state import HeartbeatState
from probe.contract.plugin import Check, CheckConfig, MetricFamily, MetricPoint, Report
from probe.core.fields import Duration, TimeZone
from probe.core.model import Sample, Unit
from probe.core.units import Limit, format_duration

MESSAGE_SHOWN = 200  # characters of the last message in a one-line output

AGE = MetricFamily(
    "probe_heartbeat_last_ping_age_seconds",
    "Seconds since a heartbeat check's last success or start ping, at its last run.",
    ("check",),
)


@dataclass(frozen=True, slots=True)
class DurationLimit(Limit):
    """A run-length limit that says which setting it is: `under min_duration 1m`."""

    setting: str = ""

    def describe(self, unit: Unit) -> str:
        return f"{'under' if self.below else 'over'} {self.setting} {format_duration(self.value)}"


class HeartbeatConfig(CheckConfig):
    receives_pings: ClassVar[bool] = True
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"last_ping_age", "duration"}
    metric_families: ClassVar[tuple[MetricFamily, ...]] = (AGE,)

    type: Literal["heartbeat"]
    every: Duration | None = None
    cron: str | None = None
    tz: TimeZone = "UTC"
    grace: Duration = 300.0
    start_grace: Duration | None = None
    min_duration: Duration | None = None
    max_duration: Duration | None = None

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value, timezone=UTC)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"expected five cron fields like '0 2 * * *', got {value!r} ({exc})"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> HeartbeatConfig:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every (like 1h) or cron (like '0 2 * * *')")
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be greater than 0")
        low, high = self.min_duration, self.max_duration
        if low is not None and high is not None and low >= high:
            raise ValueError("min_duration must be shorter than max_duration")
        return self

    def default_limits(self) -> tuple[dict[str, Limit], dict[str, Limit]]:
        """The run-length settings are this type's warn limits on `duration`; a user's
        `warn: {duration: ...}` goes over them."""
        found: dict[str, Limit] = {}
        if self.min_duration is not None:
            found["duration"] = DurationLimit(
                self.min_duration, True, setting="min_duration", source="min_duration"
            )
        if self.max_duration is not None and "duration" not in found:
            found["duration"] = DurationLimit(
                self.max_duration, setting="max_duration", source="max_duration"
            )
        return found, {}

    @property
    def open_limit(self) -> float:
        """How long a started run may go without an end."""
        for limit in (self.start_grace, self.max_duration):
            if limit is not None:
                return limit
        return self.grace

    def due_after(self, ref: float) -> float:
        """When the next ping is due after a sign of life at `ref`."""
        if self.every is not None:
            return ref + self.every
        assert self.cron is not None
        zone = ZoneInfo(self.tz)
        trigger = CronTrigger.from_crontab(self.cron, timezone=zone)
        after = datetime.fromtimestamp(ref, zone)
        fire = trigger.get_next_fire_time(None, after)
        if fire is not None and fire.timestamp() <= ref:
            # CronTrigger counts `now` itself as a fire time; the next one is wanted.
            fire = trigger.get_next_fire_time(fire, datetime.fromtimestamp(ref + 1, zone))
        return fire.timestamp() if fire is not None else float("inf")

    def schedule(self) -> str:
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        return f"cron {self.cron} {self.tz}"

    def target(self) -> str:
        return f"/ping/{self.name} {self.schedule()}"

    def metric_points(self) -> list[MetricPoint]:
        return [MetricPoint(AGE, (self.name,), "", "last_ping_age")]


class HeartbeatCheck(Check[HeartbeatConfig]):
    config_model = HeartbeatConfig

    async def run(self) -> Report:
        agent = self.context.agent
        if agent is None:
            note = "needs the agent: heartbeats are pings the running agent receives"
            return Report(samples=[Sample("last_ping_age", None, Unit.SECONDS, note=note)])
        now = self.context.clock()
        state = agent.pings.state(self.config.name) or HeartbeatState(since=now)
        alive = max(t for t in (state.last_success, state.last_start, state.since) if t)
        samples = [Sample("last_ping_age", now - alive, Unit.SECONDS)]
        if state.duration is not None:
            samples.append(Sample("duration", state.duration, Unit.SECONDS))
        return Report(samples=samples, failure=self._verdict(state, alive, now))

    def _verdict(self, state: HeartbeatState, alive: float, now: float) -> str:
        config = self.config
        if state.failed:
            code = f" (exit {state.exit_code})" if state.exit_code is not None else ""
            return f"last run failed{code}{_message(state.message)}"
        stuck = [at for at in state.open_runs.values() if now - at > config.open_limit]
        if stuck:
            return f"started {format_duration(now - min(stuck))} ago, no end"
        due = config.due_after(alive)
        if now > due + config.grace:
            if state.last_success is None and state.last_start is None:
                since = f"the agent began watching {format_duration(now - state.since)} ago"
            else:
                since = f"{self._when(alive)} ({format_duration(now - alive)} ago)"
            return (
                f"no ping since {since}; due {self._when(due)} "
                f"({config.schedule()}, grace {format_duration(config.grace)})"
            )
        return ""

    def _when(self, ts: float) -> str:
        zone = ZoneInfo(self.config.tz)
        return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M %Z")


def _message(text: str) -> str:
    line = " ".join(text.split())
    if not line:
        return ""
    return f": {line[:MESSAGE_SHOWN]}{'...' if len(line) > MESSAGE_SHOWN else ''}"
