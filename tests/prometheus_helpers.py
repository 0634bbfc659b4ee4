"""What the prometheus check tests share: a config builder, a runner maker, readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from probe.checks.prometheus import PrometheusConfig
from probe.contract.plugin import AgentServices
from probe.core.model import CheckResult
from probe.core.redact import Redactor
from probe.engine.factory import build_runner
from probe.engine.pings import Inbox
from probe.engine.runner import CheckRunner
from tests.support import HandClock

T0 = 1_800_000_000.0


def config(url: str, **extra: Any) -> PrometheusConfig:
    fields: dict[str, Any] = {
        "name": "api_errors",
        "type": "prometheus",
        "url": url,
        "window": "5m",
        "interval": "15s",
        "timeout": "2s",
        "series": {
            "errors": 'http_requests_total{status=~"5.."}',
            "requests": "http_requests_total",
        },
        "measures": {
            "error_ratio": {"ratio": ["errors", "requests"]},
            "error_rate": {"rate": "errors", "per": "1m"},
            "error_spike": {"spike": "errors", "baseline": "15m"},
        },
        "warn": {"error_ratio": "2%", "error_spike": 3},
        "fail": {"error_ratio": "10%"},
        **extra,
    }
    return PrometheusConfig.model_validate(fields)


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    made: list[CheckRunner] = []

    def build(cfg: PrometheusConfig, clock: HandClock, agent: bool = True) -> CheckRunner:
        runner = build_runner(
            cfg,
            Redactor(cfg.secrets()),
            clock,
            AgentServices(Inbox(clock=clock)) if agent else None,
        )
        made.append(runner)
        return runner

    yield build
    for runner in made:
        await runner.close()


def values(result: CheckResult) -> dict[str, float | None]:
    return {o.measure: o.value for o in result.observations if o.measure != "response_time"}


def notes(result: CheckResult) -> dict[str, str]:
    return {o.measure: o.note for o in result.observations}
