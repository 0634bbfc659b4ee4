"""The shape of the file's sections other than the check and notifier entries, which
their plugins define (`probe.contract`): agent, alerts, and the whole validated config."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from probe.contract import CheckConfig, NotifierConfig
from probe.fields import Duration, StrictModel

MIN_LIVE_TIMEOUT = 3.0  # seconds; a few scheduler heartbeats (one per second)


class AgentConfig(StrictModel):
    name: str = "probe"
    version: str = "0.0.0"
    listen: str = "0.0.0.0:8080"
    live_timeout: Duration = 30.0
    state_file: str = ""
    auth_token: SecretStr = SecretStr("")

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


class AlertOverride(StrictModel):
    for_: SeverityOverrides = Field(default_factory=SeverityOverrides, alias="for")
    resolve_after: int | None = Field(default=None, ge=1, le=1000)
    repeat: Duration | None = None
    enabled: bool = True


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
    # Validated one by one by the loader, each by its registered model.
    notifiers: list[NotifierConfig] = Field(default_factory=list)


# ---------------------------------------------------------------- the whole file


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    source: str
    agent: AgentConfig
    checks: list[CheckConfig]
    alerts: AlertsConfig

    def all_checks(self) -> Iterator[CheckConfig]:
        """Every configured check, group members right after their group."""
        yield from walk(self.checks)

    def secrets(self) -> list[str]:
        found = [self.agent.auth_token.get_secret_value()]
        for check in self.all_checks():
            found.extend(check.secrets())
        for notifier in self.alerts.notifiers:
            found.extend(notifier.secrets())
        return [s for s in found if s]


def walk(checks: list[CheckConfig]) -> Iterator[CheckConfig]:
    for check in checks:
        yield check
        yield from walk(check.members())
