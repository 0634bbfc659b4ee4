"""The shape of the file's sections other than the check and notifier entries, which
their plugins define (`probe.contract.plugin`): agent, alerts, and the whole validated config."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from probe.contract.config.otlp import OtlpConfig
from probe.contract.plugin import CheckConfig, NotifierConfig
from probe.core.fields import Duration, StrictModel, TimeZone, is_http_url
from probe.core.maintenance import WindowConfig
from probe.core.redact import heartbeat_secrets, url_secrets

MIN_LEASE, MAX_LEASE = 1.0, 300.0  # seconds, agent.fleet.lease
MIN_LIVE_TIMEOUT = 3.0  # seconds; a few scheduler heartbeats (one per second)
DEFAULT_HISTORY = "sqlite:///var/lib/probe/history.db"  # used only when writable


class FleetConfig(StrictModel):
    """Replicas with the same `name` and `backend` elect one leader, which alone notifies
    (docs/deploy.md)."""

    name: str = Field(min_length=1)
    # A DSN may hold a password: secret, and its errors never quote it.
    backend: SecretStr
    lease: Duration = 15.0

    @field_validator("backend")
    @classmethod
    def _backend_kind(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if text.startswith(("postgresql://", "postgres://", "redis://", "rediss://")):
            return SecretStr(text)
        scheme = text.partition("://")[0] if "://" in text else ""
        shown = f" (scheme {scheme!r})" if scheme else ""
        raise ValueError("expected a postgresql:// DSN or a redis:// URL" + shown)

    @field_validator("lease")
    @classmethod
    def _lease_range(cls, value: float) -> float:
        # Renewed every lease/3: below a second the renewals are noise, above 5 minutes a
        # dead leader leaves the fleet silent for too long.
        if not MIN_LEASE <= value <= MAX_LEASE:
            raise ValueError(f"must be between {MIN_LEASE:g}s and {MAX_LEASE:g}s, got {value:g}s")
        return value


class HeartbeatConfig(StrictModel):
    """An outgoing dead-man's switch: GET `url` while this agent makes progress,
    `url/fail` when it does not."""

    url: SecretStr  # healthchecks.io and Cronitor put the secret in the path
    # `Authorization: Bearer <token>`, for another probe whose agent.ping_token is set.
    token: SecretStr = SecretStr("")
    every: Duration = 60.0
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1]) < 1:
            raise ValueError("expected an http:// or https:// URL")
        return SecretStr(text.rstrip("/"))

    @model_validator(mode="after")
    def _timeout_within_every(self) -> HeartbeatConfig:
        if self.timeout >= self.every:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must be shorter than every ({self.every:g}s)"
            )
        return self


class AgentConfig(StrictModel):
    name: str = "probe"
    version: str = "0.0.0"
    listen: str = "0.0.0.0:8080"
    live_timeout: Duration = 30.0
    state_file: str = ""
    auth_token: SecretStr = SecretStr("")
    # `Authorization: Bearer <token>` the /ping/<check> routes need when set.
    ping_token: SecretStr = SecretStr("")
    # `Authorization: Bearer <token>` every write of the admin API needs; no token, no API.
    admin_token: SecretStr = SecretStr("")
    # A DSN may hold a password: secret, and its errors never quote it (docs/history.md).
    history: SecretStr = SecretStr(DEFAULT_HISTORY)
    status_page: Literal["public", "token", "off"] = "public"
    # Where people reach this agent (https://probe.example.com): notifications link to its
    # /status page. Empty: messages carry no links.
    public_url: str = ""
    # The /metrics families pushed over OTLP/HTTP (docs/metrics.md); needs `probe[otlp]`.
    otlp: OtlpConfig | None = None
    fleet: FleetConfig | None = None
    heartbeat: HeartbeatConfig | None = None

    @field_validator("history", "status_page", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false; `history: off` means the word.
        return "off" if value is False else value

    @field_validator("history")
    @classmethod
    def _history_target(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if text == "off" or text.startswith(("postgresql://", "postgres://")):
            return SecretStr(text)
        if text.startswith("sqlite://") and len(text) > len("sqlite://"):
            return SecretStr(text)
        scheme = text.partition("://")[0] if "://" in text else ""
        shown = f" (scheme {scheme!r})" if scheme else ""
        raise ValueError(
            "expected off, sqlite:///path/to/history.db or a postgresql:// DSN" + shown
        )

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, value: str) -> str:
        if value and not is_http_url(value):
            raise ValueError("expected an http:// or https:// URL like https://probe.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _token_needs_a_token(self) -> AgentConfig:
        if self.status_page == "token" and not self.auth_token.get_secret_value():
            raise ValueError("status_page: token needs agent.auth_token to be set")
        return self

    @field_validator("live_timeout")
    @classmethod
    def _longer_than_heartbeats(cls, value: float) -> float:
        # The scheduler ticks every second; anything shorter would report a healthy agent
        # as stalled and have it restarted forever.
        if value < MIN_LIVE_TIMEOUT:
            raise ValueError(f"must be at least {MIN_LIVE_TIMEOUT:g}s, got {value:g}s")
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port like 0.0.0.0:8080, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class SeverityDurations(StrictModel):
    warn: Duration = 300.0
    fail: Duration = 60.0


class SeverityOverrides(StrictModel):
    warn: Duration | None = None
    fail: Duration | None = None


class Flap(StrictModel):
    """`{fail: 3, of: 5}`: a non-pass must be seen in `fail` of the last `of` runs of an
    alert key before it is pending (and `for` starts)."""

    fail: int = Field(ge=1, le=100)
    of: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _fail_within_of(self) -> Flap:
        if self.fail > self.of:
            raise ValueError(f"fail ({self.fail}) cannot be more than of ({self.of})")
        return self


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock_time(value: str) -> time:
    hours, sep, minutes = value.partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
        h, m = int(hours), int(minutes)
        if 0 <= h <= 23 and 0 <= m <= 59:
            return time(h, m)
    raise ValueError(f"expected a time of day like 22:00, got {value!r}")


class QuietHours(StrictModel):
    """A weekly window in local time when notifications of `hold` and below wait.

    `days` name the day a window starts on: `{days: [fri], start: "22:00", end: "07:00"}`
    runs from Friday 22:00 to Saturday 07:00. Times are wall-clock times in `tz`, so a
    window keeps its local hours across daylight-saving changes.
    """

    days: list[str] = Field(default_factory=lambda: list(DAYS))
    start: str
    end: str
    tz: TimeZone = "UTC"
    hold: Literal["warning", "critical"] = "warning"

    @field_validator("days")
    @classmethod
    def _day_names(cls, value: list[str]) -> list[str]:
        for entry in value:
            _weekdays(entry)
        if not value:
            raise ValueError("name at least one day, e.g. [mon-fri]")
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _sexagesimal(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 22:00 as the base-60 number 1320.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return f"{value // 60:02d}:{value % 60:02d}"
        return value

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        _clock_time(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time: the window would be empty")
        return self

    def covers(self, ts: float) -> bool:
        """Whether the unix time `ts` falls inside one of this entry's windows."""
        local = datetime.fromtimestamp(ts, ZoneInfo(self.tz))
        now, start, end = local.time(), _clock_time(self.start), _clock_time(self.end)
        days = {d for entry in self.days for d in _weekdays(entry)}
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if start < end:
            return today in days and start <= now < end
        # Across midnight: the evening part is today's window, the morning part yesterday's.
        return (today in days and now >= start) or (yesterday in days and now < end)


