"""Where an `http` request's time went: name lookup, TCP connect, TLS handshake, and the
wait for the first byte of the response, as blackbox_exporter splits it.

aiohttp's tracing hooks mark the lookup, the connection and the request; the TCP/TLS
split has no hook, so the connector builds its protocol through `TimedHandler`: asyncio
makes the protocol once the socket is connected and calls its `connection_made` once
the handshake is done.

One connector serves many checks (`probe.checks.http_client`), so nothing here belongs to
a check: the hooks find the request's timer in `trace_request_ctx`, and the protocol
finds it in `CURRENT`, which the check sets around its request (asyncio builds the
protocol inside the requesting task, whose context it reads).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from probe.contract.plugin import MetricFamily
from probe.core.model import Sample, Unit

PHASES = ("dns", "connect", "tls", "first_byte")
PHASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PHASE_FAMILY = MetricFamily(
    "probe_http_phase_duration_seconds",
    "Seconds each phase of an http check's request took (dns, connect, tls, first_byte); "
    "a phase a kept-alive connection skipped is not observed.",
    ("check", "phase"),
    kind="histogram",
    buckets=PHASE_BUCKETS,
)
REUSED = "kept-alive connection"
CACHED = "name lookup cached"
NO_NAME = "no name to look up"  # the URL holds an IP address
# `ssl_object.version()` -> the number users write limits in (`fail: {tls_version: <1.2}`).
TLS_VERSIONS = {"TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


# The measure of each phase, made once: every result holds these names.
PHASE_MEASURES = {phase: f"{phase}_time" for phase in PHASES}


class PhaseTimer:
    """The phases of one run's request. Made per run, not kept per check: its dicts and
    set cost about 700 bytes a check between runs."""

    __slots__ = ("_marks", "cached", "reused", "seen", "spent", "tls_version")

    def __init__(self, tls_version: str = "") -> None:
        # The previous run's: a kept-alive connection has no handshake to read it from.
        self.tls_version = tls_version
        self.spent = dict.fromkeys(PHASES, 0.0)
        self.seen: set[str] = set()
        self.reused = False
        self.cached = False
        self._marks: dict[str, float] = {}

    # -- marks

    def _mark(self, name: str) -> None:
        self._marks[name] = time.perf_counter()

    def _add(self, phase: str, since: str) -> None:
        started = self._marks.pop(since, None)
        if started is not None:
            self.spent[phase] += time.perf_counter() - started
            self.seen.add(phase)

    def connected(self) -> None:
        """The socket is connected: what came since the lookup (or the start) was TCP."""
        since = "dns_end" if "dns_end" in self._marks else "create"
        self._add("connect", since)
        self._marks.pop("dns_end", None)
        self._mark("tcp")

    def secured(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            self._marks.pop("tcp", None)
            return
        self._add("tls", "tcp")
        self.tls_version = str(ssl_object.version() or "")

    # -- what aiohttp's hooks call

    def _cached(self) -> None:
        self.cached = True

    def _reused(self) -> None:
        self.reused = True

    def _dns_done(self) -> None:
        self._add("dns", "dns")
        self._mark("dns_end")

    def _answered(self) -> None:
        self._add("first_byte", "sent")

    def _skipped(self, phase: str) -> str:
        if self.reused:
            return REUSED
        if phase == "dns":
            return CACHED if self.cached else NO_NAME
        return "not reached"

    # -- what a run reports

    def samples(self, https: bool) -> list[Sample]:
        found = []
        for phase in PHASES:
            if phase == "tls" and not https:
                continue
            measure = PHASE_MEASURES[phase]
            if phase in self.seen:
                found.append(Sample(measure, self.spent[phase], Unit.SECONDS))
            else:
                found.append(Sample(measure, None, Unit.SECONDS, note=self._skipped(phase)))
        if https and self.tls_version:
            version = TLS_VERSIONS.get(self.tls_version)
            found.append(Sample("tls_version", version, Unit.NONE, note=self.tls_version))
        return found


# The timer of the request the running task is making (see the module's doc).
CURRENT: ContextVar[PhaseTimer | None] = ContextVar("probe_http_phase_timer", default=None)


def _hook(action: Callable[[PhaseTimer], None]) -> Any:
    async def hook(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        timer = ctx.trace_request_ctx
        if isinstance(timer, PhaseTimer):
            action(timer)

    return hook


@functools.cache
def trace_config() -> aiohttp.TraceConfig:
    """One for every session: each request names its timer in `trace_request_ctx`."""
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_hook(lambda t: t._mark("dns")))
    config.on_dns_resolvehost_end.append(_hook(PhaseTimer._dns_done))
    config.on_dns_cache_hit.append(_hook(PhaseTimer._cached))
    config.on_connection_create_start.append(_hook(lambda t: t._mark("create")))
    config.on_connection_reuseconn.append(_hook(PhaseTimer._reused))
    config.on_request_headers_sent.append(_hook(lambda t: t._mark("sent")))
    config.on_request_redirect.append(_hook(PhaseTimer._answered))
    config.on_request_end.append(_hook(PhaseTimer._answered))
    config.freeze()
    return config


class TimedHandler(ResponseHandler):
    """aiohttp's protocol, telling the request's timer when TCP and TLS are done."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        timer = self._phase_timer = CURRENT.get()
        if timer is not None:
            timer.connected()
        super().__init__(loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._phase_timer is not None:
            self._phase_timer.secured(transport)
            self._phase_timer = None  # the connection outlives the request (keep-alive)
        super().connection_made(transport)
