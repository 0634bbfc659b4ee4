"""`depends_on`: one outage, one page; `blocked_by` in verbose /health; config errors."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe.agent import Agent
from probe.contract.config import ConfigError, alerts_from_dict, load_config
from probe.contract.config.source import DEFAULT_CONFIG_PATH
from probe.contract.notification import Kind
from probe.core.model import Status
from probe.engine.alerts.engine import AlertEngine
from tests.alert_helpers import HEALTHY, REFUSED, T0, no_workers, result
from tests.app_workers import Workers
from tests.faultproxy import FaultProxy, Mode
from tests.slack_receiver import SlackReceiver

DEPENDS = {"queues": ["redis"], "redis": ["network"]}


def engine(**alerts: Any) -> AlertEngine:
    settings = {"for": {"warn": "5m", "fail": "30s"}, "resolve_after": 2, **alerts}
    return AlertEngine(alerts_from_dict(settings), depends_on=DEPENDS)


def run(e: AlertEngine, steps: list[tuple[str, Any]], start: float) -> list[tuple[float, Any]]:
    """Feed (check, result) pairs 5 s apart; (time, alert) for each alert due."""
    due = []
    for i, (check, res) in enumerate(steps):
        now = start + i * 5
        due += [(now, a) for a in e.observe(check, res, now)]
    return due


# ---------------------------------------------------------------- engine, fake clock


def test_a_failing_parent_opens_no_alerts_for_its_children_nested() -> None:
    e = engine()
    outage = [("network", REFUSED), ("redis", REFUSED), ("queues", REFUSED)] * 10
    due = run(e, outage, T0)
    assert [(a.check, a.measure) for _, a in due] == [("network", "up")]
    assert e.blocked_by("queues") == "network" and e.blocked_by("redis") == "network"
    assert {k[0] for k in e.states} == {"network"}


def test_a_child_failing_on_its_own_while_its_parent_passes_alerts() -> None:
    e = engine()
    due = run(e, [("redis", HEALTHY), ("queues", no_workers())] * 10, T0)
    assert [(a.key, a.measure, a.kind) for _, a in due] == [
        ("queues/ai-assistant", "workers", Kind.FIRING)
    ]
    assert e.blocked_by("queues") is None


def test_open_child_alerts_stay_open_while_blocked_and_still_resolve() -> None:
    e = engine()
    run(e, [("redis", HEALTHY), ("queues", no_workers())] * 10, T0)  # queues firing
    blocked = run(
        e, [("redis", REFUSED), ("queues", REFUSED), ("queues", no_workers())] * 10, T0 + 50
    )
    assert [(a.check, a.measure) for _, a in blocked] == [("redis", "up")]
    assert e.firing_counts()["critical"] == 2  # redis, and the queue that was already open

    # The workers come back while Redis is still failing: the open alert resolves.
    healthy_queue = result(Status.PASS)
    resolved = run(e, [("redis", REFUSED), ("queues", healthy_queue)] * 2, T0 + 200)
    assert [(a.check, a.kind) for _, a in resolved] == [("queues", Kind.RESOLVED)]


def test_a_blocked_child_starts_its_own_for_again_when_the_parent_is_back() -> None:
    e = engine()
    run(e, [("redis", REFUSED), ("queues", REFUSED)] * 20, T0)  # 100 s of outage
    assert ("queues", "", "up") not in e.states
    # Redis is back; queues keeps failing on its own: it needs its own 30 s of failing.
    after = run(e, [("redis", HEALTHY), ("queues", REFUSED)] * 8, T0 + 100)
    assert [(t - T0 - 100, a.check, a.kind) for t, a in after] == [
        (10, "redis", Kind.RESOLVED),
        (35, "queues", Kind.FIRING),
    ]


def test_a_child_alert_due_before_its_parent_failed_is_taken_back() -> None:
    e = engine(**{"for": {"fail": "0s"}})
    child = e.observe("queues", REFUSED, T0)  # the queue check happened to run first
    assert [a.check for a in child] == ["queues"]
    parent = e.observe("redis", REFUSED, T0 + 1)
    assert e.inhibit([*child, *parent]) == parent
    assert ("queues", "", "up") not in e.states


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("checks", "problem"),
    [
        (
            "[{name: queues, type: tcp, host: h, port: 1, depends_on: [redis]}]",
            "checks[0].depends_on: no check named 'redis'",
        ),
        (
            "[{name: a, type: tcp, host: h, port: 1, depends_on: [a]}]",
            "checks[0].depends_on: a check cannot depend on itself",
        ),
        (
            "[{name: a, type: tcp, host: h, port: 1, depends_on: [b]},"
            " {name: b, type: tcp, host: h, port: 1, depends_on: [c]},"
            " {name: c, type: tcp, host: h, port: 1, depends_on: [a]}]",
            "checks[0].depends_on: dependency cycle a -> b -> c -> a",
        ),
        (
            "[{name: ext, type: group, checks: ["
            "{name: pay, type: tcp, host: h, port: 1, depends_on: [ext]}]}]",
            "checks[0].checks[0].depends_on: cannot depend on 'ext', its own group or member "
            "(a group fails when a member does)",
        ),
    ],
)
def test_bad_dependencies_are_config_errors_naming_the_key(
    write_config: Any, checks: str, problem: str
) -> None:
    path = write_config(f"checks: {checks}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: {problem}"]


def test_the_default_config_makes_queues_depend_on_redis() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, environ={})
    [queues] = [c for c in config.checks if c.name == "queues"]
    assert queues.depends_on == ["redis"]


# ---------------------------------------------------------------- end to end


def default_entries(proxy_url: str) -> list[dict[str, Any]]:
    """The default config's redis and queues checks, as shipped, pointed at the proxy."""
    raw = yaml.safe_load(Path(DEFAULT_CONFIG_PATH).read_text())
    entries = [dict(c) for c in raw["checks"] if c["name"] in ("redis", "queues")]
    for entry in entries:
        entry.update(url=proxy_url, interval="1s", timeout="500ms")
        entry.pop("prefix", None)  # ${BULLMQ_PREFIX:-bull}: the default, bull
    return entries


