"""The redis check against a private real redis-server, directly and through a fault proxy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_sync

from probe.checks.redis import RedisConfig
from probe.contract.config import ConfigError, load_config
from probe.core.model import CheckResult, Status
from tests.conftest import MakeRunner, Runners, free_port
from tests.faultproxy import FaultProxy, Mode
from tests.support import settled

CANARY = "canary-Pw-5519"


@pytest.fixture
def make_runner(runners: Runners) -> MakeRunner:
    return runners.maker(RedisConfig, name="redis", type="redis", timeout=2)


@pytest.fixture
def admin(redis_server: tuple[str, int]) -> Iterator[redis_sync.Redis]:
    """A plain client to the private redis; undoes the settings tests change."""
    client = redis_sync.Redis(*redis_server, decode_responses=True)
    yield client
    client.config_set("maxmemory", 0)
    client.close()


def observed(result: CheckResult) -> dict[str, float | None]:
    return {o.measure: o.value for o in result.observations}


def probe_clients(admin: redis_sync.Redis) -> int:
    """Connections to db 0 other than the admin's own."""
    own = str(admin.client_id())
    return sum(1 for c in admin.client_list() if c["id"] != own and c.get("db") == "0")


async def test_healthy_redis_from_yaml_passes(
    write_config: Any, redis_url: str, runners: Runners
) -> None:
    path = write_config(
        f"checks:\n  - {{ name: redis, type: redis, url: '{redis_url}', critical: true }}\n"
    )
    result = await runners.of(load_config(path, environ={}).checks[0]).run()

    assert result.status is Status.PASS
    assert result.output == ""
    # No maxmemory, so no memory measure; the per-window counters have no verdict yet.
    assert list(observed(result)) == [
        "response_time",
        "eviction_policy",
        "evicted_keys",
        "rejected_connections",
        "persistence",
        "clients",
        "restarts",
    ]
    assert observed(result)["evicted_keys"] is None
    assert observed(result)["response_time"] is not None


async def test_memory_is_a_ratio_of_maxmemory(
    make_runner: MakeRunner, redis_url: str, admin: redis_sync.Redis
) -> None:
    admin.config_set("maxmemory", 1024 * 1024 * 1024)
    relaxed = await make_runner(url=redis_url).run()
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used * 2)  # about half full
    tight = await make_runner(url=redis_url, warn={"memory": "30%"}, fail={"memory": "90%"}).run()

    ratio = observed(relaxed)["memory"]
    assert ratio is not None and 0 < ratio < 0.05
    assert tight.status is Status.WARN
    assert tight.output.startswith("memory ") and tight.output.endswith("> 30%")


async def test_memory_limit_without_maxmemory_says_why_it_is_unknown(
    make_runner: MakeRunner, redis_url: str
) -> None:
    result = await make_runner(url=redis_url, warn={"memory": "80%"}).run()

    memory = next(o for o in result.observations if o.measure == "memory")
    assert result.status is Status.PASS
    assert memory.value is None
    assert memory.note == "maxmemory is not set"


async def test_one_client_connection_is_reused_and_closed(
    make_runner: MakeRunner, redis_url: str, admin: redis_sync.Redis
) -> None:
    before = probe_clients(admin)
    runner = make_runner(url=redis_url)
    for _ in range(3):
        assert (await runner.run()).status is Status.PASS
    assert probe_clients(admin) == before + 1

    await runner.close()
    await runner.close()  # safe twice
    assert await settled(lambda: probe_clients(admin), before) == before


async def test_checks_of_one_url_share_one_connection_until_the_last_closes(
    make_runner: MakeRunner, redis_url: str, admin: redis_sync.Redis
) -> None:
    before = probe_clients(admin)
    first = make_runner(name="first", url=redis_url)
    second = make_runner(name="second", url=redis_url)
    for _ in range(2):
        for runner in (first, second):
            assert (await runner.run()).status is Status.PASS
    assert probe_clients(admin) == before + 1

    await first.close()
    assert (await second.run()).status is Status.PASS  # the client outlives its first user
    assert probe_clients(admin) == before + 1
    await second.close()
    assert await settled(lambda: probe_clients(admin), before) == before


async def test_checks_recover_when_the_server_kills_their_shared_connection(
    make_runner: MakeRunner, redis_url: str, admin: redis_sync.Redis
) -> None:
    earlier = {c["id"] for c in admin.client_list()}
    first = make_runner(name="first", url=redis_url)
    second = make_runner(name="second", url=redis_url)
    assert (await first.run()).status is Status.PASS

    ours = [c["id"] for c in admin.client_list() if c["id"] not in earlier]
    assert len(ours) == 1
    admin.client_kill_filter(_id=ours[0])

    # The run after the kill finds the dead socket and reconnects; so does the other check.
    assert (await second.run()).status is Status.PASS
    assert (await first.run()).status is Status.PASS
    await first.close()
    await second.close()


async def test_closed_port_fails_fast_with_connection_refused(make_runner: MakeRunner) -> None:
    port = free_port()
    result = await make_runner(url=f"redis://127.0.0.1:{port}/0").run()

    assert result.status is Status.FAIL
    assert result.output == f"connection refused (127.0.0.1:{port})"
    assert result.response_time < 1


async def test_unknown_host_says_dns_lookup_failed(make_runner: MakeRunner) -> None:
    result = await make_runner(url="redis://cache.probe-test.invalid:6379/0").run()

    assert result.output == "DNS lookup failed for cache.probe-test.invalid"


