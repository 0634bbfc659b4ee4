"""`probe check`: run every (or the named) enabled top-level check once, concurrently.

Reuses config, checks and the runner; not the scheduler, server, metrics or alerts.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence

from probe.contract.config import Config, ConfigError, load_config, resolve_path
from probe.contract.plugin import CheckConfig
from probe.core.logs import setup_logging
from probe.core.model import CheckResult, Health, Status
from probe.core.redact import Redactor
from probe.core.units import timed_out_after
from probe.engine.factory import build_runner
from probe.engine.health import overall
from probe.engine.runner import CheckRunner

EXIT_CODES = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.UNHEALTHY: 2}
USAGE_OR_CONFIG_ERROR = 3


class UnknownCheckError(ValueError):
    """`--only NAME` names no top-level check; the message lists the known names."""


def select_checks(config: Config, only: Sequence[str]) -> list[CheckConfig]:
    """Top-level checks in config order, or only the named ones (disabled checks are
    dropped by the config loader, so naming one is an unknown name)."""
    if not only:
        return list(config.checks)
    top_level = {c.name: c for c in config.checks}
    members = {m.name: c.name for c in config.checks for m in c.members()}
    for name in only:
        if name in top_level:
            continue
        known = ", ".join(top_level)
        if name in members:
            raise UnknownCheckError(
                f"--only: {name!r} is a member of group {members[name]!r}; "
                f"run the group with --only {members[name]} (top-level checks: {known})"
            )
        raise UnknownCheckError(f"--only: no check named {name!r} (known: {known})")
    return [c for c in config.checks if c.name in only]


def timed_out(overall_timeout: float, now: float) -> CheckResult:
    return CheckResult(
        status=Status.FAIL,
        response_time=overall_timeout,
        output=f"{timed_out_after(overall_timeout)} (--timeout)",
        observed_at=now,
    )


async def run_checks(
    checks: Sequence[CheckConfig], redactor: Redactor, overall_timeout: float | None = None
) -> dict[str, CheckResult]:
    """One result per check, in the given order; every check is closed afterwards."""
    runners: list[CheckRunner] = []
    try:
        for config in checks:
            runners.append(build_runner(config, redactor))
        tasks = [asyncio.create_task(runner.run()) for runner in runners]
        if tasks:
            await asyncio.wait(tasks, timeout=overall_timeout)
        results: dict[str, CheckResult] = {}
        for runner, task in zip(runners, tasks, strict=True):
            if task.done():
                results[runner.name] = task.result()
            else:
                task.cancel()
                assert overall_timeout is not None  # only an overall bound leaves tasks pending
                results[runner.name] = timed_out(overall_timeout, time.time())
        await asyncio.gather(*tasks, return_exceptions=True)
        return results
    finally:
        # Bounded by each check's timeout; a driver that fails to close changes no verdict.
        await asyncio.gather(*(runner.close() for runner in runners))


def main(config_arg: str | None, fmt: str, only: Sequence[str], timeout: float | None) -> int:
    from probe.cli import output

    path = resolve_path(config_arg)
    try:
        config = load_config(path)
        selected = select_checks(config, only)
    except ConfigError as exc:
        return _fail(fmt, exc.problems, "config error")
    except UnknownCheckError as exc:
        return _fail(fmt, [f"probe check: error: {exc}"], "usage error")

    redactor = Redactor(config.secrets())
    # Warnings from drivers as one plain line each: the runner logs check crashes with a
    # traceback for the agent's log, which is not for this command's user.
    setup_logging("plain", redactor, logging.WARNING)
    started = time.time()
    results = asyncio.run(run_checks(selected, redactor, timeout))
    now = time.time()
    entries = output.entries_for(selected, results, now)
    health = overall(entries)
    if fmt == "json":
        print(output.format_json(entries, config.agent.version, started, now))
    elif fmt == "nagios":
        print(output.format_nagios(entries, health, now))
    else:
        print(output.format_text(entries, health, now, now - started, output.use_color(sys.stdout)))
    return EXIT_CODES[health]


def _fail(fmt: str, problems: list[str], kind: str) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    if fmt == "nagios":
        from probe.cli.output import nagios_unknown

        print(nagios_unknown(kind, problems))
    return USAGE_OR_CONFIG_ERROR
