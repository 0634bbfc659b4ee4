"""HTTP(S): one request, judged by status, headers, body and JSON conditions; where its
time went; the served certificate chain's earliest expiry; the vendor's own status."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from queue import SimpleQueue
from typing import Annotated, Any, ClassVar, Literal, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from probe import __version__
from probe.checks import tls_chain
from probe.checks.errors import failure
from probe.checks.http_client import CONNECTORS, TlsKey
from probe.checks.http_expect import Expect, judge
from probe.checks.http_phases import (
    CURRENT,
    PHASE_FAMILY,
    PHASE_MEASURES,
    PHASES,
    PhaseTimer,
    trace_config,
)
from probe.contract import limits
from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    CheckFailed,
    MetricFamily,
    MetricPoint,
    Report,
)
from probe.core.model import CheckResult, Sample, Status, Unit
from probe.core.networds import address, network_words, web_url
from probe.core.redact import is_sensitive_header, redact_url, url_secrets
from probe.core.units import timed_out_after

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_BODY = 1024 * 1024  # enough for any health endpoint; a huge page must not eat memory
CERT_REFRESH = 3600.0  # certificates change rarely; a handshake per run would skew timing
# Threads for the names http checks look up. A resolver that drops queries holds each one
# for its whole timeout (10s by default), so these must not be the loop's default
# executor: asyncpg and redis-py resolve `db.internal` there when they reconnect.
RESOLVER_THREADS = 4
# OpenSSL's verify codes for a certificate that does not name the host (or IP) asked for.
NAME_MISMATCH = {62, 64}
# A vendor's status older than this many of its intervals says nothing about now.
VENDOR_FRESH_INTERVALS = 3
# With `vendor:`, the request gets this share of the timeout, so a timeout's words can
# still name the vendor's incident before the runner's deadline.
VENDOR_TIMEOUT_SHARE = 0.95


# ---------------------------------------------------------------- config


def _header_values(raw: object) -> object:
    """YAML reads `X-Api-Version: 2` as a number; a header value is text."""
    if not isinstance(raw, dict):
        return raw
    return {
        name: str(value)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else value
        for name, value in raw.items()
    }


# RFC 9110 field names are tokens; values must not break the header block.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")


def _valid_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP field name")
        if _HEADER_VALUE_FORBIDDEN.search(value):
            # The value may be a secret: name the header, never echo the value.
            raise ValueError(f"header {name!r} must not contain line breaks or NUL")
    return headers


Headers = Annotated[dict[str, str], BeforeValidator(_header_values), AfterValidator(_valid_headers)]


class HttpConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {
        "cert_expiry",
        "tls_version",
        *(f"{phase}_time" for phase in PHASES),
    }
    # A certificate two weeks from expiry missed its renewal (ACME renews at 30 days).
    default_warn: ClassVar[limits.LimitMap] = limits.defaults({"cert_expiry": "<14d"})
    default_fail: ClassVar[limits.LimitMap] = limits.defaults({"cert_expiry": "<7d"})
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url", "headers"})
    metric_families: ClassVar[tuple[MetricFamily, ...]] = (PHASE_FAMILY,)

    type: Literal["http"]
    url: str
    method: str = "GET"
    headers: Headers = Field(default_factory=dict)
    body: str | None = None
    expect: Expect = Field(default_factory=Expect)
    verify_tls: bool = True
    ca_file: str | None = None
    # A `statuspage` check whose incident is named in this check's failure words.
    vendor: str | None = None
    _vendor_interval: float = PrivateAttr(default=0.0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return web_url(value, "https://host/path")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value.upper() not in METHODS:
            raise ValueError(f"expected one of {', '.join(METHODS)}, got {value!r}")
        return value.upper()

    @field_validator("ca_file")
    @classmethod
    def _certificate_file(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not Path(value).is_file():
            raise ValueError(f"file not found: {value}")
        try:
            ssl.create_default_context().load_verify_locations(cafile=value)
        except PermissionError:
            raise ValueError(f"permission denied: {value}") from None
        except (ssl.SSLError, OSError, ValueError):
            # A key or a DER file here would otherwise fail every run with OpenSSL's words.
            raise ValueError(f"not a PEM certificate file: {value}") from None
        return value

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> HttpConfig:
        has_userinfo = urlsplit(self.url).username is not None
        if has_userinfo and any(name.lower() == "authorization" for name in self.headers):
            # aiohttp refuses the request; say so now rather than fail every run.
            raise ValueError(
                "url has user:password and headers has Authorization; use only one of them"
            )
        return self

    def target(self) -> str:
        return redact_url(self.url)

    def named_checks(self) -> list[tuple[str, str, str]]:
        return [("vendor", self.vendor, "statuspage")] if self.vendor else []

    def linked(self, others: Sequence[CheckConfig]) -> Self:
        """This config knowing how often its vendor's status is read (to tell stale)."""
        vendor = next((o for o in others if o.name == self.vendor), None)
        if vendor is None:
            return self
        copy = self.model_copy()
        copy._vendor_interval = vendor.interval
        return copy

    @property
    def vendor_interval(self) -> float:
        return self._vendor_interval

    def metric_points(self) -> Iterable[MetricPoint]:
        for phase in PHASES:
            if phase != "tls" or self.is_https:
                yield MetricPoint(PHASE_FAMILY, (self.name, phase), "", PHASE_MEASURES[phase])

    def secrets(self) -> list[str]:
        found = url_secrets(self.url)
        for name, value in self.headers.items():
            if is_sensitive_header(name) and value:
                # `Bearer abc123`: the token alone may be echoed too.
                found += [value, *value.split()[-1:]]
        return found

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def is_https(self) -> bool:
        return urlsplit(self.url).scheme == "https"


