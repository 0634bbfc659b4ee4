"""Verdicts that are true by default (issue 21): a young database is not degraded, an outage
alert names its cause, a user's own limits never silence the built-in ones.

Each measured case runs on real parts: throw-away PostgreSQL and Redis started seconds
before the check (so nothing depends on the age or contents of the machine's servers),
an app that refuses connections on a free port, the real agent and the Slack stand-in.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from probe.checks.http import HttpConfig
from probe.checks.postgres import PostgresConfig
from probe.checks.redis import RedisConfig
from probe.contract.notification import Alert, Kind, Notification
from probe.contract.plugins import CHECK_TYPES, check_config_model
from probe.core.model import Status
from probe.core.redact import Redactor
from probe.engine.runner import CheckRunner
from probe.notifiers.alertmanager import build_alerts
from probe.notifiers.webhook import build_body
from tests.alert_helpers import T0, engine_for
from tests.bullmq_fixtures import (  # noqa: F401 - fixtures
    SCHEDULER,
    bullmq_config,
    check_runner,
    outcome_url,
)
from tests.cli_helpers import run_cli
from tests.conftest import Runners, free_port
from tests.deep_servers import RedisServers
from tests.node_bullmq import run_node
from tests.pg_cluster import Cluster

pytest_plugins = ["tests.deep_servers"]

# The shipped config's limits on the app check (probe/default.yaml).
APP_LIMITS: dict[str, Any] = {
    "warn": {"response_time": "1s", "error_rate": "20%"},
    "fail": {"error_rate": "50%"},
}


@pytest.fixture
def fresh_pg() -> Iterator[Cluster]:
    """A PostgreSQL cluster started seconds ago, all its own."""
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


# ---------------------------------------------------------------- a young server is healthy


async def test_postgres_started_seconds_ago_passes_with_every_default(
    runners: Runners, fresh_pg: Cluster
) -> None:
    runner = runners.of(
        PostgresConfig.model_validate(
            {"name": "database", "type": "postgres", "dsn": fresh_pg.dsn()}
        )
    )
    result = await runner.run()

    uptime = next(o.value for o in result.observations if o.measure == "uptime")
    assert uptime is not None and uptime < 60  # young, and still no news
    assert result.status is Status.PASS, result.output
    assert result.output == ""


async def test_redis_started_seconds_ago_passes_with_every_default(
    runners: Runners, redis_servers: RedisServers
) -> None:
    port = redis_servers.start()
    runner = runners.of(
        RedisConfig.model_validate(
            {"name": "redis", "type": "redis", "url": f"redis://127.0.0.1:{port}/0"}
        )
    )
    result = await runner.run()

    assert result.status is Status.PASS, result.output
    assert next(o.value for o in result.observations if o.measure == "restarts") == 0


# ---------------------------------------------------------------- a user's limits keep the defaults


async def test_a_users_own_limits_keep_the_built_in_scheduler_warning(
    outcome_url: str,  # noqa: F811
) -> None:
    """`warn: {failure_ratio: 10%}` must not silence `schedulers_late`: the nightly billing
    run stopped and something has to make a sound."""
    await asyncio.to_thread(run_node, SCHEDULER, outcome_url, 20)
    stopped_at = time.time()
    mine = bullmq_config(
        outcome_url, ["billing"], schedule_grace="1s", warn={"failure_ratio": "10%"}
    )
    await asyncio.sleep(max(0.0, stopped_at + 2.5 - time.time()))
    async with check_runner(mine) as runner:
        late = await runner.run()

    found = {o.measure: o for o in late.observations if o.component == "billing"}
    assert found["schedulers_late"].value == 1
    assert found["schedulers_late"].threshold == "> 0"
    assert late.status is Status.WARN
    assert late.output == "billing schedulers_late 1 > 0 (usage-aggregation)"

    # Only naming it with `off` switches the default off.
    switched_off = bullmq_config(
        outcome_url,
        ["billing"],
        schedule_grace="1s",
        warn={"failure_ratio": "10%", "schedulers_late": "off"},
    )
    async with check_runner(switched_off) as runner:
        silenced = await runner.run()
    assert silenced.status is Status.PASS, silenced.output


# ---------------------------------------------------------------- the cause in every alert


def app_runner(runners: Runners, url: str, **limits: Any) -> CheckRunner:
    config = HttpConfig.model_validate(
        {"name": "app", "type": "http", "url": url, "timeout": "2s", **limits}
    )
    return runners.of(config)


async def run_and_observe(
    runner: CheckRunner, engine: Any, runs: int, start: float, step: float = 15.0
) -> list[Alert]:
    due: list[Alert] = []
    for i in range(runs):
        due += engine.observe("app", await runner.run(), start + i * step)
    return due


async def test_an_app_outage_alert_names_its_cause_with_the_shipped_limits(
    runners: Runners,
) -> None:
    port = free_port()  # nothing listens: connection refused
    runner = app_runner(runners, f"http://127.0.0.1:{port}/api/health/live", **APP_LIMITS)
    engine = engine_for(**{"for": {"warn": "5m", "fail": "1m"}})

    due = await run_and_observe(runner, engine, 8, T0)

    # One alert, on `up`, with the failure words first; the share of failed runs is
    # folded into it, not a second alert and not in place of the cause.
    assert [(a.kind, a.key, a.measure) for a in due] == [(Kind.FIRING, "app", "up")]
    assert due[0].summary == f"connection refused (127.0.0.1:{port}); error_rate 100% > 50%"
    note = Notification("botflow-probe", T0, tuple(due))
    [entry] = build_alerts(note, resend=60)
    cause = f"connection refused (127.0.0.1:{port})"
    assert entry["annotations"]["summary"].startswith(f"app: {cause}")
    assert cause in entry["annotations"]["description"]
    assert entry["labels"]["measure"] == "up"
    [sent] = build_body(note, Redactor([]))["alerts"]
    assert sent["summary"].startswith(cause) and sent["measure"] == "up"


async def test_the_tail_of_an_outage_is_not_a_second_alert(
    runners: Runners, aiohttp_server: Any
) -> None:
    port = free_port()
    runner = app_runner(runners, f"http://127.0.0.1:{port}/api/health/live", **APP_LIMITS)
    engine = engine_for(**{"for": {"warn": "5m", "fail": "1m"}})
    down = await run_and_observe(runner, engine, 12, T0)  # 3 minutes down

    async def live(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/api/health/live", live)
    await aiohttp_server(app, port=port)
    back = await run_and_observe(runner, engine, 30, T0 + 180)  # error_rate > 50% for a while

    assert [(a.kind, a.measure) for a in down] == [(Kind.FIRING, "up")]
    assert [(a.kind, a.measure) for a in back] == [(Kind.RESOLVED, "up")]


async def test_an_error_rate_on_its_own_names_the_last_failure(
    runners: Runners, aiohttp_server: Any
) -> None:
    """Every other request fails: too brief for `up` to fire, so the share of failed runs
    is the alert, and it says what the failures were."""
    count = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        return web.Response(status=502 if count % 2 else 200, text="upstream")

    app = web.Application()
    app.router.add_get("/live", flaky)
    server = await aiohttp_server(app)
    runner = app_runner(
        runners,
        f"http://127.0.0.1:{server.port}/live",
        warn={"error_rate": "20%"},
        fail={"error_rate": "90%"},
    )
    engine = engine_for(**{"for": {"warn": "2m", "fail": "1m"}})

    due = await run_and_observe(runner, engine, 20, T0)

    assert [(a.kind, a.measure) for a in due] == [(Kind.FIRING, "error_rate")]
    assert re.fullmatch(
        r"error_rate \d+% > 20% \(last failure: HTTP 502 \(expected 200-399\)\)",
        due[0].summary,
    ), due[0].summary


# ---------------------------------------------------------------- the defaults, written down

DOCS = Path(__file__).resolve().parent.parent / "docs" / "checks"


def test_every_default_limit_is_in_its_types_table_with_its_value() -> None:
    """Each type's page has a Default limits table row per defaulted measure, whose warn
    and fail cells are the code's; a type without defaults says so."""
    for type_name in CHECK_TYPES:
        model = check_config_model(type_name)
        page = (DOCS / f"{type_name}.md").read_text()
        defaulted = set(model.default_warn) | set(model.default_fail)
        if not defaulted:
            assert "default limits" in page.lower() or "Default limits" in page, type_name
            continue
        rows = {
            line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:4]]
            for line in page.splitlines()
            if line.startswith("| `")
        }
        for measure in defaulted:
            cells = rows.get(f"`{measure}`")
            assert cells is not None, f"{type_name}: no row for {measure}"
            for cell, limits in zip(cells, (model.default_warn, model.default_fail), strict=True):
                limit = limits.get(measure)
                if limit is not None:
                    assert cell.startswith(f"`{limit.text}`"), (type_name, measure, cell)


