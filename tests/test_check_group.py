"""The group check: members from YAML, run concurrently, reported as one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.contract.config import ConfigError, load_config
from probe.core.model import Status
from probe.engine.runner import CheckRunner
from tests.conftest import Runners, free_port
from tests.faultproxy import FaultProxy, Mode

ServerFactory = Callable[..., Awaitable[TestServer]]
LoadRunner = Callable[[str], CheckRunner]


@pytest.fixture
def load_group(write_config: Any, runners: Runners) -> LoadRunner:
    """YAML text -> load_config -> a runner for its first check (the group)."""

    def load(text: str) -> CheckRunner:
        return runners.of(load_config(write_config(text), environ={}).checks[0])

    return load


@pytest.fixture
async def web_server(aiohttp_server: ServerFactory) -> TestServer:
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    return await aiohttp_server(app)


async def test_group_is_as_bad_as_its_worst_member(
    load_group: LoadRunner, web_server: TestServer, redis_url: str
) -> None:
    base = str(web_server.make_url(""))
    runner = load_group(
        f"""
checks:
  - name: external_services
    type: group
    checks:
      - {{ name: paystack, type: http, url: '{base}/status/401', expect: {{ status: [200, 401] }} }}
      - {{ name: whatsapp, type: http, url: '{base}/status/503', expect: {{ status: [200, 401] }} }}
      - {{ name: cache, type: redis, url: '{redis_url}', warn: {{ response_time: 0ms }} }}
"""
    )
    result = await runner.run()

    assert result.status is Status.FAIL
    assert [name for name, _ in result.members] == ["paystack", "whatsapp", "cache"]
    assert [member.status for _, member in result.members] == [
        Status.PASS, Status.FAIL, Status.WARN,
    ]  # fmt: skip
    assert result.output.startswith("whatsapp: HTTP 503 (expected 200, 401); cache: response_time")
    assert [o.measure for o in result.observations] == ["response_time"]
    assert runner.config.target() == "3 checks"


async def test_a_warning_member_makes_the_group_warn(
    load_group: LoadRunner, web_server: TestServer
) -> None:
    base = str(web_server.make_url(""))
    runner = load_group(
        f"""
checks:
  - name: apis
    type: group
    checks:
      - {{ name: a, type: http, url: '{base}/status/200' }}
      - {{ name: b, type: http, url: '{base}/status/200', warn: {{ response_time: 0ms }} }}
"""
    )
    result = await runner.run()

    assert result.status is Status.WARN
    assert result.output.startswith("b: response_time ")


async def test_members_run_concurrently_and_time_out_by_name(load_group: LoadRunner) -> None:
    proxies = [await FaultProxy("127.0.0.1", free_port()).start() for _ in range(2)]
    for proxy in proxies:
        proxy.set(Mode.BLACKHOLE)
    runner = load_group(
        f"""
checks:
  - name: apis
    type: group
    timeout: 1.5s
    checks:
      - {{ name: slow-a, type: http, url: 'http://127.0.0.1:{proxies[0].port}/' }}
      - {{ name: slow-b, type: http, url: 'http://127.0.0.1:{proxies[1].port}/' }}
"""
    )
    try:
        started = time.monotonic()
        result = await runner.run()
        elapsed = time.monotonic() - started
    finally:
        for proxy in proxies:
            await proxy.close()

    assert result.status is Status.FAIL
    assert result.output == "slow-a: timed out after 1.5s; slow-b: timed out after 1.5s"
    assert elapsed < 2.8  # together, not one after the other


async def test_members_inherit_the_groups_timing(write_config: Any) -> None:
    path = write_config(
        """
defaults: { interval: 30s, timeout: 5s }
checks:
  - name: apis
    type: group
    interval: 60s
    timeout: 8s
    checks:
      - { name: a, type: tcp, host: 127.0.0.1, port: 1 }
      - { name: b, type: tcp, host: 127.0.0.1, port: 2, timeout: 2s }
"""
    )
    group = load_config(path, environ={}).checks[0]

    assert [(m.interval, m.timeout) for m in group.members()] == [(60.0, 8.0), (60.0, 2.0)]


@pytest.mark.parametrize(
    ("group_keys", "member", "problem"),
    [
        (
            "warn: { cert_expiry: <14d }",
            "{ name: a, type: tcp, host: 127.0.0.1, port: 1 }",
            "checks[0].warn: unknown measure 'cert_expiry' (known: error_rate, response_time)",
        ),
        (
            "timeout: 2s",
            "{ name: a, type: tcp, host: 127.0.0.1, port: 1, timeout: 5s }",
            "checks[0]: member 'a' has a timeout (5s) longer than the group's (2s)",
        ),
        (
            "timeout: 2s",
            "{ name: a, type: http, url: 'https://x/', stauts: 200 }",
            "checks[0].checks[0].stauts: unknown key",
        ),
    ],
)
def test_config_errors_on_and_inside_the_group(
    write_config: Any, group_keys: str, member: str, problem: str
) -> None:
    path = write_config(
        f"checks:\n  - name: apis\n    type: group\n    {group_keys}\n"
        f"    checks:\n      - {member}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [f"{path}: {problem}"]


def test_disabled_members_are_left_out(write_config: Any) -> None:
    path = write_config(
        """
