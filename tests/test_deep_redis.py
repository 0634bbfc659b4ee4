"""The redis check's deep measures (docs/checks/redis.md), each against a throw-away redis-server
configured for the case: evicting policies with and without BullMQ on the same Redis,
CONFIG refused, a replica whose primary died, a failed BGSAVE, maxclients reached."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from probe.checks.bullmq import BullMQConfig
from probe.checks.redis import RedisConfig
from probe.contract.config import load_config
from probe.contract.plugin import CheckConfig
from probe.core.model import CheckResult, Observation, Status
from tests.conftest import Runners
from tests.deep_servers import RedisServers, wait_until
from tests.faultproxy import FaultProxy

pytest_plugins = ["tests.deep_servers"]


def redis_config(port: int, **fields: Any) -> RedisConfig:
    return RedisConfig.model_validate(
        {"name": "redis", "type": "redis", "url": f"redis://127.0.0.1:{port}/0", "timeout": 2,
         **fields}
    )  # fmt: skip


def bullmq_config(url: str, name: str = "queues") -> BullMQConfig:
    return BullMQConfig.model_validate(
        {"name": name, "type": "bullmq", "url": url, "queues": ["email"]}
    )


def linked(config: RedisConfig, *others: CheckConfig) -> RedisConfig:
    """What the config loader does after validation: each check sees all the others."""
    return config.linked([config, *others])


def obs(result: CheckResult, measure: str) -> Observation:
    found = [o for o in result.observations if o.measure == measure]
    assert found, f"no {measure} in {[o.measure for o in result.observations]}"
    return found[0]


def fill(redis_servers: RedisServers, port: int) -> int:
    """Writes 10 KB values until Redis has evicted some; the number evicted."""
    client = redis_servers.client(port)
    for i in range(2000):
        client.set(f"fill:{i}", "x" * 10_000)
        if i % 50 == 49 and int(client.info("stats")["evicted_keys"]):
            break
    evicted = int(client.info("stats")["evicted_keys"])
    client.close()
    return evicted


# ---------------------------------------------------------------- eviction policy


async def test_allkeys_lru_warns_and_evicted_keys_are_counted_per_window(
    runners: Runners, redis_servers: RedisServers
) -> None:
    port = redis_servers.start("--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru")
    runner = runners.of(linked(redis_config(port, warn={"evicted_keys": 0})))
    first = await runner.run()
    evicted = fill(redis_servers, port)
    second = await runner.run()

    assert first.status is Status.WARN
    assert first.output.startswith("eviction_policy 1 > 0 (maxmemory-policy allkeys-lru")
    assert obs(first, "eviction_policy").note == (
        "maxmemory-policy allkeys-lru, from CONFIG GET; keys are evicted when memory runs out"
    )
    assert obs(first, "evicted_keys").value is None  # the first run has no verdict
    assert evicted > 0
    assert second.output == f"{first.output}; evicted_keys {evicted:,} > 0"
    assert re.fullmatch(r"in the last \S+", obs(second, "evicted_keys").note)


async def test_allkeys_lru_fails_when_a_bullmq_check_uses_the_same_redis(
    runners: Runners, redis_servers: RedisServers, write_config: Any
) -> None:
    port = redis_servers.start("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    other = redis_servers.start()
    path = write_config(
        f"""
checks:
  - {{ name: redis, type: redis, url: "redis://127.0.0.1:{port}/0", critical: true }}
  - {{ name: queues, type: bullmq, url: "redis://127.0.0.1:{port}/2", queues: [email] }}
