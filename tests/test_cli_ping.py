"""`probe ping`: the Docker HEALTHCHECK command; stdlib only, exit 0 on 2xx, 1 otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from probe.cli.main import _fast_ping
from probe.cli.parsing import parse_args
from probe.cli.ping import split_url
from tests.cli_helpers import arun_cli, cli_env, run_cli
from tests.conftest import free_port


@pytest.fixture
async def agent_like() -> AsyncIterator[str]:
    """A real HTTP server with a healthy /live, a 503 /ready and a redirect."""

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"status": "not_ready"}, status=503)

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/live")

    app = web.Application()
    app.router.add_get("/live", live)
    app.router.add_get("/ready", ready)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_2xx_exits_0_silently(agent_like: str) -> None:
    out = await arun_cli("ping", f"{agent_like}/live")
    assert (out.code, out.stdout, out.stderr) == (0, "", "")


async def test_redirect_to_2xx_exits_0(agent_like: str) -> None:
    assert (await arun_cli("ping", f"{agent_like}/moved")).code == 0


async def test_503_exits_1_saying_http_503(agent_like: str) -> None:
    out = await arun_cli("ping", f"{agent_like}/ready")
    assert out.code == 1
    assert out.stderr == f"probe ping: HTTP 503 from {agent_like}/ready\n"


async def test_404_exits_1(agent_like: str) -> None:
    out = await arun_cli("ping", f"{agent_like}/nope")
    assert out.code == 1
    assert "HTTP 404" in out.stderr


def test_closed_port_exits_1_saying_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/live"
    out = run_cli("ping", url)
    assert out.code == 1
    assert out.stderr == f"probe ping: connection refused ({url})\n"


def test_silent_server_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/live"
        out = run_cli("ping", url, "--timeout", "300ms")
    assert out.code == 1
    assert out.stderr == f"probe ping: timed out after 300ms ({url})\n"


def test_default_url_follows_probe_listen() -> None:
    port = free_port()
    out = run_cli("ping", env={"PROBE_LISTEN": f"0.0.0.0:{port}"})
    assert out.code == 1
    assert f"connection refused (http://127.0.0.1:{port}/live)" in out.stderr


def test_default_url_is_port_8080_live() -> None:
    out = run_cli("ping", "--help")
    assert out.code == 0
    assert "http://127.0.0.1:8080/live" in out.stdout


def test_bad_url_and_bad_timeout_exit_1_without_traceback() -> None:
    for args in (["ftp://127.0.0.1/x"], ["http://"], ["--timeout", "soon"], ["a", "b"]):
        out = run_cli("ping", *args)
        assert out.code == 1, (args, out)
        assert "Traceback" not in out.stderr
        assert out.stderr.strip(), args


async def test_imports_only_the_standard_library(agent_like: str) -> None:
    # What `python -m probe ping` has loaded when it exits, seen from inside the process.
    script = (
        "import sys, runpy\n"
        f"sys.argv = ['probe', 'ping', '{agent_like}/live']\n"
        "try:\n"
        "    runpy.run_module('probe', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr
    loaded = set(stdout.decode().split())
    assert "probe.cli.ping" in loaded
    heavy = {"pydantic", "yaml", "aiohttp", "asyncpg", "redis", "probe.contract.config", "asyncio"}
    assert not heavy & loaded
    # Nor what costs more than the ping itself for a plain http:// URL (docs/performance.md),
    # beyond what the interpreter had loaded before probe (an editable install's finder).
    at_start = subprocess.run(
        [sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True, env=cli_env(),
    ).stdout.split()  # fmt: skip
    costly = {"argparse", "socket", "urllib.parse", "typing", "probe.core.units"}
    assert not costly & (loaded - set(at_start))
    # Underscored names are site hooks from .pth files, loaded before any of our code.
    top_level = {m.split(".")[0] for m in loaded if not m.startswith("_")}
    third_party = top_level - set(sys.stdlib_module_names) - {"probe"}
    assert third_party == set()


async def test_timeout_is_a_deadline_for_the_whole_request() -> None:
    # A server that sends a byte every 0.2 s never lets a per-recv timeout expire.
    clients: list[asyncio.StreamWriter] = []

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.append(writer)
        await reader.read(1024)
        with contextlib.suppress(ConnectionError):
            for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/live"
    try:
        started = time.monotonic()
        out = await arun_cli("ping", url, "--timeout", "1s")
        elapsed = time.monotonic() - started
    finally:
        server.close()
        for client in clients:  # server.close() leaves accepted connections open
            client.close()
        await asyncio.sleep(0.3)  # the dripping handler sees the close and ends
    assert out.code == 1
    assert out.stderr == f"probe ping: timed out after 1s ({url})\n"
    assert elapsed < 10  # generous: process start-up plus the 1 s deadline


def test_password_in_url_is_never_printed() -> None:
    port = free_port()
    for url in (
        f"http://probe:hunter22@127.0.0.1:{port}/live",
        "http://probe:hunter/22@127.0.0.1/live",
    ):
        out = run_cli("ping", url, "--timeout", "300ms")
        assert out.code == 1
        assert "hunter" not in out.stderr
        assert "probe:***@127.0.0.1" in out.stderr


def test_bad_urls_are_named_without_network_words() -> None:
    cases = {
        "http://127.0.0.1:abc/live": "invalid URL: port must be a number from 1 to 65535",
        "http://127.0.0.1:99999/live": "invalid URL: port must be a number from 1 to 65535",
        "https://127.0.0.1:0/live": "invalid URL: port must be a number from 1 to 65535",
        "http://127.0.0.1:8080/li ve": "invalid URL",
        "http://127.0.0.1:8080/live\r\nX-Injected: 1": "invalid URL",
    }
    for url, words in cases.items():
        out = run_cli("ping", url, "--timeout", "300ms")
        assert out.code == 1, url
        line = out.stderr.removeprefix("probe ping: ")
        assert line.startswith(f"{words} ("), (url, out.stderr)
        assert out.stderr.count("\n") == 1, out.stderr


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/live",
        "https://probe.example.com/ready?verbose=1",
        "http://localhost",
        "http://localhost?x=1/2",
        "http://host:/a/b?c?d",
        "http://",
        "http:///live",
        "http://a@b:1/x",
        "HTTP://127.0.0.1/live",
        "http://[::1]:8080/live",
        "http://[::1/live",
        "http://127.0.0.1/live#top",
        "ftp://127.0.0.1/x",
        "http://bücher.example/",
        "127.0.0.1:8080/live",
    ],
)
def test_url_split_agrees_with_urlsplit(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            split_url(url)
        return
    assert split_url(url) == (parts.scheme, parts.netloc, parts.path, parts.query)


@pytest.mark.parametrize(
    "argv",
    [
        ["ping"],
        ["ping", "http://127.0.0.1:9/live"],
        ["ping", "http://127.0.0.1:9/live", "--timeout", "2s"],
        ["ping", "--timeout=500ms", "http://127.0.0.1:9/ready"],
        ["ping", "--timeout", "1m"],
        ["ping", ""],
    ],
)
def test_ping_without_the_parser_reads_what_the_parser_reads(argv: list[str]) -> None:
    args = parse_args(argv)
    assert _fast_ping(argv) == (args.url, args.timeout)


@pytest.mark.parametrize(
    "argv",
    [
        ["ping", "--help"],
        ["ping", "-h"],
        ["ping", "a", "b"],
        ["ping", "--timeout", "soon"],
        ["ping", "--timeout"],
        ["ping", "--timeout", "-1"],
        ["ping", "--timeout", "1s", "--timeout", "2s"],
        ["ping", "--time", "1s"],
        ["ping", "--", "http://x"],
        ["ping", "--bogus"],
        ["check"],
        [],
    ],
)
def test_anything_else_goes_to_the_parser(argv: list[str]) -> None:
    assert _fast_ping(argv) is None
