"""Maintenance windows in a fleet, with real `probe run` replicas behind an imagined load
balancer, sharing them through Redis, PostgreSQL, and PostgreSQL through PgBouncer: a
window opened through one follower silences the leader, every replica's /health says so,
and a follower that never saw the request can close it."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import arun_cli
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

ADMIN = "fleet-admin-token-1"
ROUND = LEASE / 3


def admin_config(tmp_path: Path, backend: str, redis_port: int, receiver_port: int) -> Path:
    config = fleet_config(tmp_path, backend, redis_port, receiver_port)
    text = config.read_text().replace('history: "off"', f'history: "off"\n  admin_token: {ADMIN}')
    config.write_text(text)
    return config


def call(replica: Replica, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Blocking admin call (run it off the loop)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{replica.port}{path}", data=data, method=method
    )
    request.add_header("Authorization", f"Bearer {ADMIN}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def in_maintenance(replica: Replica) -> bool:
    _, body = await asyncio.to_thread(replica.get, "/health")
    flags = [c.get("maintenance", False) for c in json.loads(body)["checks"]]
    return flags == [True]


async def until_all(replicas: list[Replica], wanted: bool, timeout: float) -> float:
    """Seconds until every replica's /health says `maintenance` is `wanted`."""
    started = time.monotonic()
    while [await in_maintenance(r) for r in replicas] != [wanted] * len(replicas):
        if time.monotonic() - started > timeout:
            seen = [await in_maintenance(r) for r in replicas]
            raise AssertionError(f"maintenance {seen} after {timeout}s, wanted all {wanted}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
async def fleet(
    tmp_path: Path, backend: str, checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> AsyncIterator[list[Replica]]:
    config = admin_config(tmp_path, backend, checked_redis.port, receiver.port)
    started = [Replica(config, i) for i in (1, 2, 3)]
    for replica in started:
        await replica.start()
    yield started
    await asyncio.gather(*(r.stop() for r in started))


@pytest.mark.timeout(90)
async def test_a_window_opened_through_a_follower_silences_the_leader_until_closed_elsewhere(
    fleet: list[Replica], checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> None:
    leader = await leader_among(fleet)
    opener, closer = [r for r in fleet if r is not leader]
    opened = await arun_cli(
        "maintenance", "start", "-c", str(opener.config), "--url",
        f"http://127.0.0.1:{opener.port}", "--for", "10m", "--check", "cache",
        "--reason", "Redis 7.2 upgrade",
        env={"PROBE_PORT": str(opener.port)},
    )  # fmt: skip
    assert opened.code == 0, opened.stderr
    window_id = opened.stdout.split()[0]
    assert opened.stdout.strip() == f"{window_id}  maintenance for cache for 10m"
    took = await until_all(fleet, True, timeout=4 * ROUND)
    assert took <= 2 * ROUND + 0.5, f"took {took:.1f}s"  # within a couple of rounds

    checked_redis.stop()  # the planned work: longer than `for`, and nobody pages
    await asyncio.sleep(6)
    assert receiver.delivered == []
    assert all([await in_maintenance(r) for r in fleet])
    status, listed = await asyncio.to_thread(call, leader, "GET", "/api/v1/maintenance")
    assert status == 200
    assert [(w["id"], w["checks"], w["reason"], w["active"]) for w in listed["windows"]] == [
        (window_id, ["cache"], "Redis 7.2 upgrade", True)
    ]

    status, missing = await asyncio.to_thread(call, closer, "DELETE", "/api/v1/maintenance/nope")
    assert (status, missing["error"]) == (404, "no such maintenance window: nope")
    status, closed = await asyncio.to_thread(
        call, closer, "DELETE", f"/api/v1/maintenance/{window_id}"
    )
    assert status == 200, closed
    assert (closed["id"], closed["active"]) == (window_id, False)
    await until_all(fleet, False, timeout=4 * ROUND)

    # The outage outlasted the window: it is told now, once, by the leader alone.
    firing = (await receiver.wait_for(1, timeout=20))[0]
    await asyncio.sleep(QUIET)
    assert kinds(receiver) == ["firing"]
    assert firing["alerts"][0]["check"] == "cache"
    assert "connection refused" in firing["alerts"][0]["summary"]
    status, after = await asyncio.to_thread(call, opener, "GET", "/api/v1/maintenance")
    assert [(w["id"], w["active"]) for w in after["windows"]] == [(window_id, False)]
    logged = leader.logged()  # the leader's log says why nothing paged, and when it ended
    assert (
        f"maintenance window {window_id} opened for cache (shared by the fleet): "
        "Redis 7.2 upgrade" in logged
    )
    assert f"maintenance window {window_id} closed (shared by the fleet)" in logged


@pytest.mark.timeout(60)
async def test_a_replica_that_cannot_reach_the_fleet_store_refuses_and_changes_nothing(
    tmp_path: Path, checked_redis: ThrowAwayRedis, receiver: SlackReceiver
) -> None:
    store = ThrowAwayRedis()
    store.start()
    config = admin_config(tmp_path, f"redis://127.0.0.1:{store.port}/0", checked_redis.port,
                          receiver.port)  # fmt: skip
    replica = Replica(config, 1)
    try:
        await replica.start()
        await leader_among([replica])
        status, first = await asyncio.to_thread(
            call, replica, "POST", "/api/v1/maintenance", {"checks": ["cache"], "duration": "5m"}
        )
        assert status == 201, first

        store.stop()
        words = f"fleet store unreachable (connection refused (127.0.0.1:{store.port}))"
        status, refused = await asyncio.to_thread(
            call, replica, "POST", "/api/v1/maintenance", {"duration": "5m"}
        )
        assert (status, refused["error"]) == (503, f"{words}; nothing changed")
        status, refused = await asyncio.to_thread(
            call, replica, "DELETE", f"/api/v1/maintenance/{first['id']}"
        )
        assert (status, refused["error"]) == (503, f"{words}; nothing changed")
        cli = await arun_cli(
            "maintenance", "start", "-c", str(config), "--url",
            f"http://127.0.0.1:{replica.port}", "--for", "5m",
            env={"PROBE_PORT": str(replica.port)},
        )  # fmt: skip
        assert (cli.code, cli.stderr.strip()) == (
            1,
            f"probe maintenance: HTTP 503: {words}; nothing changed",
        )
        status, listed = await asyncio.to_thread(call, replica, "GET", "/api/v1/maintenance")
        # The copy it holds stays while the store is away: the first window, still open.
        assert [(w["id"], w["active"]) for w in listed["windows"]] == [(first["id"], True)]
        assert await in_maintenance(replica)
        assert "Traceback" not in replica.logged()
    finally:
        await replica.stop()
        store.close()