VERBOSE = """
checks:
  - { name: cache, type: redis, url: "redis://:redispass@cache:6379/0", enabled: false }
  - name: queues
    type: bullmq
    url: "redis://:redispass@cache:6379/0"
    queues: [billing, email]
    warn: { failure_ratio: 10%, events_lost: off }
    queue_overrides:
      billing: { warn: { backlog: 100 } }
    expect_schedulers:
      - { queue: billing, id: usage-aggregation, max_age: 25h }
"""


def test_validate_verbose_prints_each_effective_limit_and_where_it_came_from(
    write_config: Any,
) -> None:
    path = write_config(VERBOSE)
    outcome = run_cli("validate", "-v", "-c", str(path))

    assert outcome.code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    table = [re.split(r"\s{2,}", line.strip()) for line in lines[lines.index("limits:") + 1 :]]
    assert table[0] == ["CHECK", "LEVEL", "MEASURE", "LIMIT", "FROM"]
    rows = table[1:-1]
    # The disabled entry still counts for the key path: queues is checks[1].
    assert rows == [
        ["queues", "warn", "failure_ratio", "10%", "checks[1].warn.failure_ratio"],
        ["queues", "warn", "schedulers_late", "0", "default"],
        ["queues", "warn", "stalled_rate", "0", "default"],
        [
            "queues",
            "warn",
            "billing backlog",
            "100",
            "checks[1].queue_overrides.billing.warn.backlog",
        ],
        [
            "queues",
            "fail",
            "billing scheduler usage-aggregation last_success_age",
            "1d1h",
            "checks[1].expect_schedulers[0].max_age",
        ],
    ]
    assert lines[-1] == "valid: 1 checks (0 critical)"
    assert "redispass" not in outcome.stdout
