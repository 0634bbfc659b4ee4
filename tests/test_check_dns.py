"""The dns check against a real dnsmasq serving a test zone, one forwarding to an upstream
that fails, and a UDP socket that never answers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from probe.checks.dns import DnsConfig
from probe.contract.config import ConfigError, load_config
from probe.core.model import CheckResult, Status
from tests.conftest import MakeRunner, Runners, free_port

ZONE = "probe.test"


def free_udp_port() -> int:
    """A port free for both UDP and TCP (dnsmasq listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


class ServfailUpstream:
    """An upstream nameserver that answers SERVFAIL to everything, as a broken
    authoritative server does; dnsmasq forwards one domain to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = dns.message.make_response(dns.message.from_wire(data))
            reply.set_rcode(dns.rcode.SERVFAIL)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def start_dnsmasq(port: int, *options: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    process = subprocess.Popen(
        [binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
         "--pid-file=", "--user=root", "--listen-address=127.0.0.1", "--bind-interfaces",
         f"--port={port}", "--log-facility=-", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # answering is what ready means
        try:
            query = dns.message.make_query(f"api.{ZONE}", "A")
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return process
        except (dns.exception.Timeout, OSError):
            if process.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with {process.returncode}") from None
    process.kill()
    raise RuntimeError("dnsmasq did not answer within 10s")


@pytest.fixture(scope="module")
def resolver() -> Iterator[str]:
    """`127.0.0.1:port` of a dnsmasq serving the test zone; `broken.test` is forwarded to
    an upstream that fails."""
    upstream = ServfailUpstream()
    port = free_udp_port()
    process = start_dnsmasq(
        port,
        f"--local=/{ZONE}/",  # names of the zone it does not know are NXDOMAIN
        f"--address=/api.{ZONE}/10.0.0.1",
        f"--host-record=both.{ZONE},10.0.0.2,fd00::2",
        f"--host-record=many.{ZONE},10.0.1.1",
        f"--host-record=many.{ZONE},10.0.1.2",
        f"--cname=www.{ZONE},api.{ZONE}",
        f"--mx-host={ZONE},mail.{ZONE},10",
        f"--txt-record={ZONE},v=spf1 -all",
        f"--server=/broken.test/127.0.0.1#{upstream.port}",
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=5)
        upstream.close()


@pytest.fixture
def make_runner(runners: Runners, resolver: str) -> MakeRunner:
    return runners.maker(
        DnsConfig, name="dns", type="dns", timeout=1, interval=5, resolver=resolver
    )


def answers(result: CheckResult) -> tuple[float | None, str]:
    found = next(o for o in result.observations if o.measure == "answers")
    return found.value, found.note


@pytest.mark.parametrize(
    ("host", "record", "contain", "count", "note"),
    [
        (f"api.{ZONE}", "A", ["10.0.0.1"], 1, "10.0.0.1"),
        (f"both.{ZONE}", "aaaa", ["fd00::2"], 1, "fd00::2"),
        (f"www.{ZONE}", "CNAME", [f"api.{ZONE}."], 1, f"api.{ZONE}"),
        (ZONE, "MX", [f"mail.{ZONE}"], 1, f"10 mail.{ZONE}"),
        (ZONE, "TXT", ["v=spf1 -all"], 1, "v=spf1 -all"),
    ],
)
async def test_records_and_expected_answers(
    make_runner: MakeRunner, host: str, record: str, contain: list[str], count: int, note: str
) -> None:
    result = await make_runner(host=host, record=record, expect={"answers_contain": contain}).run()

    assert result.status is Status.PASS, result.output
    assert answers(result) == (count, note)


async def test_an_answer_that_is_not_there_names_what_came_back(make_runner: MakeRunner) -> None:
    result = await make_runner(
        host=f"many.{ZONE}", expect={"answers_contain": ["10.0.1.2", "10.0.9.9"]}
    ).run()

    assert result.status is Status.FAIL
    value, _ = answers(result)
    assert value == 2
    assert result.output in (
        f"A many.{ZONE}: 10.0.9.9 not among {shown}"
        for shown in ("10.0.1.1, 10.0.1.2", "10.0.1.2, 10.0.1.1")
    )


async def test_nxdomain_servfail_refused_and_no_record_in_words(
    make_runner: MakeRunner, resolver: str
) -> None:
    missing = await make_runner(host=f"nope.{ZONE}").run()
    broken = await make_runner(host="api.broken.test").run()
    refused = await make_runner(host="elsewhere.example").run()
    no_record = await make_runner(host=f"both.{ZONE}", record="MX").run()

    assert missing.output == f"nope.{ZONE} does not exist (NXDOMAIN from {resolver})"
    assert broken.output == f"resolver {resolver} failed to resolve api.broken.test (SERVFAIL)"
    assert refused.output == f"resolver {resolver} refused to resolve elsewhere.example (REFUSED)"
    assert no_record.output == f"both.{ZONE} has no MX record (resolver {resolver})"
    assert {r.status for r in (missing, broken, refused, no_record)} == {Status.FAIL}


async def test_an_expected_nxdomain_passes_and_an_answer_then_fails(
    make_runner: MakeRunner,
) -> None:
    gone = await make_runner(host=f"old.{ZONE}", expect={"rcode": "NXDOMAIN"}).run()
    still_there = await make_runner(host=f"api.{ZONE}", expect={"rcode": "NXDOMAIN"}).run()

    assert gone.status is Status.PASS
    assert still_there.output == f"api.{ZONE} answered NOERROR (expected NXDOMAIN)"


async def test_a_silent_resolver_is_named(runners: Runners) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: queries go unanswered
        where = f"127.0.0.1:{silent.getsockname()[1]}"
        runner = runners.of(
            DnsConfig.model_validate(
                {"name": "dns", "type": "dns", "host": "api.example.com", "resolver": where,
                 "timeout": 0.5, "interval": 5}
            )
        )  # fmt: skip
        started = time.monotonic()
        result = await runner.run()

    assert result.status is Status.FAIL
    assert result.output == f"resolver {where} did not answer within 450ms"
    assert time.monotonic() - started < 1.0


async def test_nothing_listening_is_connection_refused(runners: Runners) -> None:
    port = free_udp_port()
    config = {"name": "dns", "type": "dns", "host": "a.test", "resolver": f"127.0.0.1:{port}"}
    result = await runners.of(DnsConfig.model_validate({**config, "timeout": 1})).run()

    assert result.status is Status.FAIL
    assert result.output in (
        f"connection refused (127.0.0.1:{port})",
        f"resolver 127.0.0.1:{port} did not answer within 900ms",
    )


def test_config_errors_name_the_key(write_config: Any) -> None:
    path = write_config(
        f"""
checks:
  - {{ name: a, type: dns, host: api.example.com, record: PTR }}
  - {{ name: b, type: dns, host: api.example.com, resolver: dns.google }}
  - {{ name: c, type: dns, host: api.example.com, resolver: '127.0.0.1:99999' }}
  - {{ name: d, type: dns, host: api.example.com, expect: {{ rcode: GONE }} }}
  - {{ name: e, type: dns, host: api.example.com, resolver: '[::1]:{free_port()}' }}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    problems = [p.removeprefix(f"{path}: ") for p in caught.value.problems]
    assert problems[0].startswith("checks[0].record: ")
    assert "'CNAME'" in problems[0]
    assert problems[1] == (
        "checks[1].resolver: expected an IP address with an optional port (1.1.1.1, "
        "127.0.0.1:5353, [::1]:5353), got 'dns.google'"
    )
    assert problems[2] == "checks[2].resolver: port must be a number from 1 to 65535, got '99999'"
    assert problems[3].startswith("checks[3].expect.rcode: ")
    assert len(problems) == 4
