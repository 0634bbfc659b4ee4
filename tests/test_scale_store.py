"""The store renders a bounded number of times, lazily, and its bytes are the eager bodies'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probe.contract.config import Config, load_config
from probe.core.model import CheckResult, Observation, Status, Unit
from probe.engine import health
from probe.engine.store import RENDER_BURST, RENDERS_PER_SECOND, ResultStore
from tests.support import HandClock, Renders

CONFIG = """
agent: { name: scale, version: 3.1.4 }
defaults: { interval: 10s, timeout: 2s }
checks:
  - { name: database, type: tcp, host: 127.0.0.1, port: 1, critical: true }
  - { name: redis, type: tcp, host: 127.0.0.1, port: 2, critical: true }
  - { name: queues, type: tcp, host: 127.0.0.1, port: 3, depends_on: [redis] }
  - name: external_services
    type: group
    checks:
      - { name: paystack, type: tcp, host: 127.0.0.1, port: 4 }
      - { name: openai, type: tcp, host: 127.0.0.1, port: 5 }
  - { name: app, type: tcp, host: 127.0.0.1, port: 6 }
"""


START = 1_750_000_000.0


@pytest.fixture
def config(write_config: Any) -> Config:
    path: Path = write_config(CONFIG)
    return load_config(path)


@pytest.fixture
def clock() -> HandClock:
    return HandClock(START)


@pytest.fixture
def store(config: Config, clock: HandClock) -> ResultStore:
    return ResultStore(config, clock=clock)


def run(
    status: Status, clock: HandClock, output: str = "", ms: float = 12.0, **kw: Any
) -> CheckResult:
    return CheckResult(status, ms / 1000, output, clock.now, **kw)


def eager(store: ResultStore, clock: HandClock, verbose: bool = False) -> bytes:
    """The bodies as docs/endpoints.md defines them, built in one go from the same entries."""
    entries = store.entries(clock.now)
    body = health.health_body(entries, "3.1.4", START, clock.now, verbose=verbose)
    return health.dumps(body)


def feed_mixed(store: ResultStore, clock: HandClock) -> None:
    slow = Observation("", "response_time", 0.7, Unit.SECONDS, Status.WARN, "> 500ms")
    store.record("database", run(Status.PASS, clock, ms=15.4))
    store.record("redis", run(Status.FAIL, clock, "connection refused (127.0.0.1:2)"))
    store.record(
        "queues", run(Status.WARN, clock, "response_time 700ms > 500ms", observations=(slow,))
    )
    paystack = run(Status.FAIL, clock, "HTTP 503 (expected 200)")
    openai = run(Status.PASS, clock, "é ünïcode stays as it is")
    store.record(
        "external_services",
        run(
            Status.FAIL,
            clock,
            "paystack: HTTP 503",
            members=(("paystack", paystack), ("openai", openai)),
        ),
    )


def test_bodies_are_byte_for_byte_the_eager_ones(store: ResultStore, clock: HandClock) -> None:
    # Before any result, with a mix of statuses, then with a stale one.
    assert store.health.body == eager(store, clock)
    feed_mixed(store, clock)
    assert store.health.body == eager(store, clock)
    assert store.health.status_code == 503
    entries = store.entries(clock.now)
    assert store.ready.body == health.dumps(health.ready_body(entries, clock.now))
    assert store.ready.status_code == 503
    clock.now += 3 * 10 + 2 + 5  # database and the rest go stale; app never ran
    store.tick()
    assert store.health.body == eager(store, clock)
    assert b'"stale: last result 37s ago' in store.health.body


def test_verbose_is_rendered_only_when_asked_and_equals_the_eager_one(
    store: ResultStore, clock: HandClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = Renders(store, monkeypatch)
    feed_mixed(store, clock)
    assert store.health.body == eager(store, clock)
    assert renders.verbose == 0  # plain readers never pay for the verbose body
    verbose = store.health_verbose
    assert store.health_verbose is verbose  # cached until the next change
    assert renders.verbose == 1
    assert verbose.body == eager(store, clock, verbose=True)
    assert b'"blocked_by":"redis"' in verbose.body
    assert b'"members":[' in verbose.body
    clock.now += 1
    store.record("redis", run(Status.PASS, clock))
    renders.verbose = 0
    again = store.health_verbose
    assert renders.verbose == 1  # a change: built again, once
    assert again.body == eager(store, clock, verbose=True)
    assert b"blocked_by" not in again.body


def test_a_burst_of_results_renders_a_bounded_number_of_times(
    store: ResultStore, clock: HandClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = Renders(store, monkeypatch)
    before = renders.plain
    for i in range(1_000):
        store.record("app", run(Status.PASS, clock, ms=i))
        assert store.health.status_code in (200, 503)  # a reader after every result
    assert renders.plain - before <= RENDER_BURST
    # A second later the budget has refilled by RENDERS_PER_SECOND, and no more.
    clock.now += 1.0
    before = renders.plain
    for i in range(1_000):
        store.record("app", run(Status.PASS, clock, ms=i))
        _ = store.ready
    assert 1 <= renders.plain - before <= RENDERS_PER_SECOND
    # Once the burst is over, the next reader sees the last result.
    clock.now += 1.0
    store.record("app", run(Status.WARN, clock, "slow", ms=999))
    assert b'{"name":"app","status":"warn","responseTime":999,"output":"slow"}' in store.health.body


def test_results_with_no_reader_cost_no_render(
    store: ResultStore, clock: HandClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = Renders(store, monkeypatch)
    before = renders.plain
    for i in range(1_000):
        store.record("database", run(Status.PASS, clock, ms=i))
        store.tick()
    assert renders.plain == before
    assert b'"responseTime":999' in store.health.body
    assert renders.plain == before + 1


def test_heartbeat_keeps_live_current_without_rendering_checks(
    store: ResultStore, clock: HandClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = Renders(store, monkeypatch)
    before = renders.plain
    clock.now += 42
    store.tick()
    assert store.live.body == health.dumps(health.live_body(True, START, clock.now))
    assert renders.plain == before


def test_reload_renders_changed_criticality(
    store: ResultStore, clock: HandClock, config: Config, write_config: Any
) -> None:
    feed_mixed(store, clock)
    assert b'"name":"redis"' in store.ready.body
    reloaded = load_config(write_config(CONFIG.replace("port: 2, critical: true", "port: 2")))
    store.reconfigure(reloaded)
    assert store.ready.status_code == 200
    assert b'"name":"redis"' not in store.ready.body
    assert store.health.body == eager(store, clock)
