"""The http check against local aiohttp servers, plain and with real TLS certificates."""

from __future__ import annotations

import asyncio
import calendar
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.checks.http import HttpConfig
from probe.checks.tls_chain import der_not_after
from probe.contract.config import ConfigError, load_config
from probe.core.model import CheckResult, Status
from tests.conftest import MakeRunner, Runners, free_port
from tests.faultproxy import FaultProxy, Mode

ServerFactory = Callable[..., Awaitable[TestServer]]
DAY = 86400.0
SEEN = web.AppKey("seen", list[dict[str, Any]])
PEERS = web.AppKey("peers", set[int])


@pytest.fixture
def make_runner(runners: Runners) -> MakeRunner:
    return runners.maker(HttpConfig, name="api", type="http", timeout=2)


def make_app() -> web.Application:
    seen: list[dict[str, Any]] = []
    peers: set[int] = set()

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="all systems ok", headers={"X-Served-By": "cache-ams"})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": request.query.get("status", "ok"), "live": True,
             "data": {"items": [{"id": 3}, {"id": 4}]}}
        )  # fmt: skip

    async def echo(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            peers.add(peer[1])
        seen.append(
            {"method": request.method, "headers": dict(request.headers),
             "body": await request.text(), "peer": peer[1] if peer else None}
        )  # fmt: skip
        return web.json_response({"token": request.headers.get("Authorization", "")})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/text")

    app = web.Application()
    app[SEEN] = seen
    app[PEERS] = peers
    app.router.add_get("/text", text)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/redirect", redirect)
    return app


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(make_app())


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


def observed(result: CheckResult) -> dict[str, float | None]:
    return {o.measure: o.value for o in result.observations}


# ---------------------------------------------------------------- status, body, json


async def test_default_accepts_200_to_399_and_names_a_503(
    make_runner: MakeRunner, server: TestServer
) -> None:
    ok = await make_runner(url=url(server, "/text")).run()
    redirected = await make_runner(url=url(server, "/redirect")).run()
    down = await make_runner(url=url(server, "/status/503")).run()

    assert ok.status is Status.PASS and ok.output == ""
    assert redirected.status is Status.PASS
    assert down.status is Status.FAIL
    assert down.output == "HTTP 503 (expected 200-399)"
    assert "response_time" in observed(down)


@pytest.mark.parametrize(
    ("expected", "code", "output"),
    [
        ([200, 401], 401, ""),
        ([200, 401], 503, "HTTP 503 (expected 200, 401)"),
        (["2xx", 404], 404, ""),
        (["2xx"], 302, "HTTP 302 (expected 2xx)"),
        (["400-403"], 403, ""),
        (204, 500, "HTTP 500 (expected 204)"),
    ],
)
async def test_expected_status_lists_and_ranges(
    make_runner: MakeRunner, server: TestServer, expected: Any, code: int, output: str
) -> None:
    runner = make_runner(url=url(server, f"/status/{code}"), expect={"status": expected})
    result = await runner.run()

    assert result.output == output
    assert result.status is (Status.PASS if not output else Status.FAIL)


async def test_body_contains(make_runner: MakeRunner, server: TestServer) -> None:
    found = await make_runner(url=url(server, "/text"), expect={"body_contains": "ok"}).run()
    missing = await make_runner(url=url(server, "/text"), expect={"body_contains": "ready"}).run()

    assert found.status is Status.PASS
    assert missing.status is Status.FAIL
    assert missing.output == 'body does not contain "ready"'


async def test_json_paths(make_runner: MakeRunner, server: TestServer) -> None:
    wanted = {"status": "ok", "data.items.0.id": 3, "data.items.-1.id": 4, "live": True}
    healthy = await make_runner(url=url(server, "/health"), expect={"json": wanted}).run()
    down = await make_runner(url=url(server, "/health?status=down"), expect={"json": wanted}).run()
    wrong = await make_runner(
        url=url(server, "/health"),
        expect={"json": {"data.items.5.id": 3, "live": 1, "data.items.0.id": "3"}},
    ).run()
    not_json = await make_runner(url=url(server, "/text"), expect={"json": {"status": "ok"}}).run()

    assert healthy.status is Status.PASS
    # The older `json: {path: value}` map reads as `==` conditions.
    assert down.output == 'json status == "ok": got "down"'
    assert wrong.output == (
        "json data.items.5.id == 3: not found; json live == 1: got true; "
        'json data.items.0.id == "3": got 3'
    )
    assert not_json.output == "body is not JSON"


ITEMS = "$.data.items"


@pytest.mark.parametrize(
    ("path", "op", "value", "output"),
    [
        ("$.status", "==", "ok", ""),
        ("$.live", "==", False, "json $.live == false: got true"),
        ("$.status", "!=", "ok", 'json $.status != "ok": got "ok"'),
        (f"{ITEMS}[0].id", ">=", 3, ""),
        (f"{ITEMS}[1].id", "<", 4, f"json {ITEMS}[1].id < 4: got 4"),
        (f"{ITEMS}[0].id", ">", 3, f"json {ITEMS}[0].id > 3: got 3"),
        (f"{ITEMS}[-1].id", "<=", 4, ""),
        ("$.status", "<", 5, 'json $.status < 5: got "ok"'),
        ("$.status", "in", ["ok", "degraded"], ""),
        ("$.status", "in", ["up"], 'json $.status in ["up"]: got "ok"'),
        ("$.status", "matches", "^o", ""),
        ("$.status", "matches", "^up$", 'json $.status matches "^up$": got "ok"'),
        ("$.data", "exists", None, ""),
        ("$.error", "exists", None, "json $.error exists: not found"),
        ("$.live", "exists", False, "json $.live exists false: got true"),
        ("$['data'].items[9].id", "==", 1, "json $['data'].items[9].id == 1: not found"),
    ],
)
async def test_json_conditions_with_operators(
    make_runner: MakeRunner, server: TestServer, path: str, op: str, value: Any, output: str
) -> None:
    condition = {"path": path, "op": op, "value": value}
    result = await make_runner(url=url(server, "/health"), expect={"json": [condition]}).run()

    assert result.output == output
    assert result.status is (Status.PASS if not output else Status.FAIL)


async def test_body_matches_not_contains_and_headers(
    make_runner: MakeRunner, server: TestServer
) -> None:
    good = await make_runner(
        url=url(server, "/text"),
        expect={
            "body_matches": r"systems \w+",
            "body_not_contains": "error",
            "headers": {"Content-Type": "^text/plain", "x-served-by": "cache-[a-z]+"},
        },
    ).run()
    bad = await make_runner(
        url=url(server, "/text"),
        expect={
            "body_matches": "^down",
            "body_not_contains": "systems",
            "headers": {"Content-Type": "json", "X-Missing": "."},
        },
    ).run()

    assert good.status is Status.PASS, good.output
    assert bad.status is Status.FAIL
    assert bad.output == (
        'header content-type "text/plain; charset=utf-8" does not match /json/; '
        "header x-missing is missing; "
        'body contains "systems"; body does not match /^down/'
    )


def test_bad_assertions_are_config_errors(write_config: Any) -> None:
    path = write_config(
        """
checks:
  - { name: a, type: http, url: 'http://x/', expect: { body_matches: '(' } }
  - { name: b, type: http, url: 'http://x/', expect: { json: [{ path: $.a, op: '~' }] } }
  - { name: c, type: http, url: 'http://x/', expect: { json: [{ path: $.a, op: '>', value: x }] } }
  - { name: d, type: http, url: 'http://x/', expect: { json: [{ path: $.a, op: in, value: 3 }] } }
  - { name: e, type: http, url: 'http://x/', expect: { json: [{ path: 'a..b', op: exists }] } }
  - { name: f, type: http, url: 'http://x/', expect: { headers: { X-A: '[' } } }
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    problems = [p.removeprefix(f"{path}: ") for p in caught.value.problems]
    assert problems[0].startswith(
        "checks[0].expect.body_matches: not a valid regular expression '(': "
    )
    assert problems[1].startswith("checks[1].expect.json[0].op: ")
    assert "'=='" in problems[1] and "'exists'" in problems[1]
    assert problems[2:] == [
        "checks[2].expect.json[0]: op > compares numbers; value must be one, got 'x'",
        "checks[3].expect.json[0]: op in needs a list of values, got 3",
        "checks[4].expect.json[0].path: json path 'a..b' is not like $.data.items[0].id",
        "checks[5].expect.headers.X-A: not a valid regular expression '[': "
        "unterminated character set at position 0",
    ]


async def test_method_headers_and_body_are_sent(
    make_runner: MakeRunner, server: TestServer
) -> None:
    runner = make_runner(
        url=url(server, "/echo"),
        method="post",
        headers={"X-Probe": "yes", "X-Version": 2, "Content-Type": "application/json"},
        body='{"ping": 1}',
    )
    result = await runner.run()

    request = server.app[SEEN][-1]
    assert result.status is Status.PASS
    assert request["method"] == "POST"
    assert request["headers"]["X-Probe"] == "yes"
    assert request["headers"]["X-Version"] == "2"
    assert request["headers"]["User-Agent"].startswith("probe/")
    assert request["body"] == '{"ping": 1}'


async def test_secret_header_values_never_show(make_runner: MakeRunner, server: TestServer) -> None:
    # The server echoes the token back; the failure words quote it, the output must not.
    token = "sk-live-canary-4411"
    runner = make_runner(
        url=url(server, "/echo"),
        headers={"Authorization": f"Bearer {token}"},
        expect={"json": {"token": "other"}},
    )
    result = await runner.run()

    assert result.status is Status.FAIL
    assert token not in result.output
    assert result.output == 'json token == "other": got "***"'


async def test_keep_alive_connection_is_reused(make_runner: MakeRunner, server: TestServer) -> None:
    runner = make_runner(url=url(server, "/echo"))
    for _ in range(3):
        assert (await runner.run()).status is Status.PASS

    assert len(server.app[PEERS]) == 1


# ---------------------------------------------------------------- network failures


async def test_closed_port_says_connection_refused(make_runner: MakeRunner) -> None:
    port = free_port()
    result = await make_runner(url=f"http://127.0.0.1:{port}/").run()

    assert result.status is Status.FAIL
    assert result.output == f"connection refused (127.0.0.1:{port})"


async def test_unknown_host_says_dns_lookup_failed(make_runner: MakeRunner) -> None:
    result = await make_runner(url="https://api.probe-test.invalid/v1").run()

    assert result.status is Status.FAIL
    assert result.output == "DNS lookup failed for api.probe-test.invalid"


async def test_silent_server_times_out(make_runner: MakeRunner, server: TestServer) -> None:
    proxy = await FaultProxy("127.0.0.1", server.port or 0).start()
    proxy.set(Mode.BLACKHOLE)
    try:
        started = time.monotonic()
        result = await make_runner(url=f"http://127.0.0.1:{proxy.port}/text", timeout=1).run()
        elapsed = time.monotonic() - started
    finally:
        await proxy.close()

    assert result.output == "timed out after 1s"
    assert elapsed < 2.5


async def test_server_that_hangs_up_is_named(make_runner: MakeRunner, server: TestServer) -> None:
    proxy = await FaultProxy("127.0.0.1", server.port or 0).start()
    proxy.set(Mode.REFUSE)
    try:
        result = await make_runner(url=f"http://127.0.0.1:{proxy.port}/text").run()
    finally:
        await proxy.close()

    assert result.status is Status.FAIL
    assert result.output in (
        f"connection closed by server (127.0.0.1:{proxy.port})",
        f"connection reset by server (127.0.0.1:{proxy.port})",
    )


async def test_garbage_reply_is_named_in_one_line(make_runner: MakeRunner) -> None:
    async def reply_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"\x00\x01garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    garbage = await asyncio.start_server(reply_garbage, "127.0.0.1", 0)
    port = garbage.sockets[0].getsockname()[1]
    try:
        result = await make_runner(url=f"http://127.0.0.1:{port}/").run()
    finally:
        garbage.close()
        await garbage.wait_closed()

    assert result.status is Status.FAIL
    assert result.output == f"invalid HTTP response from 127.0.0.1:{port}: bad status line"


# ---------------------------------------------------------------- TLS


def make_cert(directory: Path, name: str, days: int) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made by the openssl CLI: (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def make_expired_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "expired.pem", directory / "expired.key"
    csr, ext = directory / "expired.csr", directory / "expired.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-signkey", str(key), "-days", "-1",
         "-extfile", str(ext), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def openssl_not_after(cert: Path) -> float:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-enddate"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    text = out.strip().removeprefix("notAfter=")
    return float(calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y GMT")))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("certs")
    return {
        "short": make_cert(directory, "short", days=3),
        "long": make_cert(directory, "long", days=10000),  # past 2049: GeneralizedTime
        "expired": make_expired_cert(directory),
    }


async def tls_server(aiohttp_server: ServerFactory, cert: Path, key: Path) -> TestServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return await aiohttp_server(make_app(), ssl=context)


async def test_self_signed_certificate_fails_verification(
    make_runner: MakeRunner, aiohttp_server: ServerFactory, certs: dict[str, tuple[Path, Path]]
) -> None:
    server = await tls_server(aiohttp_server, *certs["short"])
    result = await make_runner(url=url(server, "/text")).run()

    assert result.status is Status.FAIL
    assert result.output == "TLS certificate verify failed: self-signed certificate"


async def test_verify_tls_false_still_reads_expiry_and_judges_it_by_default(
    make_runner: MakeRunner, aiohttp_server: ServerFactory, certs: dict[str, tuple[Path, Path]]
) -> None:
    server = await tls_server(aiohttp_server, *certs["short"])
    result = await make_runner(url=url(server, "/text"), verify_tls=False).run()

    expiry = observed(result)["cert_expiry"]
    assert expiry is not None and 2 * DAY < expiry <= 3 * DAY
    # Three days left is past the type's default `fail: {cert_expiry: <7d}`.
    assert result.status is Status.FAIL
    assert result.output in ("cert_expiry 3d < 7d", "cert_expiry 2d23h < 7d")


async def test_trusted_certificate_warns_when_close_to_expiry(
    make_runner: MakeRunner, aiohttp_server: ServerFactory, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["short"]
    server = await tls_server(aiohttp_server, cert, key)
    runner = make_runner(
        url=url(server, "/text"),
        ca_file=str(cert),
        warn={"cert_expiry": "<14d"},
        fail={"cert_expiry": "off"},  # the default <7d would fail it
    )
    first = await runner.run()
    second = await runner.run()  # served from the cached expiry, no new handshake

    assert first.status is Status.WARN
    # 3 days from the certificate's creation: `3d` within half a second of it, then 2d23h.
    assert first.output in ("cert_expiry 3d < 14d", "cert_expiry 2d23h < 14d")
    assert second.status is Status.WARN
    assert observed(second)["cert_expiry"] == pytest.approx(observed(first)["cert_expiry"], abs=5)


async def test_expired_certificate_says_so(
    make_runner: MakeRunner, aiohttp_server: ServerFactory, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["expired"]
    server = await tls_server(aiohttp_server, cert, key)
    result = await make_runner(url=url(server, "/text"), ca_file=str(cert)).run()

    assert result.status is Status.FAIL
    assert result.output == "TLS certificate verify failed: certificate has expired"


@pytest.mark.parametrize("name", ["short", "long", "expired"])
def test_certificate_expiry_matches_openssl(certs: dict[str, tuple[Path, Path]], name: str) -> None:
    cert, _ = certs[name]
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())

    assert der_not_after(der) == openssl_not_after(cert)


# ---------------------------------------------------------------- config


def test_config_errors_name_the_key(write_config: Any) -> None:
    path = write_config(
        """
checks:
  - { name: a, type: http, url: 'api.example.com/health' }
  - { name: b, type: http, url: 'https://x/', method: FETCH }
  - { name: c, type: http, url: 'https://x/', expect: { status: [200, 'fine'] } }
  - { name: d, type: http, url: 'https://x/', expect: { stauts: 200 } }
  - { name: e, type: http, url: 'https://x/', ca_file: /nonexistent/ca.pem }
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [
        f"{path}: checks[0].url: expected a URL like https://host/path, "
        "got 'api.example.com/health'",
        f"{path}: checks[1].method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, "
        "OPTIONS, got 'FETCH'",
        f"{path}: checks[2].expect.status: expected a status like 200, '2xx' or '200-299', "
        "got 'fine'",
        f"{path}: checks[3].expect.stauts: unknown key",
        f"{path}: checks[4].ca_file: file not found: /nonexistent/ca.pem",
    ]


def test_bad_ports_and_ca_files_are_config_errors(
    write_config: Any, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["long"]
    path = write_config(
        f"""
checks:
  - {{ name: a, type: http, url: 'http://user:hunter22@x:99999/' }}
  - {{ name: b, type: http, url: 'http://x:abc/' }}
  - {{ name: c, type: http, url: 'http://user:hunter/22@x/' }}
  - {{ name: d, type: http, url: 'https://x/', ca_file: {key} }}
  - {{ name: e, type: http, url: 'https://x:8443/', ca_file: {cert} }}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.problems == [
        f"{path}: checks[0].url: port must be a number from 1 to 65535, got '99999'",
        f"{path}: checks[1].url: port must be a number from 1 to 65535, got 'abc'",
        f"{path}: checks[2].url: port must be a number from 1 to 65535; "
        "URL-encode any /, ? or # in the password",
        f"{path}: checks[3].ca_file: not a PEM certificate file: {key}",
    ]


def test_target_and_secrets_hide_credentials() -> None:
    config = HttpConfig.model_validate(
        {
            "name": "api",
            "type": "http",
            "url": "https://user:url-secret@api.example.com/v1?token=query-secret",
            "headers": {"X-Auth-Token": "Bearer tok-secret", "apikey": "anon-key", "X-Id": "7"},
        }
    )

    assert config.target() == "https://user:***@api.example.com/v1?token=***"
    assert set(config.secrets()) == {
        "url-secret",
        "query-secret",
        "Bearer tok-secret",
        "tok-secret",
        "anon-key",
    }


async def test_concurrent_checks_share_nothing(make_runner: MakeRunner, server: TestServer) -> None:
    """Two checks of one type, run at the same moments, keep their own state: headers,
    verdicts, error-rate windows and connections."""
    limits = {"warn": {"error_rate": "50%"}}
    passing = make_runner(
        name="api-a", url=url(server, "/echo"), headers={"Authorization": "Bearer a"}, **limits
    )
    failing = make_runner(
        name="api-b", url=url(server, "/echo"), headers={"Authorization": "Bearer b"},
        expect={"status": [201]}, **limits,
    )  # fmt: skip
    rounds = [await asyncio.gather(passing.run(), failing.run()) for _ in range(4)]

    assert [(a.status, b.status) for a, b in rounds] == [(Status.PASS, Status.FAIL)] * 4
    assert {b.output for _, b in rounds} == {"HTTP 200 (expected 201); error_rate 100% > 50%"}
    assert [observed(a)["error_rate"] for a, _ in rounds] == [0.0] * 4
    assert [observed(b)["error_rate"] for _, b in rounds] == [1.0] * 4
    seen = server.app[SEEN]
    by_token = {
        token: [r for r in seen if r["headers"]["Authorization"] == token]
        for token in ("Bearer a", "Bearer b")
    }
    assert [len(found) for found in by_token.values()] == [4, 4]
    ports = {token: {r["peer"] for r in found} for token, found in by_token.items()}
    assert ports["Bearer a"].isdisjoint(ports["Bearer b"])  # no connection is shared


def test_credentials_in_both_url_and_authorization_header_is_a_config_error(
    write_config: Any,
) -> None:
    path = write_config(
        "checks:\n"
        "  - name: api\n"
        "    type: http\n"
        "    url: http://user:pw@127.0.0.1:9/\n"
        "    headers: { Authorization: Bearer x }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: checks[0]: url has user:password and headers has Authorization; "
        "use only one of them"
    ]
