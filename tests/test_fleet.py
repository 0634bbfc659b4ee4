"""Three real `probe run` replicas of one config, one Redis check, one webhook receiver:
a fleet speaks with one voice, through a Redis lease, a PostgreSQL lease row, and the same
row through PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import FaultProxy, Mode
from tests.fleet_helpers import (
    LEASE,
    QUIET,
    Replica,
    ThrowAwayRedis,
    fleet_config,
    kinds,
    leader_among,
)
from tests.slack_receiver import SlackReceiver

pytest_plugins = ["tests.deep_servers"]


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


def leader_gauge(metrics: str) -> str:
    """The value of `probe_fleet_leader{fleet=...}` in a /metrics text."""
    line = next(x for x in metrics.splitlines() if x.startswith("probe_fleet_leader{"))
    return line.rsplit(" ", 1)[1]


@pytest.mark.timeout(90)  # three agents start, an outage comes and goes, then a quiet spell
async def test_an_outage_seen_by_three_replicas_is_told_once(
    replicas: list[Replica], checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> None:
    leader = await leader_among(replicas)
    gauges = [leader_gauge(await r.metrics()) for r in replicas]
    assert sorted(gauges) == ["0.0", "0.0", "1.0"]
    assert gauges[replicas.index(leader)] == "1.0"
    fleet = await replicas[0].fleet()
    assert fleet is not None
    assert list(fleet) == ["name", "leader", "this_agent", "is_leader", "backend"]
    assert fleet["name"].startswith("fleet-") and fleet["backend"] == "ok"
    assert fleet["leader"] == (await leader.fleet() or {})["this_agent"]
    assert fleet["this_agent"].startswith("replica@")

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


@pytest.mark.timeout(120)
async def test_without_its_lease_store_the_fleet_keeps_quiet_then_tells_once(
    tmp_path: Path, checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> None:
    store = ThrowAwayRedis()
    store.start()
    config = fleet_config(tmp_path, f"redis://127.0.0.1:{store.port}/0", checked_redis.port,
                          receiver.port)  # fmt: skip
    replicas = [Replica(config, i) for i in (1, 2, 3)]
    try:
        for replica in replicas:
            await replica.start()
        await leader_among(replicas)

        store.stop()
        await asyncio.sleep(LEASE + 1)  # every lease has run out
        fleets = [await r.fleet() for r in replicas]
        assert [f["is_leader"] for f in fleets if f] == [False, False, False]
        assert all(f and f["backend"].startswith("unreachable: connection refused") for f in fleets)
        assert [leader_gauge(await r.metrics()) for r in replicas] == ["0.0"] * 3

        checked_redis.stop()  # an outage nobody may tell twice: nobody tells it yet
        await asyncio.sleep(4)
        assert receiver.delivered == []
        for replica in replicas:
            lines = [x for x in replica.logged().splitlines() if "lease store" in x]
            assert len(lines) == 1, lines  # one line per outage, not one per retry
            assert "unreachable: connection refused" in lines[0]
            assert "does not notify" in lines[0]

        store.start()  # back, empty: the new leader tells what is still firing, once
        await receiver.wait_for(1, timeout=20)
        checked_redis.start()
        await receiver.wait_for(2, timeout=20)
        await asyncio.sleep(QUIET)
        assert kinds(receiver) == ["firing", "resolved"]
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        store.close()


@contextlib.asynccontextmanager
async def proxied_fleet(
    tmp_path: Path, redis_server: tuple[str, int], checked: int, receiver: int
) -> AsyncIterator[list[tuple[Replica, FaultProxy]]]:
    """Three replicas, each reaching the Redis lease store through a FaultProxy of its own."""
    proxies = [await FaultProxy(*redis_server).start() for _ in range(3)]
    config = fleet_config(tmp_path, "${FLEET_BACKEND}", checked, receiver)
    replicas = [
        Replica(config, i, {"FLEET_BACKEND": f"redis://127.0.0.1:{p.port}/0"})
        for i, p in enumerate(proxies, 1)
    ]
    try:
        for replica in replicas:
            await replica.start()
        yield list(zip(replicas, proxies, strict=True))
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        for proxy in proxies:
            await proxy.close()


@pytest.mark.timeout(120)
async def test_a_leader_cut_off_from_the_store_steps_down_before_its_successor_leads(
    tmp_path: Path, redis_server: tuple[str, int], checked_redis: ThrowAwayRedis,
    receiver: SlackReceiver,
) -> None:  # fmt: skip
    async with proxied_fleet(tmp_path, redis_server, checked_redis.port, receiver.port) as fleet:
        replicas = [r for r, _ in fleet]
        leader = await leader_among(replicas)
        dict(fleet)[leader].set(Mode.BLACKHOLE)  # a partition: no answer at all
        cut_at = time.monotonic()
        others = [r for r in replicas if r is not leader]
        successor = await leader_among(others, timeout=4 * LEASE)
        failover = time.monotonic() - cut_at
        assert failover <= 2 * LEASE, f"took {failover:.1f}s"
        old: dict[str, Any] | None = await leader.fleet()
        assert old is not None and old["is_leader"] is False
        assert old["backend"] == "unreachable: no answer within 1s"  # lease/3
        assert leader_gauge(await leader.metrics()) == "0.0"
        assert (await successor.fleet() or {})["is_leader"] is True

        checked_redis.stop()  # the cut-off replica sees it too, and must keep quiet
        await receiver.wait_for(1, timeout=20)
        checked_redis.start()
        await receiver.wait_for(2, timeout=20)
        await asyncio.sleep(QUIET)
        assert kinds(receiver) == ["firing", "resolved"]
        print(f"partition failover {failover:.2f}s")


@pytest.mark.timeout(120)
async def test_the_resolve_a_cut_off_leader_owed_is_sent_by_its_successor(
    tmp_path: Path, redis_server: tuple[str, int], checked_redis: ThrowAwayRedis,
    receiver: SlackReceiver,
) -> None:  # fmt: skip
    async with proxied_fleet(tmp_path, redis_server, checked_redis.port, receiver.port) as fleet:
        replicas = [r for r, _ in fleet]
        leader = await leader_among(replicas)
        checked_redis.stop()
        await receiver.wait_for(1, timeout=20)
        await asyncio.sleep(2)  # every engine fired

        # Cut off just as the outage ends: the leader cannot record (so cannot send) the
        # resolve, and the others' engines resolve while they still follow.
        dict(fleet)[leader].set(Mode.BLACKHOLE)
        checked_redis.start()
        others = [r for r in replicas if r is not leader]
        await leader_among(others, timeout=4 * LEASE)
        resolved = (await receiver.wait_for(2, timeout=20))[1]
        await asyncio.sleep(QUIET)
        assert kinds(receiver) == ["firing", "resolved"]
        assert resolved["alerts"][0]["check"] == "cache"
        assert "connection refused" in resolved["alerts"][0]["summary"]  # the words it fired with


def history_writes(metrics: str) -> float:
    line = next(
        x for x in metrics.splitlines() if x.startswith('probe_history_writes_total{result="ok"}')
    )
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.timeout(60)
async def test_only_the_leader_writes_a_shared_history(
    tmp_path: Path, redis_url: str, pg_dsn: str, checked_redis: ThrowAwayRedis,
    receiver: SlackReceiver,
) -> None:  # fmt: skip
    config = fleet_config(tmp_path, redis_url, checked_redis.port, receiver.port)
    config.write_text(config.read_text().replace('history: "off"', f'history: "{pg_dsn}"'))
    replicas = [Replica(config, i) for i in (1, 2)]
    try:
        for replica in replicas:
            await replica.start()
        leader = await leader_among(replicas)
        follower = next(r for r in replicas if r is not leader)
        await asyncio.sleep(4)  # a few runs and flushes
        assert history_writes(await leader.metrics()) >= 2
        assert history_writes(await follower.metrics()) == 0
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