# ---------------------------------------------------------------- name lookups

P = ParamSpec("P")
T = TypeVar("T")


class DaemonThreads(Executor):
    """A fixed set of daemon threads.

    ThreadPoolExecutor joins its threads when the interpreter exits, and a lookup hung on
    a dead resolver would hold up the exit after SIGTERM for the resolver's whole timeout,
    past Docker's grace period. A daemon thread is simply abandoned.
    """

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self.name = name
        self._work: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return  # every waiter gave up before a thread was free
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the waiter, as ThreadPoolExecutor does
                future.set_exception(exc)

        self._work.put(run)
        self._start()
        return future

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for i in range(self.count):
            threading.Thread(target=self._serve, name=f"{self.name}-{i}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._work.get()()


class Lookups:
    """getaddrinfo for http checks: on threads of their own, one lookup per name at once.

    Callers asking for a name already being looked up wait for that lookup instead of
    taking another thread: a group of checks on one host, and a check's certificate
    handshake beside its request, cost one lookup between them.
    """

    def __init__(self, threads: int = RESOLVER_THREADS) -> None:
        self._executor = DaemonThreads(threads, "probe-http-dns")
        # Futures belong to one event loop; tests and `probe check` run several in turn.
        self._pending: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, int, int], asyncio.Future[Any]]
        ] = weakref.WeakKeyDictionary()

    async def getaddrinfo(self, host: str, port: int, family: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        pending = self._pending.setdefault(loop, {})
        key = (host, port, family)
        lookup = pending.get(key)
        if lookup is None:
            lookup = loop.run_in_executor(self._executor, _getaddrinfo, host, port, family)
            pending[key] = lookup
            lookup.add_done_callback(lambda done: _forget(pending, key, done))
        # One caller giving up (its check timed out) must not cancel the others' lookup.
        result: list[Any] = await asyncio.shield(lookup)
        return result


def _getaddrinfo(host: str, port: int, family: int) -> list[Any]:
    return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)


def _forget(
    pending: dict[tuple[str, int, int], asyncio.Future[Any]],
    key: tuple[str, int, int],
    done: asyncio.Future[Any],
) -> None:
    pending.pop(key, None)
    if not done.cancelled():
        done.exception()  # retrieved: a failure every waiter abandoned is not logged


LOOKUPS = Lookups()


