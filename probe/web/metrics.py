"""/metrics: the agent's registry (`probe.engine.metrics`) as Prometheus text or OpenMetrics."""

from __future__ import annotations

import asyncio
import ctypes
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from probe.engine.metrics import ProbeRegistry


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS).

    A scrape of thousands of checks makes tens of megabytes of bytes in pieces; freed,
    glibc kept them in the process (26 MB of RSS at 3,000 `http` checks, for good) until
    asked to give them back.
    """
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: libc's, without a search
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


TRIM = _malloc_trim()

# Bytes younger than this are served again while nothing changed: process_* figures and
# staleness move with time alone, and a second is finer than any scrape interval.
EXPOSITION_MAX_AGE = 1.0


# gzip's fastest level: at 1,000 `http` checks (7 MB) it takes 24 ms of CPU against
# 182 ms for zlib's default, for a body a third larger (370 KB against 280 KB).
GZIP_LEVEL = 1


@dataclass(slots=True)
class _Baked:
    version: tuple[object, ...]
    at: float
    body: asyncio.Future[list[bytes]]  # the exposition in pieces, never joined
    gzipped: asyncio.Future[bytes] | None = None  # made when first asked for


def _gzip(parts: list[bytes]) -> bytes:
    """gzip of the pieces as one stream (what `gzip.compress(..., mtime=0)` writes), fed
    a piece at a time: zlib lets go of the GIL while it deflates each one, where joining
    the pieces first held it for the copy of tens of megabytes (15-50 ms at 3,000 `http`
    checks), and the loop with it."""
    zipper = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip's header, mtime 0
    out = [zipper.compress(part) for part in parts]
    out.append(zipper.flush())
    return b"".join(out)


@dataclass(slots=True)
class CachedExposition:
    """/metrics bytes per content type, reused between changes; the per-check families
    written in slices on the loop (`probe.engine.metrics_lines`), the rest formatted off it.

    Content negotiation (`Accept`, `?name[]=`) and gzip are prometheus_client's, as in
    its `make_aiohttp_handler`; only where and how often the bytes are made differs.
    Concurrent scrapes of a changed store share one formatting run.
    """

    registry: ProbeRegistry
    clock: Callable[[], float] = time.monotonic
    _baked: dict[tuple[str, tuple[str, ...]], _Baked] = field(default_factory=dict)
    bakes: int = 0  # formatting runs so far (tests count them)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        encoder, content_type = choose_encoder(accept)
        names = tuple(request.query.getall("name[]", []))
        headers = {"Content-Type": content_type}
        # As aiohttp's enable_compression reads Accept-Encoding; the gzip is made once per
        # bake, on a worker thread, at the fastest level.
        if "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower():
            body = await self.gzipped_for((content_type, names), encoder)
            headers[hdrs.CONTENT_ENCODING] = "gzip"
            return web.Response(body=body, headers=headers)
        parts = await self.parts_for((content_type, names), encoder)
        # Written a piece at a time: one body of tens of megabytes was a copy on the loop
        # (into the transport's buffer) as long as the join it needed first.
        response = web.StreamResponse(headers=headers)
        response.content_length = sum(map(len, parts))
        await response.prepare(request)
        if request.method != hdrs.METH_HEAD:
            for part in parts:
                await response.write(part)
        await response.write_eof()
        return response

    async def parts_for(
        self, key: tuple[str, tuple[str, ...]], encoder: Callable[[Collector], bytes]
    ) -> list[bytes]:
        return await asyncio.shield(self._current(key, encoder).body)

    async def bytes_for(
        self, key: tuple[str, tuple[str, ...]], encoder: Callable[[Collector], bytes]
    ) -> bytes:
        """The whole body at once (joined off the loop): for callers that need one."""
        parts = await self.parts_for(key, encoder)
        return await asyncio.get_running_loop().run_in_executor(None, b"".join, parts)

    async def gzipped_for(
        self, key: tuple[str, tuple[str, ...]], encoder: Callable[[Collector], bytes]
    ) -> bytes:
        baked = self._current(key, encoder)
        if baked.gzipped is None:
            parts = await asyncio.shield(baked.body)
            if baked.gzipped is None:  # another scrape may have started it meanwhile
                loop = asyncio.get_running_loop()
                baked.gzipped = loop.run_in_executor(None, _gzip, parts)
        return await asyncio.shield(baked.gzipped)

    def _current(
        self, key: tuple[str, tuple[str, ...]], encoder: Callable[[Collector], bytes]
    ) -> _Baked:
        """The bake serving `key` now: the cached one while nothing changed, else a new one."""
        version = self.registry.version()
        now = self.clock()
        baked = self._baked.get(key)
        if baked is not None and baked.version == version and now - baked.at < EXPOSITION_MAX_AGE:
            return baked
        names = key[1]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bytes]]
        if names:
            # A filtered scrape (rare, small): prometheus_client's own filter, off the loop.
            source: Collector = self.registry.frozen().restricted_registry(names)
            future = loop.create_task(_one_piece(loop.run_in_executor(None, encoder, source)))
        else:
            future = loop.create_task(self._bake(encoder))
        baked = self._baked[key] = _Baked(version, now, future)
        # Stale after EXPOSITION_MAX_AGE anyway: the bytes (megabytes at thousands of
        # checks) are not kept between scrapes.
        loop.call_later(EXPOSITION_MAX_AGE, self._expire, key, baked)
        future.add_done_callback(lambda done: self._forget_failure(key, baked, done))
        self.bakes += 1
        return baked

    def _forget_failure(
        self, key: tuple[str, tuple[str, ...]], baked: _Baked, done: asyncio.Future[list[bytes]]
    ) -> None:
        if not done.cancelled() and done.exception() is not None and self._baked.get(key) is baked:
            del self._baked[key]  # never cache a failure

    def _expire(self, key: tuple[str, tuple[str, ...]], baked: _Baked) -> None:
        if self._baked.get(key) is baked and baked.body.done():
            del self._baked[key]
            if TRIM is not None:
                # On the next turn: this call's own arguments still hold the bytes. ctypes
                # lets go of the GIL for the call, so the loop does not wait on it.
                loop = asyncio.get_running_loop()
                loop.call_soon(loop.run_in_executor, None, TRIM, 0)

    async def _bake(self, encoder: Callable[[Collector], bytes]) -> list[bytes]:
        """The per-check families written in slices on the loop, then the few others
        (process, alerts, history) formatted by prometheus_client on a thread."""
        families, lines = self.registry.check_lines()
        headers = _headers(encoder, families)
        parts = await lines.render()
        await self.registry.store.refresh()  # probe_health_status, as /health says it
        rest = self.registry.frozen(per_check=False)
        loop = asyncio.get_running_loop()
        tail = await loop.run_in_executor(None, encoder, rest)
        body: list[bytes] = []
        for header, each in zip(headers, parts, strict=True):
            body.append(header)
            body += each
        body.append(tail)
        return body


async def _one_piece(body: Awaitable[bytes]) -> list[bytes]:
    return [await body]


def _headers(encoder: Callable[[Collector], bytes], families: list[Metric]) -> list[bytes]:
    """Each family's `# HELP`/`# TYPE` lines as the encoder writes them for the format."""
    text = encoder(_Families(families))
    text = text.removesuffix(b"# EOF\n")
    blocks = text.split(b"# HELP ")[1:]
    if len(blocks) != len(families):
        raise ValueError("a family's help text holds '# HELP '")
    return [b"# HELP " + block for block in blocks]


@dataclass(frozen=True, slots=True)
class _Families:
    families: list[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The agent's registry gets the cached, off-loop handler; any other, prometheus_client's."""
    if isinstance(registry, ProbeRegistry):
        return CachedExposition(registry)
    return make_aiohttp_handler(registry)
