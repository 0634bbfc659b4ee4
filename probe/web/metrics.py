"""/metrics: the agent's registry (`probe.engine.metrics`) as Prometheus text or OpenMetrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from probe.engine.metrics import ProbeRegistry

# Bytes younger than this are served again while nothing changed: process_* figures and
# staleness move with time alone, and a second is finer than any scrape interval.
EXPOSITION_MAX_AGE = 1.0


@dataclass(slots=True)
class _Baked:
    version: tuple[object, ...]
    at: float
    body: asyncio.Future[bytes]


@dataclass(slots=True)
class CachedExposition:
    """/metrics bytes per content type, reused between changes, formatted off the loop.

    Content negotiation (`Accept`, `?name[]=`) and gzip are prometheus_client's, as in
    its `make_aiohttp_handler`; only where and how often the bytes are made differs.
    Concurrent scrapes of a changed store share one formatting run.
    """

    registry: ProbeRegistry
    clock: Callable[[], float] = time.monotonic
    _baked: dict[tuple[str, tuple[str, ...]], _Baked] = field(default_factory=dict)
    bakes: int = 0  # formatting runs so far (tests count them)

    async def __call__(self, request: web.Request) -> web.Response:
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        encoder, content_type = choose_encoder(accept)
        names = tuple(request.query.getall("name[]", []))
        body = await self.bytes_for((content_type, names), encoder)
        response = web.Response(body=body, headers={"Content-Type": content_type})
        response.enable_compression()  # large bodies are compressed on aiohttp's executor
        return response

    async def bytes_for(
        self, key: tuple[str, tuple[str, ...]], encoder: Callable[[Collector], bytes]
    ) -> bytes:
        version = self.registry.version()
        now = self.clock()
        baked = self._baked.get(key)
        if baked is not None and baked.version == version and now - baked.at < EXPOSITION_MAX_AGE:
            return await asyncio.shield(baked.body)
        frozen = self.registry.frozen()
        names = key[1]
        source: Collector = frozen.restricted_registry(names) if names else frozen
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, encoder, source)
        self._baked[key] = _Baked(version, now, future)
        self.bakes += 1
        try:
            return await asyncio.shield(future)
        except Exception:
            self._baked.pop(key, None)  # never cache a failure
            raise


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The agent's registry gets the cached, off-loop handler; any other, prometheus_client's."""
    if isinstance(registry, ProbeRegistry):
        return CachedExposition(registry)
    return make_aiohttp_handler(registry)