class HttpResolver(AbstractResolver):
    """aiohttp's resolver for http checks, through LOOKUPS."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = [_resolved(host, info) for info in await LOOKUPS.getaddrinfo(host, port, family)]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"no addresses for {host}")
        return found

    async def close(self) -> None:
        """LOOKUPS outlives every session."""


def _resolved(host: str, info: tuple[Any, ...]) -> ResolveResult:
    family, _, proto, _, address = info
    ip, port = address[0], address[1]
    if family == socket.AF_INET6 and len(address) > 3 and address[3]:
        # A link-local address needs its scope (`fe80::1%eth0`); numeric, so no lookup.
        ip, _ = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
    return ResolveResult(
        hostname=host,
        host=ip,
        port=port,
        family=family,
        proto=proto,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )


# ---------------------------------------------------------------- check


class NameMismatch(CheckFailed):
    """The certificate verified but names other hosts: words wait for its subject."""


class HttpCheck(Check[HttpConfig]):
    config_model = HttpConfig

    def __init__(self, config: HttpConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._connector: aiohttp.TCPConnector | None = None  # shared (http_client)
        self._loop: asyncio.AbstractEventLoop | None = None  # the shared connector's
        self._tls_version = ""  # the last run's, for a run on a kept-alive connection
        self._expiring: tls_chain.Served | None = None  # the chain's first to expire
        self._leaf_name = ""  # the common name of the server's own certificate
        self._cert_read_at = 0.0

    async def run(self) -> Report:
        cert_task = asyncio.ensure_future(self._read_cert()) if self._cert_due() else None
        phases = PhaseTimer(self._tls_version)
        try:
            try:
                problem = await self._request(phases)
            except NameMismatch:
                if cert_task:
                    await cert_task
                raise CheckFailed(self._mismatch_words() + self._vendor_words()) from None
            except CheckFailed as exc:
                raise CheckFailed(str(exc) + self._vendor_words()) from None
            except TimeoutError:
                if not self._vendor_words():
                    raise
                raise CheckFailed(
                    timed_out_after(self.config.timeout) + self._vendor_words()
                ) from None
            cert_problem = await cert_task if cert_task else None
        finally:
            if cert_task and not cert_task.done():
                cert_task.cancel()
        self._tls_version = phases.tls_version
        samples = phases.samples(self.config.is_https)
        samples += self._cert_samples(cert_problem if not problem else None)
        words = problem + self._vendor_words() if problem else ""
        return Report(samples=samples, failure=words)

    # -- the request

    async def _request(self, phases: PhaseTimer) -> str | None:
        """Words for what is wrong with the response, or None when it is as expected."""
        config = self.config
        budget = config.timeout * (VENDOR_TIMEOUT_SHARE if config.vendor else 1.0)
        timing = CURRENT.set(phases)  # for the connection's protocol, if one is made
        try:
            async with (
                asyncio.timeout(budget if config.vendor else None),
                self._session() as session,
                session.request(
                    config.method,
                    config.url,
                    headers=config.headers,
                    data=config.body,
                    trace_request_ctx=phases,
                ) as response,
            ):
                body = await read_limited(response)
                return judge(response.status, response.headers, body, config.expect)
        except aiohttp.ClientError as exc:
            if _name_mismatch(exc):
                raise NameMismatch() from None
            raise failure(exc, self._words(exc)) from None
        finally:
            CURRENT.reset(timing)

    def _session(self) -> aiohttp.ClientSession:
        """A session for one request, on the shared connector: making one takes about 5 µs,
        keeping one per check took 3 KB a check. Cookies a server sets live for the run
        (its redirects), never into the next run or another check."""
        if self._connector is None:
            self._connector = CONNECTORS.acquire(self._tls_key(), HttpResolver())
            self._loop = asyncio.get_running_loop()
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            connector=self._connector,
            connector_owner=False,
            headers={"User-Agent": f"probe/{__version__}"},
            trace_configs=[trace_config()],
        )

    def _tls_key(self) -> TlsKey:
        return (self.config.verify_tls, self.config.ca_file)

    def _words(self, exc: BaseException) -> str | None:
        host, where = self.config.host, address(self.config.host, self.config.port)
        words = network_words(exc, host, where)
        if words:
            return words
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"connection closed by server ({where})"
        if isinstance(exc, aiohttp.TooManyRedirects):
            return f"too many redirects (last: {redact_url(str(exc.request_info.real_url))})"
        if isinstance(exc, aiohttp.ClientPayloadError):
            return f"response body cut short ({where})"
        if isinstance(exc, aiohttp.ClientResponseError):
            return _invalid_response_words(str(exc.message), where)
        return None

    def _mismatch_words(self) -> str:
        words = f"TLS certificate does not name {self.config.host}"
        return f'{words} (it is for "{self._leaf_name}")' if self._leaf_name else words

    # -- the vendor's own status

    def _vendor_words(self) -> str:
        """` (OpenAI reports: "Elevated error rates")` while the vendor's statuspage
        check reports an incident; '' otherwise."""
        config = self.config
        if not config.vendor:
            return ""
        agent = self.context.agent
        latest: CheckResult | None = agent.results(config.vendor) if agent else None
        if latest is None or latest.status is Status.PASS:
            return ""
        fresh_for = VENDOR_FRESH_INTERVALS * config.vendor_interval
        if fresh_for and self.context.clock() - latest.observed_at > fresh_for:
            return ""
        words = next(
            (o.note for o in latest.observations if o.status is not Status.PASS and o.note),
            latest.output,
        )
        return f" ({words})" if words else ""

    # -- the certificate chain

    def _cert_due(self) -> bool:
        if not self.config.is_https:
            return False
        return self._expiring is None or time.monotonic() - self._cert_read_at > CERT_REFRESH

    async def _read_cert(self) -> str | None:
        """Reads the served chain's earliest expiry; returns words when it could not."""
        config = self.config
        try:
            async with asyncio.timeout(config.timeout):
                writer = await _tls_connect(config.host, config.port, _cert_reader())
        except TimeoutError:
            return "timed out reading the certificate"
        except OSError as exc:
            where = address(config.host, config.port)
            return network_words(exc, config.host, where) or "certificate could not be read"
        try:
            chain = tls_chain.served_chain(writer.get_extra_info("ssl_object"))
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # a reset while closing changes nothing
                await writer.wait_closed()
        try:
            self._expiring = tls_chain.earliest(chain)
            self._leaf_name = tls_chain.subject_name(chain[0])
        except ValueError:
            return "certificate could not be read"
        self._cert_read_at = time.monotonic()
        return None

    def _cert_samples(self, problem: str | None) -> list[Sample]:
        expiring = self._expiring
        if expiring is not None:
            note = ""
            if expiring.position > 0:
                # The leaf is fine: say which one is not, or people renew the wrong one.
                note = f'intermediate "{expiring.subject}" expires first'
            left = expiring.not_after - time.time()
            return [Sample("cert_expiry", left, Unit.SECONDS, note=note, note_explains=True)]
        if problem:
            return [Sample("cert_expiry", None, Unit.SECONDS, note=problem)]
        return []

    async def close(self) -> None:
        connector, self._connector = self._connector, None
        if connector is not None and self._loop is not None:
            await CONNECTORS.release(self._tls_key(), self._loop)


