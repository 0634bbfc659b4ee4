"""The http check's deeper views: where the time went (and its /metrics histogram), the
served chain's earliest expiry, TLS version and name mismatch, against real local servers
with a throw-away CA whose intermediate expires first."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe.checks.http import HttpConfig
from probe.checks.http_client import CONNECTORS
from probe.checks.tls_chain import earliest, subject_name
from probe.contract.config import AgentConfig, AlertsConfig, Config
from probe.core.model import CheckResult, Observation, Status
from probe.engine.metrics import build_registry
from probe.engine.store import ResultStore
from tests.conftest import MakeRunner, Runners

ServerFactory = Callable[..., Awaitable[TestServer]]
DAY = 86400.0
DELAY = 0.3  # seconds the slow endpoint waits before its first byte


@pytest.fixture
def make_runner(runners: Runners) -> MakeRunner:
    return runners.maker(HttpConfig, name="api", type="http", timeout=3, interval=10)


def make_app() -> web.Application:
    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(DELAY)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/fast", fast)
    app.router.add_get("/slow", slow)
    return app


def by_measure(result: CheckResult) -> dict[str, Observation]:
    return {o.measure: o for o in result.observations}


# ---------------------------------------------------------------- where the time went


async def test_first_byte_time_is_the_servers_delay(
    make_runner: MakeRunner, aiohttp_server: ServerFactory
) -> None:
    server = await aiohttp_server(make_app())
    runner = make_runner(url=f"http://localhost:{server.port}/slow")
    first = await runner.run()
    second = await runner.run()  # the kept-alive connection: no lookup, no connect

    seen = by_measure(first)
    first_byte = seen["first_byte_time"].value
    assert first.status is Status.PASS, first.output
    assert first_byte is not None and DELAY <= first_byte < DELAY + 0.25
    dns, connect = seen["dns_time"].value, seen["connect_time"].value
    assert dns is not None and 0 <= dns < 0.5
    assert connect is not None and 0 <= connect < 0.5
    assert "tls_time" not in seen  # plain http
    assert first.response_time >= first_byte

    again = by_measure(second)
    assert again["connect_time"].value is None
    assert again["connect_time"].note == "kept-alive connection"
    assert again["dns_time"].note == "kept-alive connection"
    second_byte = again["first_byte_time"].value
    assert second_byte is not None and second_byte >= DELAY


async def test_a_slow_first_byte_breaches_its_limit(
    make_runner: MakeRunner, aiohttp_server: ServerFactory
) -> None:
    server = await aiohttp_server(make_app())
    slow = await make_runner(
        url=f"http://127.0.0.1:{server.port}/slow", warn={"first_byte_time": "100ms"}
    ).run()
    fast = await make_runner(
        name="fast", url=f"http://127.0.0.1:{server.port}/fast", warn={"first_byte_time": "100ms"}
    ).run()

    assert slow.status is Status.WARN
    assert slow.output.startswith("first_byte_time ") and slow.output.endswith(" > 100ms")
    assert by_measure(slow)["dns_time"].note == "no name to look up"
    assert fast.status is Status.PASS


async def test_phases_fill_one_histogram_family_in_metrics(
    make_runner: MakeRunner, aiohttp_server: ServerFactory
) -> None:
    server = await aiohttp_server(make_app())
    runner = make_runner(url=f"http://localhost:{server.port}/slow")
    config = runner.config
    store = ResultStore(
        Config(source="t", agent=AgentConfig(), checks=[config], alerts=AlertsConfig())
    )
    registry = build_registry(store, None)

    before = _phase_samples(registry)
    store.record("api", await runner.run())
    store.record("api", await runner.run())
    after = _phase_samples(registry)

    # Every phase of the check exists from the first scrape, at zero.
    assert before[("first_byte", "_count", "")] == 0
    assert {phase for phase, _, _ in before} == {"dns", "connect", "first_byte"}
    assert after[("first_byte", "_count", "")] == 2
    assert after[("first_byte", "_bucket", "0.25")] == 0
    assert after[("first_byte", "_bucket", "0.5")] == 2
    assert after[("first_byte", "_sum", "")] >= 2 * DELAY
    # The second run reused the connection: one connect observed, not two.
    assert after[("connect", "_count", "")] == 1


def _phase_samples(registry: object) -> dict[tuple[str, str, str], float]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "probe_http_phase_duration_seconds":
            continue
        assert family.type == "histogram"
        for sample in family.samples:
            assert sample.labels["check"] == "api"
            suffix = sample.name.removeprefix(family.name)
            key = (sample.labels["phase"], suffix, sample.labels.get("le", ""))
            found[key] = sample.value
    return found


# ---------------------------------------------------------------- a chain made here


@dataclass(frozen=True)
class Chain:
    root: Path  # the CA clients trust
    served: Path  # leaf then intermediate, as a server sends them
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(
    subject: str,
    issuer: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    days: float,
    ca: bool,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_chain(directory: Path, intermediate_days: float, leaf_names: list[str]) -> Chain:
    """root (10y) -> intermediate (`intermediate_days`) -> leaf (1y) naming `leaf_names`."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = _cert("Probe Test Root", "Probe Test Root", keys[0], keys[0], 3650, ca=True)
    middle_name = "Probe Test Intermediate"
    middle = _cert(middle_name, "Probe Test Root", keys[1], keys[0], intermediate_days, ca=True)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in leaf_names]
    leaf = _cert(leaf_names[0], middle_name, keys[2], keys[1], 365, False, names)
    pem = serialization.Encoding.PEM
    chain = Chain(directory / "root.pem", directory / "served.pem", directory / "leaf.key")
    chain.root.write_bytes(root.public_bytes(pem))
    chain.served.write_bytes(leaf.public_bytes(pem) + middle.public_bytes(pem))
    chain.key.write_bytes(
        keys[2].private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return chain


async def tls_server(aiohttp_server: ServerFactory, chain: Chain) -> TestServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain.served, chain.key)
    return await aiohttp_server(make_app(), ssl=context)


