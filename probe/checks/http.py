"""HTTP(S): one request, judged by status, body and JSON fields; certificate expiry."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import functools
import json
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Annotated, Any, ClassVar, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from probe import __version__, limits
from probe.checks.errors import failure
from probe.contract import Check, CheckConfig, CheckContext, Report
from probe.fields import StrictModel
from probe.model import Sample, Unit
from probe.networds import address, network_words, url_port
from probe.redact import is_sensitive_header, redact_url, url_secrets

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_BODY = 1024 * 1024  # enough for any health endpoint; a huge page must not eat memory
CERT_REFRESH = 3600.0  # certificates change rarely; a handshake per run would skew timing
# Threads for the names http checks look up. A resolver that drops queries holds each one
# for its whole timeout (10s by default), so these must not be the loop's default
# executor: asyncpg and redis-py resolve `db.internal` there when they reconnect.
RESOLVER_THREADS = 4
_MISSING = object()


# ---------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class StatusRange:
    low: int
    high: int
    text: str

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.low <= status <= self.high


def _parse_status(item: object) -> StatusRange:
    error = f"expected a status like 200, '2xx' or '200-299', got {item!r}"
    if isinstance(item, bool):
        raise ValueError(error)
    text = str(item).strip().lower()
    if len(text) == 3 and text[0] in "12345" and text.endswith("xx"):
        low = int(text[0]) * 100
        return StatusRange(low, low + 99, text)
    low_text, dash, high_text = text.partition("-")
    try:
        low, high = int(low_text), int(high_text) if dash else int(low_text)
    except ValueError:
        raise ValueError(error) from None
    if not 100 <= low <= high <= 599:
        raise ValueError(error)
    return StatusRange(low, high, text)


def _parse_statuses(raw: object) -> tuple[StatusRange, ...]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    if not items:
        raise ValueError("expected at least one status")
    return tuple(item if isinstance(item, StatusRange) else _parse_status(item) for item in items)


Statuses = Annotated[tuple[StatusRange, ...], BeforeValidator(_parse_statuses)]
DEFAULT_STATUSES = (StatusRange(200, 399, "200-399"),)


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


class Expect(StrictModel):
    status: Statuses = DEFAULT_STATUSES
    body_contains: str | None = None
    # `json` is a BaseModel method name, hence the alias.
    json_fields: dict[str, Any] = Field(default_factory=dict, alias="json")


class HttpConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"cert_expiry"}
    # A certificate two weeks from expiry missed its renewal (ACME renews at 30 days).
    default_warn: ClassVar[limits.LimitMap] = limits.defaults({"cert_expiry": "<14d"})
    default_fail: ClassVar[limits.LimitMap] = limits.defaults({"cert_expiry": "<7d"})
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url", "headers"})

    type: Literal["http"]
    url: str
    method: str = "GET"
    headers: Headers = Field(default_factory=dict)
    body: str | None = None
    expect: Expect = Field(default_factory=Expect)
    verify_tls: bool = True
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected a URL like https://host/path, got {redact_url(value)!r}")
        url_port(value)
        return value

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


class HttpCheck(Check[HttpConfig]):
    config_model = HttpConfig

    def __init__(self, config: HttpConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._session: aiohttp.ClientSession | None = None
        self._not_after: float | None = None  # unix time the server certificate expires
        self._cert_read_at = 0.0

    async def run(self) -> Report:
        cert_task = asyncio.ensure_future(self._read_cert()) if self._cert_due() else None
        try:
            problem = await self._request()
            cert_problem = await cert_task if cert_task else None
        finally:
            if cert_task and not cert_task.done():
                cert_task.cancel()
        samples = self._cert_samples(cert_problem if not problem else None)
        return Report(samples=samples, failure=problem or "")

    # -- the request

    async def _request(self) -> str | None:
        """Words for what is wrong with the response, or None when it is as expected."""
        config = self.config
        try:
            async with self._get_session().request(
                config.method, config.url, headers=config.headers, data=config.body
            ) as response:
                body = await _read_limited(response)
                return _judge(response.status, body, config.expect)
        except aiohttp.ClientError as exc:
            raise failure(exc, self._words(exc)) from None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            config = self.config
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=config.timeout),
                connector=aiohttp.TCPConnector(
                    ssl=self._ssl_context(), limit=2, resolver=HttpResolver()
                ),
                headers={"User-Agent": f"probe/{__version__}"},
            )
        return self._session

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self.config.verify_tls:
            return False
        if self.config.ca_file:
            return ssl.create_default_context(cafile=self.config.ca_file)
        return True

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

    # -- the certificate

    def _cert_due(self) -> bool:
        if not self.config.is_https:
            return False
        return self._not_after is None or time.monotonic() - self._cert_read_at > CERT_REFRESH

    async def _read_cert(self) -> str | None:
        """Reads the server certificate's expiry; returns words when it could not."""
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
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # a reset while closing changes nothing
                await writer.wait_closed()
        try:
            self._not_after = der_not_after(der)
        except ValueError:
            return "certificate could not be read"
        self._cert_read_at = time.monotonic()
        return None

    def _cert_samples(self, problem: str | None) -> list[Sample]:
        if self._not_after is not None:
            return [Sample("cert_expiry", self._not_after - time.time(), Unit.SECONDS)]
        if problem:
            return [Sample("cert_expiry", None, Unit.SECONDS, note=problem)]
        return []

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


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