checks:
  - name: apis
    type: group
    checks:
      - { name: a, type: tcp, host: 127.0.0.1, port: 1, enabled: false }
      - { name: b, type: tcp, host: 127.0.0.1, port: 2 }
"""
    )
    group = load_config(path, environ={}).checks[0]

    assert [m.name for m in group.members()] == ["b"]
    assert group.target() == "1 check"


async def test_member_secrets_are_known_to_the_config_and_never_printed(
    write_config: Any, runners: Runners
) -> None:
    canary = "canary-Pw-9052"
    port = free_port()
    path = write_config(
        f"""
checks:
  - name: backends
    type: group
    checks:
      - {{ name: db, type: postgres, dsn: 'postgresql://app:{canary}@127.0.0.1:{port}/app' }}
"""
    )
    config = load_config(path, environ={})
    result = await runners.of(config.checks[0]).run()

    assert canary in config.secrets()
    assert result.output == f"db: connection refused (127.0.0.1:{port})"
    assert canary not in repr(result)


async def test_closing_the_group_closes_its_members(
    load_group: LoadRunner, redis_server: tuple[str, int], redis_url: str
) -> None:
    runner = load_group(
        f"""
checks:
  - name: caches
    type: group
    checks:
      - {{ name: cache, type: redis, url: '{redis_url}' }}
"""
    )
    admin = redis_sync.Redis(*redis_server, decode_responses=True)

    def clients() -> int:
        return len(admin.client_list())

    try:
        before = clients()
        assert (await runner.run()).status is Status.PASS
        assert clients() == before + 1
        await runner.close()
        await runner.close()
        deadline = time.monotonic() + 5
        while clients() > before:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        admin.close()


def test_critical_on_a_member_is_a_config_error(write_config: Any) -> None:
    path = write_config(
        "checks:\n"
        "  - name: partners\n"
        "    type: group\n"
        "    checks:\n"
        "      - { name: bank, type: tcp, host: 127.0.0.1, port: 9, critical: true }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: checks[0]: member 'bank' sets critical: true, which only top-level checks "
        "can; set it on the group"
    ]


def test_a_redis_member_learns_of_a_bullmq_check_on_its_server(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        "checks:\n"
        "  - name: deps\n"
        "    type: group\n"
        "    checks:\n"
        "      - { name: cache, type: redis, url: 'redis://127.0.0.1:6379/0' }\n"
        "  - { name: queues, type: bullmq, url: 'redis://127.0.0.1:6379/1', queues: [a] }\n"
    )
    member = load_config(path, environ={}).checks[0].members()[0]
    # With BullMQ on the same server, an evicting policy fails instead of warning.
    assert getattr(member, "bullmq_checks", None) == ("queues",)
    assert "eviction_policy" in member.limits_for("")[1]


# ---------------------------------------------------------------- redundant providers


@pytest.mark.parametrize(
    ("codes", "status", "output"),
    [
        ((200, 200, 200), Status.PASS, ""),
        ((503, 200, 200), Status.WARN, "sms-a: HTTP 503 (expected 200-399)"),
        ((503, 502, 200), Status.FAIL,
         "sms-a: HTTP 503 (expected 200-399); sms-b: HTTP 502 (expected 200-399)"),
    ],
)  # fmt: skip
async def test_fail_when_failing_n_warns_below_n(
    load_group: LoadRunner,
    web_server: TestServer,
    codes: tuple[int, int, int],
    status: Status,
    output: str,
) -> None:
    base = str(web_server.make_url(""))
    members = "\n".join(
        f"      - {{ name: sms-{n}, type: http, url: '{base}/status/{code}' }}"
        for n, code in zip("abc", codes, strict=True)
    )
    runner = load_group(
        f"""
checks:
  - name: sms_providers
    type: group
    fail_when: {{ failing: 2 }}
    checks:
{members}
"""
    )
    result = await runner.run()

    assert result.status is status
    assert result.output == output
    # Members keep their own verdicts: a failing provider is still a failing check.
    assert [m.status is Status.FAIL for _, m in result.members] == [c >= 500 for c in codes]


def test_fail_when_beyond_the_members_is_a_config_error(write_config: Any) -> None:
    path = write_config(
        """
checks:
  - name: sms
    type: group
    fail_when: { failing: 3 }
    checks:
      - { name: a, type: tcp, host: 127.0.0.1, port: 9 }
      - { name: b, type: tcp, host: 127.0.0.1, port: 9 }
  - { name: c, type: group, fail_when: { failing: 0 }, checks: [] }
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    problems = [p.removeprefix(f"{path}: ") for p in caught.value.problems]
    assert problems[0] == (
        "checks[0]: fail_when.failing is 3 but the group has 2 enabled member(s): "
        "it could never fail"
    )
    assert problems[1].startswith("checks[1].fail_when.failing: ")
    assert len(problems) == 2