@pytest.fixture(scope="module")
def expiring_intermediate(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(
        tmp_path_factory.mktemp("chain"), intermediate_days=5, leaf_names=["localhost"]
    )


@pytest.fixture(scope="module")
def other_name(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("other"), 400, leaf_names=["api.other.test"])


async def test_an_expiring_intermediate_is_what_cert_expiry_judges(
    make_runner: MakeRunner, aiohttp_server: ServerFactory, expiring_intermediate: Chain
) -> None:
    server = await tls_server(aiohttp_server, expiring_intermediate)
    result = await make_runner(
        url=f"https://localhost:{server.port}/fast",
        ca_file=str(expiring_intermediate.root),
    ).run()

    seen = by_measure(result)
    expiry = seen["cert_expiry"].value
    assert expiry is not None and 4 * DAY < expiry <= 5 * DAY  # not the leaf's year
    # Five days left: past the type's default `fail: {cert_expiry: <7d}`.
    assert result.status is Status.FAIL
    assert result.output in (
        f'cert_expiry {days} < 7d (intermediate "Probe Test Intermediate" expires first)'
        for days in ("5d", "4d23h")
    )
    # The handshake of the request itself: TLS 1.3 between two modern OpenSSLs.
    assert seen["tls_version"].note == "TLSv1.3" and seen["tls_version"].value == 1.3
    tls = seen["tls_time"].value
    assert tls is not None and 0 < tls < 1


async def test_a_certificate_for_other_names_says_so(
    make_runner: MakeRunner, aiohttp_server: ServerFactory, other_name: Chain
) -> None:
    server = await tls_server(aiohttp_server, other_name)
    by_host = await make_runner(
        url=f"https://localhost:{server.port}/fast", ca_file=str(other_name.root)
    ).run()
    by_ip = await make_runner(
        name="by-ip", url=f"https://127.0.0.1:{server.port}/fast", ca_file=str(other_name.root)
    ).run()

    assert by_host.status is Status.FAIL
    assert by_host.output == 'TLS certificate does not name localhost (it is for "api.other.test")'
    assert by_ip.output == 'TLS certificate does not name 127.0.0.1 (it is for "api.other.test")'


def test_the_chain_reader_skips_a_root_sent_along(tmp_path: Path) -> None:
    chain = make_chain(tmp_path, intermediate_days=30, leaf_names=["localhost"])
    served = [ssl.PEM_cert_to_DER_cert(pem) for pem in _pems(chain.served)]
    root = ssl.PEM_cert_to_DER_cert(chain.root.read_text())

    # The root expires in ten years, so its being sent must not matter; the intermediate's
    # 30 days are the chain's earliest even though the leaf comes first.
    found = earliest([*served, root])
    assert (found.position, found.subject, found.role) == (
        1,
        "Probe Test Intermediate",
        "intermediate",
    )
    assert subject_name(served[0]) == "localhost"
    assert earliest([root]).subject == "Probe Test Root"  # a lone self-signed one still counts


def _pems(path: Path) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [
        part.strip() + "\n" + marker + "\n"
        for part in path.read_text().split(marker)
        if part.strip()
    ]


async def test_checks_of_one_tls_setting_share_a_connector_not_phases_or_cookies(
    make_runner: MakeRunner, aiohttp_server: ServerFactory
) -> None:
    seen_cookies: list[str] = []

    async def cookie(request: web.Request) -> web.Response:
        seen_cookies.append(request.headers.get("Cookie", ""))
        await asyncio.sleep(DELAY)
        response = web.Response(text="ok")
        response.set_cookie("session", request.query["who"])
        return response

    app = make_app()
    app.router.add_get("/cookie", cookie)
    server = await aiohttp_server(app)
    base = f"http://localhost:{server.port}/cookie"
    first = make_runner(name="first", url=f"{base}?who=first")
    second = make_runner(name="second", url=f"{base}?who=second")
    other_tls = make_runner(name="unverified", url=f"{base}?who=third", verify_tls=False)
    opened = CONNECTORS.count()
    try:
        # At once: two connections of one connector, each timed for its own check.
        a, b = await asyncio.gather(first.run(), second.run())
        assert CONNECTORS.count() == opened + 1
        await other_tls.run()
        assert CONNECTORS.count() == opened + 2  # verify_tls differs: a connector of its own
        for result in (a, b):
            phases = by_measure(result)
            assert result.status is Status.PASS, result.output
            connect, first_byte = phases["connect_time"].value, phases["first_byte_time"].value
            assert connect is not None and 0 <= connect < 0.5
            assert first_byte is not None and DELAY <= first_byte < DELAY + 0.25
        again = by_measure(await first.run())
        assert again["connect_time"].note == "kept-alive connection"
        # A cookie lives for its run (its redirects), never into another run or check.
        assert seen_cookies == ["", "", "", ""]
    finally:
        for runner in (first, second, other_tls):
            await runner.close()
    assert CONNECTORS.count() == opened
