"""Three real `probe run` replicas of one config, one Redis check, one webhook receiver:
a fleet speaks with one voice, through a Redis lease, a PostgreSQL lease row, and the same
row through PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fleet_helpers import PgBouncer, Replica, ThrowAwayRedis, leader_among
from tests.slack_receiver import SlackReceiver

LEASE = 3.0
QUIET = 3.0  # seconds to keep listening for a duplicate


@pytest.fixture
def checked_redis() -> Iterator[ThrowAwayRedis]:
    server = ThrowAwayRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
def pgbouncer(pg_dsn: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(urlsplit(pg_dsn).path.lstrip("/"))
    bouncer.start()
    yield bouncer
    bouncer.close()


@pytest.fixture(params=["redis", "postgres", "pgbouncer"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    dsn: str = request.getfixturevalue("pg_dsn")
    if request.param == "postgres":
        return dsn
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return f"postgresql://postgres@127.0.0.1:{bouncer.port}{urlsplit(dsn).path}"


def fleet_config(tmp_path: Path, backend: str, redis_port: int, receiver_port: int) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"""
agent:
  name: replica
  listen: 127.0.0.1:${{PROBE_PORT}}
  history: "off"
  fleet: {{name: "fleet-{uuid.uuid4().hex[:8]}", backend: "{backend}", lease: {LEASE:g}s}}
defaults: {{interval: 1s, timeout: 500ms}}
checks:
  - {{name: cache, type: redis, url: "redis://127.0.0.1:{redis_port}/0", critical: true}}
alerts:
  for: {{warn: 1s, fail: 1s}}
  resolve_after: 2
  group_wait: 0s
  repeat: 0
  notifiers:
    - {{type: webhook, url: "http://127.0.0.1:{receiver_port}/services/fleet-hook"}}
"""
    )
    return path


@pytest.fixture
async def replicas(
    tmp_path: Path, backend: str, checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> AsyncIterator[list[Replica]]:
    config = fleet_config(tmp_path, backend, checked_redis.port, receiver.port)
    started = [Replica(config, i) for i in (1, 2, 3)]
    for replica in started:
        await replica.start()
    yield started
    await asyncio.gather(*(r.stop() for r in started))


def messages(receiver: SlackReceiver) -> list[tuple[str, str]]:
    """(kind, summary) of every alert delivered, in order."""
    return [(a["kind"] if "kind" in a else b["kind"], a["summary"])
            for b in receiver.delivered for a in b["alerts"]]  # fmt: skip


def kinds(receiver: SlackReceiver) -> list[str]:
    return [body["kind"] for body in receiver.delivered]


@pytest.mark.timeout(90)  # three agents start, an outage comes and goes, then a quiet spell
async def test_an_outage_seen_by_three_replicas_is_told_once(
    replicas: list[Replica], checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> None:
    leader = await leader_among(replicas)
    gauges = [await r.metrics() for r in replicas]
    lines = [next(x for x in g.splitlines() if x.startswith("probe_fleet_leader{")) for g in gauges]
    assert sorted(line.rsplit(" ", 1)[1] for line in lines) == ["0.0", "0.0", "1.0"]
    assert lines[replicas.index(leader)].endswith(" 1.0")

    checked_redis.stop()
    await receiver.wait_for(1, timeout=20)
    await asyncio.sleep(2)  # every replica's engine has fired by now
    checked_redis.start()
    await receiver.wait_for(2, timeout=20)
    await asyncio.sleep(QUIET)

    assert kinds(receiver) == ["firing", "resolved"]
    firing, resolved = receiver.delivered
    assert firing["alerts"][0]["check"] == "cache"
    assert "connection refused" in firing["alerts"][0]["summary"]
    assert resolved["alerts"][0]["measure"] == firing["alerts"][0]["measure"]


@pytest.mark.timeout(120)
async def test_a_killed_leader_is_replaced_and_the_new_one_resolves_without_refiring(
    replicas: list[Replica], checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> None:
    leader = await leader_among(replicas)
    checked_redis.stop()
    await receiver.wait_for(1, timeout=20)
    await asyncio.sleep(2)

    leader.kill()  # SIGKILL: no release, the lease has to run out
    killed_at = time.monotonic()
    others = [r for r in replicas if r is not leader]
    successor = await leader_among(others, timeout=4 * LEASE)
    failover = time.monotonic() - killed_at
    assert failover <= 2 * LEASE, f"took {failover:.1f}s"
    fleet: dict[str, Any] | None = await successor.fleet()
    assert fleet is not None and fleet["leader"] == fleet["this_agent"]

    await asyncio.sleep(2)  # the new leader has seen the outage too: still no second firing
    assert kinds(receiver) == ["firing"]
    checked_redis.start()
    await receiver.wait_for(2, timeout=20)
    await asyncio.sleep(QUIET)
    assert kinds(receiver) == ["firing", "resolved"]
    print(f"failover {failover:.2f}s")
