"""What the alert tests share: configs, results and observations, an engine fed by hand."""

from __future__ import annotations

from typing import Any, ClassVar

from probe.contract.config import AgentConfig, Config, alerts_from_dict
from probe.contract.notification import Alert
from probe.contract.plugin import CheckConfig
from probe.core.model import CheckResult, Observation, Status, Unit
from probe.engine.alerts.engine import AlertEngine
from tests.slack_receiver import SlackReceiver

T0 = 1_764_583_200.0  # 2025-12-01T10:00:00Z


class GroupConfig(CheckConfig):
    """A group with members, without depending on the group check module."""

    has_members: ClassVar[bool] = True
    checks: list[CheckConfig] = []

    def members(self) -> list[CheckConfig]:
        return self.checks


def make_config(
    alerts: dict[str, Any] | None = None,
    checks: list[CheckConfig] | None = None,
    agent: dict[str, Any] | None = None,
) -> Config:
    default_checks: list[CheckConfig] = [
        CheckConfig(name=n, type="tcp") for n in ("database", "redis", "queues", "system", "app")
    ]
    return Config(
        source="test",
        agent=AgentConfig(**{"name": "botflow-probe", **(agent or {})}),
        checks=checks if checks is not None else default_checks,
        alerts=alerts_from_dict(alerts or {}),
    )


def obs(
    component: str,
    measure: str,
    value: float,
    status: Status = Status.PASS,
    threshold: str | None = None,
    unit: Unit = Unit.COUNT,
) -> Observation:
    return Observation(component, measure, value, unit, status, threshold)


def result(status: Status, *observations: Observation, output: str = "") -> CheckResult:
    return CheckResult(status, 0.01, output, T0, tuple(observations))


def backlog(value: float, queue: str = "ai-assistant") -> CheckResult:
    if value > 1000:
        return result(Status.WARN, obs(queue, "backlog", value, Status.WARN, "> 1,000"))
    return result(Status.PASS, obs(queue, "backlog", value))


def no_workers(queue: str = "ai-assistant") -> CheckResult:
    return result(Status.FAIL, obs(queue, "workers", 0, Status.FAIL, "< 1"))


REFUSED = result(Status.FAIL, output="connection refused (127.0.0.1:5432)")
HEALTHY = result(Status.PASS, obs("", "response_time", 0.003, unit=Unit.SECONDS))


def feed(
    engine: AlertEngine, check: str, results: list[CheckResult], start: float, step: float = 15.0
) -> list[tuple[float, Alert]]:
    """Feed one result every `step` seconds; return (time, alert) for every alert due."""
    due = []
    for i, res in enumerate(results):
        now = start + i * step
        due += [(now, a) for a in engine.observe(check, res, now)]
    return due


def engine_for(**alerts: Any) -> AlertEngine:
    settings = {"for": {"warn": "5m", "fail": "1m"}, "resolve_after": 2, "repeat": "4h"}
    settings.update(alerts)
    return AlertEngine(alerts_from_dict(settings))


def texts(receiver: SlackReceiver) -> list[str]:
    """The text of every message the Slack stand-in accepted, in order."""
    return [str(body["text"]) for body in receiver.delivered]