def _name_mismatch(exc: BaseException) -> bool:
    error = getattr(exc, "certificate_error", None)
    return isinstance(exc, aiohttp.ClientConnectorCertificateError) and (
        getattr(error, "verify_code", None) in NAME_MISMATCH
    )


@functools.cache
def _cert_reader() -> ssl.SSLContext:
    """The context for reading certificates, built once: no verification here (aiohttp
    verifies, or is told not to, and an expired or self-signed certificate still has an
    expiry worth reporting), so no CA bundle either: `create_default_context()` loads it,
    60ms on the event loop for each check whose certificate is due."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _tls_connect(host: str, port: int, context: ssl.SSLContext) -> asyncio.StreamWriter:
    """A TLS connection to the first address of `host` that answers.

    The name goes through LOOKUPS, where the request's own lookup of it is usually still
    running: asyncio would look it up again, on the default executor.
    """
    addresses = await HttpResolver().resolve(host, port, socket.AF_UNSPEC)
    error: OSError | None = None
    for found in addresses:
        try:
            _, writer = await asyncio.open_connection(
                found["host"], found["port"], ssl=context, server_hostname=host
            )
            return writer
        except OSError as exc:
            error = exc
    assert error is not None  # resolve() returns at least one address or raises
    raise error


def _invalid_response_words(message: str, where: str) -> str:
    """One line from the parser's several (`Bad status line:\n  Expected HTTP/...\n  ^`):
    its first line says what was wrong; the rest echoes the server's bytes."""
    lines = message.strip().splitlines()
    reason = lines[0].strip().rstrip(":. ")[:100] if lines else ""
    words = f"invalid HTTP response from {where}"
    return f"{words}: {reason[:1].lower()}{reason[1:]}" if reason else words


# ---------------------------------------------------------------- the body


async def read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]