async def test_proxy_that_drops_connections_fails_with_words(
    make_runner: MakeRunner, redis_proxy: FaultProxy
) -> None:
    redis_proxy.set(Mode.REFUSE)
    result = await make_runner(url=f"redis://127.0.0.1:{redis_proxy.port}/0").run()

    assert result.status is Status.FAIL
    assert result.output in (
        f"connection reset by server (127.0.0.1:{redis_proxy.port})",
        f"connection closed by server (127.0.0.1:{redis_proxy.port})",
    )


async def test_blackholed_server_times_out_without_holding_up_other_checks(
    make_runner: MakeRunner, redis_url: str, redis_proxy: FaultProxy
) -> None:
    redis_proxy.set(Mode.BLACKHOLE)
    stuck = make_runner(name="stuck", url=f"redis://127.0.0.1:{redis_proxy.port}/0", timeout=1)
    healthy = make_runner(name="healthy", url=redis_url, timeout=1)

    started = time.monotonic()
    stuck_result, healthy_result = await asyncio.gather(stuck.run(), healthy.run())
    elapsed = time.monotonic() - started

    assert stuck_result.output == "timed out after 1s"
    assert elapsed < 2.5  # one timeout, no retries
    assert healthy_result.status is Status.PASS
    assert healthy_result.response_time < 1


async def test_slow_server_warns_on_response_time(
    make_runner: MakeRunner, redis_proxy: FaultProxy
) -> None:
    redis_proxy.set(Mode.DELAY, delay=0.05)
    runner = make_runner(
        url=f"redis://127.0.0.1:{redis_proxy.port}/0", warn={"response_time": "20ms"}
    )
    result = await runner.run()

    assert result.status is Status.WARN
    assert result.output.endswith("> 20ms")


async def test_client_recovers_when_the_server_comes_back(
    make_runner: MakeRunner, redis_proxy: FaultProxy
) -> None:
    runner = make_runner(url=f"redis://127.0.0.1:{redis_proxy.port}/0", timeout=1)
    assert (await runner.run()).status is Status.PASS

    redis_proxy.set(Mode.REFUSE)
    assert (await runner.run()).status is Status.FAIL
    redis_proxy.set(Mode.FORWARD)
    assert (await runner.run()).status is Status.PASS

    redis_proxy.set(Mode.BLACKHOLE)
    assert (await runner.run()).output == "timed out after 1s"
    redis_proxy.set(Mode.FORWARD)
    assert (await runner.run()).status is Status.PASS


async def test_connection_cut_while_idle_does_not_fail_the_next_run(
    make_runner: MakeRunner, redis_proxy: FaultProxy
) -> None:
    runner = make_runner(url=f"redis://127.0.0.1:{redis_proxy.port}/0")
    assert (await runner.run()).status is Status.PASS
    redis_proxy.drop_connections()

    assert (await runner.run()).status is Status.PASS


async def test_wrong_password_says_authentication_failed_without_the_password(
    make_runner: MakeRunner, redis_server: tuple[str, int], admin: redis_sync.Redis
) -> None:
    host, port = redis_server
    admin.acl_setuser("probe-test", enabled=True, passwords=["+right-password"], commands=["+ping"])
    try:
        runner = make_runner(url=f"redis://probe-test:{CANARY}@{host}:{port}/0")
        result = await runner.run()
    finally:
        admin.acl_deluser("probe-test")

    assert result.status is Status.FAIL
    assert result.output == (
        f"authentication failed (127.0.0.1:{port}): "
        "invalid username-password pair or user is disabled"
    )
    assert CANARY not in runner.config.target()
    assert runner.config.target() == f"redis://probe-test:***@{host}:{port}/0"


def test_url_must_be_a_redis_url(write_config: Any) -> None:
    path = write_config("checks:\n  - { name: cache, type: redis, url: 'http://x:6379' }\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [
        f"{path}: checks[0].url: expected a URL like redis://:password@host:6379/0, "
        "got 'http://x:6379'"
    ]


def test_bad_port_is_a_config_error(write_config: Any) -> None:
    path = write_config(
        "checks:\n"
        f"  - {{ name: a, type: redis, url: 'redis://:{CANARY}@h:abc/0' }}\n"
        "  - { name: b, type: redis, url: 'rediss://h:0/0' }\n"
        "  - { name: c, type: redis, url: 'unix:///run/redis.sock?db=1' }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [
        f"{path}: checks[0].url: port must be a number from 1 to 65535, got 'abc'",
        f"{path}: checks[1].url: port must be a number from 1 to 65535, got '0'",
    ]


async def test_missing_password_says_authentication_required(make_runner: MakeRunner) -> None:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--requirepass", "right-password",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        result = await make_runner(url=f"redis://127.0.0.1:{port}/0").run()
        while "refused" in result.output and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            result = await make_runner(url=f"redis://127.0.0.1:{port}/0").run()
    finally:
        server.terminate()
        await server.wait()
    assert result.status is Status.FAIL
    assert result.output == (
        f"authentication required (127.0.0.1:{port}): put the password in the URL"
    )


async def test_a_server_speaking_another_protocol_says_so(
    make_runner: MakeRunner, aiohttp_server: Any
) -> None:
    from aiohttp import web

    server = await aiohttp_server(web.Application())
    result = await make_runner(url=f"redis://127.0.0.1:{server.port}/0").run()
    assert result.status is Status.FAIL
    assert result.output == (
        f"not a Redis server (127.0.0.1:{server.port}): it answered in another protocol"
    )
