"""The runner turns whatever a check does into one result a user can read."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from probe.checks.tcp import TcpConfig
from probe.contract.plugin import Check, CheckFailed, Report
from probe.core.model import Sample, Status, Unit
from probe.engine.runner import CheckRunner


class ScriptedConfig(TcpConfig):
    measures: ClassVar[frozenset[str]] = TcpConfig.measures | {
        "backlog",
        "oldest_waiting_age",
        "workers",
    }


class Scripted(Check[ScriptedConfig]):
    """A check whose run does what the test says: the runner's contract, nothing else."""

    config_model = ScriptedConfig

    def __init__(self, config: ScriptedConfig, behaviour: Any) -> None:
        super().__init__(config)
        self.behaviour = behaviour

    async def run(self) -> Report:
        result: Report = await self.behaviour()
        return result


def runner(behaviour: Any, **fields: Any) -> CheckRunner:
    raw = {"name": "api", "type": "tcp", "host": "127.0.0.1", "port": 9, "timeout": 0.3, **fields}
    return CheckRunner(Scripted(ScriptedConfig.model_validate(raw), behaviour))


async def test_a_multi_line_failure_becomes_one_line() -> None:
    async def fail() -> Report:
        raise CheckFailed("Bad status line:\n  Expected HTTP/\n  ^")

    result = await runner(fail).run()
    assert (result.status, result.output) == (Status.FAIL, "Bad status line: Expected HTTP/ ^")


async def test_a_crashing_check_fails_in_words_without_its_class_name() -> None:
    async def crash() -> Report:
        raise KeyError("missing-field")

    result = await runner(crash).run()
    assert result.status is Status.FAIL
    assert result.output == "check crashed: 'missing-field'"
    assert "KeyError" not in result.output


async def test_a_hung_check_fails_after_exactly_its_timeout() -> None:
    async def hang() -> Report:
        await asyncio.sleep(10)
        return Report()

    result = await runner(hang).run()
    assert result.output == "timed out after 300ms"
    assert 0.3 <= result.response_time < 1.0


async def test_fail_beats_warn_and_breaches_are_grouped_per_component() -> None:
    async def queues() -> Report:
        return Report(
            samples=[
                Sample("backlog", 1240, Unit.COUNT, "ai-assistant"),
                Sample("oldest_waiting_age", 432, Unit.SECONDS, "ai-assistant"),
                Sample("workers", 0, Unit.COUNT, "email"),
            ]
        )

    result = await runner(
        queues,
        warn={"backlog": 1000, "oldest_waiting_age": "5m", "workers": "<2"},
        fail={"workers": "<1"},
    ).run()
    assert result.status is Status.FAIL
    assert result.output == (
        "email workers 0 < 1; ai-assistant: backlog 1,240 > 1,000, oldest_waiting_age 7m12s > 5m"
    )


async def test_a_check_that_measures_its_own_error_rate_is_judged_on_that_one_only() -> None:
    async def app_errors() -> Report:
        return Report(samples=[Sample("error_rate", 12.0, Unit.COUNT)])  # the app's, per minute

    result = await runner(app_errors, warn={"error_rate": 10}).run()
    rates = [o for o in result.observations if o.measure == "error_rate"]
    assert [(o.value, o.status) for o in rates] == [(12.0, Status.WARN)]
    assert result.output == "error_rate 12 > 10"