"""
    )
    from_yaml = load_config(path, environ={}).checks[0]
    assert isinstance(from_yaml, RedisConfig)
    shared = await runners.of(from_yaml).run()
    # The same server is the same eviction policy, whatever the db; another server is not.
    elsewhere = linked(
        redis_config(port, name="elsewhere"),
        bullmq_config(f"redis://127.0.0.1:{other}/0"),
    )
    apart = await runners.of(elsewhere).run()

    assert from_yaml.bullmq_checks == ("queues",)
    assert shared.status is Status.FAIL
    assert shared.output.startswith("eviction_policy 1 > 0 (maxmemory-policy allkeys-lru")
    assert "BullMQ loses jobs" in shared.output
    assert obs(shared, "eviction_policy").note == (
        "maxmemory-policy allkeys-lru, from CONFIG GET; bullmq check queues uses this "
        "Redis: BullMQ loses jobs when keys are evicted and needs noeviction"
    )
    assert elsewhere.bullmq_checks == ()
    assert apart.status is Status.WARN


async def test_noeviction_passes_beside_bullmq(
    runners: Runners, redis_servers: RedisServers
) -> None:
    port = redis_servers.start("--maxmemory", "64mb")
    url = f"redis://127.0.0.1:{port}"
    result = await runners.of(linked(redis_config(port), bullmq_config(url))).run()

    assert result.status is Status.PASS
    assert obs(result, "eviction_policy").value == 0
    assert obs(result, "eviction_policy").note == "maxmemory-policy noeviction, from CONFIG GET"


async def test_config_refused_reads_the_policy_from_info(
    runners: Runners, redis_servers: RedisServers
) -> None:
    # Managed Redis often refuses CONFIG; INFO still says the policy.
    port = redis_servers.start(
        "--rename-command", "CONFIG", "", "--maxmemory-policy", "volatile-lru"
    )
    config = linked(redis_config(port), bullmq_config(f"redis://127.0.0.1:{port}/1"))
    result = await runners.of(config).run()

    assert result.status is Status.FAIL
    assert result.output.startswith("eviction_policy 1 > 0 (maxmemory-policy volatile-lru")
    assert obs(result, "eviction_policy").note.startswith(
        "maxmemory-policy volatile-lru, from INFO (CONFIG GET refused); bullmq check queues"
    )


def test_linked_flag_is_not_a_config_key(write_config: Any) -> None:
    from probe.contract.config import ConfigError

    path = write_config(
        "checks:\n  - { name: r, type: redis, url: 'redis://h/0', _bullmq_checks: [x] }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == [f"{path}: checks[0]._bullmq_checks: unknown key"]


# ---------------------------------------------------------------- persistence, replicas


async def test_failed_bgsave_fails_persistence(
    runners: Runners, redis_servers: RedisServers
) -> None:
    # /proc takes no new files, even from root: every save fails there.
    port = redis_servers.start("--dir", "/proc")
    admin = redis_servers.client(port)
    admin.set("unsaved", "1")
    admin.bgsave()
    wait_until(
        lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "err",
        what="the BGSAVE to fail",
    )
    admin.close()
    result = await runners.of(linked(redis_config(port))).run()

    assert result.status is Status.FAIL
    assert result.output.startswith("persistence 1 > 0 (last RDB save failed")
    assert obs(result, "persistence").note == "last RDB save failed (1 changes not saved)"


async def test_replica_whose_primary_died_fails_replica_link(
    runners: Runners, redis_servers: RedisServers
) -> None:
    primary = redis_servers.start("--repl-diskless-sync-delay", "0")
    replica = redis_servers.start("--replicaof", "127.0.0.1", str(primary))
    watch = redis_servers.client(replica)
    wait_until(lambda: watch.info("replication")["master_link_status"] == "up", what="the link")
    runner = runners.of(linked(redis_config(replica)))
    linked_up = await runner.run()
    redis_servers.stop(primary)
    wait_until(lambda: watch.info("replication")["master_link_status"] == "down", what="down")
    watch.close()
    down = await runner.run()

    assert linked_up.status is Status.PASS
    assert obs(linked_up, "replica_link").value == 0
    assert obs(linked_up, "replica_link").note == f"up to primary 127.0.0.1:{primary}"
    assert down.status is Status.FAIL
    assert re.fullmatch(r"replica_link \d+s > 0ms \(down: no link to primary .*\)", down.output)
    assert obs(down, "replica_link").note == f"down: no link to primary 127.0.0.1:{primary}"


async def test_a_primary_has_no_replica_link(runners: Runners, redis_servers: RedisServers) -> None:
    result = await runners.of(linked(redis_config(redis_servers.start()))).run()

    assert "replica_link" not in [o.measure for o in result.observations]
    assert obs(result, "persistence").value == 0


# ---------------------------------------------------------------- clients


async def test_blocked_clients_are_reported_next_to_clients_not_alerted_on(
    runners: Runners, redis_servers: RedisServers
) -> None:
    port = redis_servers.start()
    # What an idle BullMQ worker does all day.
    worker = aioredis.Redis(host="127.0.0.1", port=port)
    waiting = asyncio.ensure_future(worker.bzpopmin("bull:email:marker", timeout=5))
    admin = redis_servers.client(port)
    try:
        await asyncio.to_thread(
            wait_until, lambda: admin.info("clients")["blocked_clients"] == 1, 5, "BZPOPMIN"
        )
        result = await runners.of(linked(redis_config(port))).run()
    finally:
        admin.lpush("unused", 1)
        admin.zadd("bull:email:marker", {"0": 0})
        await asyncio.wait_for(waiting, 5)
        await worker.aclose()
        admin.close()

    assert result.status is Status.PASS
    clients = obs(result, "clients")
    assert clients.value == 3  # the worker, the admin, the check
    assert clients.note == (
        "blocked_clients 1 (waiting in blocking commands, as idle BullMQ workers do)"
    )


async def test_rejected_connections_are_counted_per_window(
    runners: Runners, redis_servers: RedisServers
) -> None:
    port = redis_servers.start("--maxclients", "1")
    runner = runners.of(linked(redis_config(port, warn={"rejected_connections": 0})))
    await runner.run()  # holds the one connection Redis allows
    with socket.create_connection(("127.0.0.1", port), timeout=2) as extra:
        extra.sendall(b"PING\r\n")
        refused = extra.recv(200)
    result = await runner.run()

    assert refused == b"-ERR max number of clients reached\r\n"
    assert result.status is Status.WARN
    assert result.output == "rejected_connections 1 > 0"


# ---------------------------------------------------------------- one round trip


async def test_every_measure_is_read_in_one_round_trip(
    runners: Runners,
    redis_servers: RedisServers,
    round_trips: Callable[[int], asyncio.Future[FaultProxy]],
) -> None:
    proxy = await round_trips(redis_servers.start("--maxmemory", "64mb"))
    runner = runners.of(linked(redis_config(proxy.port)))
    await runner.run()
    proxy.reset_counts()
    result = await runner.run()

    assert result.status is Status.PASS
    assert proxy.round_trips == 1
    assert [o.measure for o in result.observations] == [
        "response_time",
        "memory",
        "eviction_policy",
        "evicted_keys",
        "rejected_connections",
        "persistence",
        "clients",
        "restarts",
    ]


# ---------------------------------------------------------------- restarts


async def test_a_server_first_seen_young_passes_and_a_restart_seen_warns_for_its_window(
    runners: Runners, redis_servers: RedisServers
) -> None:
    port = redis_servers.start()
    runner = runners.of(redis_config(port, restart_window="2s"))

    young = await runner.run()  # seconds old: the stack was just deployed, no news
    assert young.status is Status.PASS, young.output
    assert obs(young, "restarts").value == 0
    await asyncio.to_thread(redis_servers.restart, port)

    after = await runner.run()
    assert after.status is Status.WARN
    assert re.fullmatch(
        r"restarts 1 > 0 \(restarted at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
        r"\((?:\d+ms|\d+(?:\.\d)?s) ago\), 1 in the last 2s\)",
        after.output,
    ), after.output
    await asyncio.sleep(2.1)
    later = await runner.run()
    assert later.status is Status.PASS, later.output
    assert obs(later, "restarts").value == 0