def verbose_health(port: int) -> dict[str, Any]:
    """The verbose /health body, whatever the status code (503 while Redis is down)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health?verbose=1", timeout=5) as r:
            body: dict[str, Any] = json.load(r)
    except urllib.error.HTTPError as unhealthy:
        body = json.load(unhealthy)
        unhealthy.close()
    return body


async def test_a_redis_outage_is_one_slack_message_and_queues_show_blocked_by(
    write_config: Any,
    redis_proxy: FaultProxy,
    redis_url: str,
    receiver: SlackReceiver,
    workers: Workers,
) -> None:
    config = {
        "agent": {"name": "botflow-probe", "listen": "127.0.0.1:0"},
        "checks": default_entries(f"redis://127.0.0.1:{redis_proxy.port}/0"),
        "alerts": {
            "for": {"warn": "5m", "fail": "0s"},
            "resolve_after": 1,
            "group_wait": "2s",
            "notifiers": [{"type": "slack", "webhook_url": receiver.webhook_url}],
        },
    }
    path: Path = write_config(yaml.safe_dump(config))
    await workers.start()  # the app's workers, straight to Redis: the queues are healthy
    agent = Agent(load_config(path), path)
    await agent.start()
    try:
        for _ in range(50):
            body = await asyncio.to_thread(verbose_health, agent.port)
            if [c["status"] for c in body["checks"]] == ["pass", "pass"]:
                break
            await asyncio.sleep(0.2)
        assert [c["status"] for c in body["checks"]] == ["pass", "pass"], body

        redis_proxy.set(Mode.REFUSE)
        [message] = await receiver.wait_for(1, timeout=10)
        await asyncio.sleep(3)  # several runs of both checks and group_waits
        assert len(receiver.received) == 1
        text = str(message["text"]).splitlines()
        assert text[0] == "[botflow-probe: 1 critical]"
        assert text[1].startswith("CRITICAL redis: connection ")  # closed or refused
        body = await asyncio.to_thread(verbose_health, agent.port)
        queues = next(c for c in body["checks"] if c["name"] == "queues")
        assert queues["status"] == "fail" and queues["blocked_by"] == "redis"
        assert "blocked_by" not in next(c for c in body["checks"] if c["name"] == "redis")

        redis_proxy.set(Mode.FORWARD)
        resolved = (await receiver.wait_for(2, timeout=10))[1]
        await asyncio.sleep(2)
        assert len(receiver.received) == 2
        assert str(resolved["text"]).splitlines()[0] == "[botflow-probe: 1 resolved]"
        assert "RESOLVED redis: connection " in resolved["text"]
        body = await asyncio.to_thread(verbose_health, agent.port)
        assert all("blocked_by" not in c for c in body["checks"])
    finally:
        await agent.stop()