def _weekdays(entry: str) -> list[int]:
    """`mon` -> [0]; `mon-fri` -> [0..4]; `fri-mon` wraps over the weekend."""
    first, _, last = entry.strip().lower().partition("-")
    last = last or first
    if first not in DAYS or last not in DAYS:
        raise ValueError(f"expected days like mon, sat-sun or mon-fri, got {entry!r}")
    a, b = DAYS.index(first), DAYS.index(last)
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]


class AlertOverride(StrictModel):
    for_: SeverityOverrides = Field(default_factory=SeverityOverrides, alias="for")
    resolve_after: int | None = Field(default=None, ge=1, le=1000)
    repeat: Duration | None = None
    enabled: bool = True
    flap: Flap | None = None


class Silence(StrictModel):
    checks: list[str]
    start: datetime
    end: datetime
    comment: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a timezone, e.g. 2026-12-01T02:00:00Z")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AlertsConfig(StrictModel):
    for_: SeverityDurations = Field(default_factory=SeverityDurations, alias="for")
    resolve_after: int = Field(default=2, ge=1, le=1000)
    repeat: Duration = 14400.0
    group_wait: Duration = 10.0
    max_delivery_age: Duration = 3600.0
    overrides: dict[str, AlertOverride] = Field(default_factory=dict)
    silences: list[Silence] = Field(default_factory=list)
    quiet_hours: list[QuietHours] = Field(default_factory=list)
    flap: Flap | None = None
    # Validated one by one by the loader, each by its registered model.
    notifiers: list[NotifierConfig] = Field(default_factory=list)


# ---------------------------------------------------------------- the whole file


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)

    source: str
    agent: AgentConfig
    checks: list[CheckConfig]
    alerts: AlertsConfig
    maintenance: list[WindowConfig] = []

    def all_checks(self) -> Iterator[CheckConfig]:
        """Every configured check, group members right after their group."""
        yield from walk(self.checks)

    def secrets(self) -> list[str]:
        agent = self.agent
        found = [
            agent.auth_token.get_secret_value(),
            agent.ping_token.get_secret_value(),
            agent.admin_token.get_secret_value(),
        ]
        found.extend(url_secrets(self.agent.history.get_secret_value()))
        if self.agent.otlp is not None:
            found.extend(self.agent.otlp.secrets())
        if self.agent.fleet is not None:
            found.extend(url_secrets(self.agent.fleet.backend.get_secret_value()))
        if self.agent.heartbeat is not None:
            beat = self.agent.heartbeat
            found.extend(heartbeat_secrets(beat.url.get_secret_value()))
            found.append(beat.token.get_secret_value())
        for check in self.all_checks():
            found.extend(check.secrets())
        for notifier in self.alerts.notifiers:
            found.extend(notifier.secrets())
        return [s for s in found if s]


def walk(checks: list[CheckConfig]) -> Iterator[CheckConfig]:
    for check in checks:
        yield check
        yield from walk(check.members())