# ---------------------------------------------------------------- judging the response


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


def _judge(status: int, body: bytes, expect: Expect) -> str | None:
    if not any(status in allowed for allowed in expect.status):
        wanted = ", ".join(allowed.text for allowed in expect.status)
        return f"HTTP {status} (expected {wanted})"
    problems: list[str] = []
    text = body.decode("utf-8", errors="replace")
    if expect.body_contains is not None and expect.body_contains not in text:
        problems.append(f"body does not contain {json.dumps(expect.body_contains)}")
    if expect.json_fields:
        problems += _json_problems(text, expect.json_fields)
    return "; ".join(problems) or None


def _json_problems(text: str, expected: dict[str, Any]) -> list[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return ["body is not JSON"]
    problems = []
    for path, want in expected.items():
        got = _lookup(document, path)
        if got is _MISSING:
            problems.append(f"json {path} is missing, expected {_show(want)}")
        elif not _same(got, want):
            problems.append(f"json {path} is {_show(got)}, expected {_show(want)}")
    return problems


def _lookup(document: Any, path: str) -> Any:
    """`data.items.0.id`: keys into objects, indexes into arrays."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _is_index(part, len(node)):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _is_index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def _same(got: Any, want: Any) -> bool:
    # JSON true is not 1: Python's True == 1 must not make a wrong value pass.
    return bool(got == want and isinstance(got, bool) == isinstance(want, bool))


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- certificate expiry


def der_not_after(der: bytes) -> float:
    """Unix time of a DER certificate's notAfter.

    The standard library only decodes certificates it has verified, and this is the one
    field needed, so a small DER walk beats adding the `cryptography` package:
    Certificate -> tbsCertificate -> [version], serial, signature, issuer, validity.
    """
    certificate, _ = _der_item(der, 0, 0x30)
    tbs, _ = _der_item(certificate, 0, 0x30)
    offset = 0
    if tbs[:1] == b"\xa0":  # explicit [0] version, absent in v1 certificates
        offset = _der_skip(tbs, offset)
    for _ in range(3):  # serialNumber, signature, issuer
        offset = _der_skip(tbs, offset)
    validity, _ = _der_item(tbs, offset, 0x30)
    after = _der_skip(validity, 0)
    return _der_time(validity, after)


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, content length) of the item at `offset`."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or start + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, length


def _der_item(data: bytes, offset: int, tag: int) -> tuple[bytes, int]:
    found, start, length = _der_header(data, offset)
    if found != tag:
        raise ValueError(f"unexpected DER tag {found:#x}")
    return data[start : start + length], start + length


def _der_skip(data: bytes, offset: int) -> int:
    _, start, length = _der_header(data, offset)
    return start + length


def _der_time(data: bytes, offset: int) -> float:
    tag, start, length = _der_header(data, offset)
    text = data[start : start + length].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; years 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"unexpected DER tag {tag:#x}")
    if len(text) != 15 or not text.endswith("Z"):
        raise ValueError(f"unexpected certificate time {text!r}")
    return float(calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ")))
