"""The tcp check against real listening and closed ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from probe.checks.tcp import TcpConfig
from probe.contract.config import ConfigError, load_config
from probe.core.model import Status
from tests.conftest import MakeRunner, Runners, free_port


@pytest.fixture
def make_runner(runners: Runners) -> MakeRunner:
    return runners.maker(TcpConfig, name="port", type="tcp", timeout=2)


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A real TCP server on a free port: (port, connections accepted so far)."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await reader.read()  # the probe hangs up; no bytes are expected
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


async def test_open_port_passes_and_the_connection_is_closed(
    make_runner: MakeRunner, listener: tuple[int, list[int]]
) -> None:
    port, accepted = listener
    runner = make_runner(host="127.0.0.1", port=port)
    result = await runner.run()

    assert result.status is Status.PASS
    assert result.output == ""
    assert [o.measure for o in result.observations] == ["response_time"]
    assert accepted == [1]
    assert runner.config.target() == f"127.0.0.1:{port}"


async def test_closed_port_says_connection_refused(make_runner: MakeRunner) -> None:
    port = free_port()
    by_address = await make_runner(host="127.0.0.1", port=port).run()
    by_name = await make_runner(host="localhost", port=port).run()

    assert by_address.status is Status.FAIL
    assert by_address.output == f"connection refused (127.0.0.1:{port})"
    assert by_name.output == f"connection refused (localhost:{port})"


async def test_unknown_host_says_dns_lookup_failed(make_runner: MakeRunner) -> None:
    result = await make_runner(host="smtp.probe-test.invalid", port=25).run()

    assert result.output == "DNS lookup failed for smtp.probe-test.invalid"


def test_ipv6_target_is_bracketed() -> None:
    config = TcpConfig.model_validate({"name": "v6", "type": "tcp", "host": "::1", "port": 5432})

    assert config.target() == "[::1]:5432"


def test_port_must_be_a_port(write_config: Any) -> None:
    path = write_config("checks:\n  - { name: smtp, type: tcp, host: mail, port: 70000 }\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [f"{path}: checks[0].port: must be at most 65535, got 70000"]
