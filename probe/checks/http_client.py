"""One aiohttp connector for all `http` checks whose TLS settings agree.

A connector per check cost about 8 KB a check (its pools, its DNS cache, its protocol
objects and kept-alive sockets) and one DNS cache per check. Checks now share one per
event loop and TLS setting (`verify_tls`, `ca_file`; probe sets no proxy): its DNS cache
and kept-alive connections serve every check of the same host. Each check keeps a
session of its own on it, so cookies never cross from one check to another. The
connector is closed when its last check closes.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass

import aiohttp

from probe.checks.http_phases import TimedHandler

TlsKey = tuple[bool, str | None]  # (verify_tls, ca_file)


@dataclass(slots=True)
class _Shared:
    connector: aiohttp.TCPConnector
    users: int = 0


class Connectors:
    def __init__(self) -> None:
        self._open: dict[tuple[asyncio.AbstractEventLoop, TlsKey], _Shared] = {}

    def acquire(self, key: TlsKey, resolver: aiohttp.abc.AbstractResolver) -> aiohttp.TCPConnector:
        """The shared connector for `key` on the running loop; `release` it once done."""
        loop = asyncio.get_running_loop()
        shared = self._open.get((loop, key))
        if shared is None or shared.connector.closed:
            # No total limit: each check has at most one request in flight.
            connector = aiohttp.TCPConnector(ssl=_ssl(*key), limit=0, resolver=resolver)
            # No hook marks the end of TCP and the start of TLS; the protocol aiohttp
            # builds for each connection does (see http_phases).
            connector._factory = functools.partial(TimedHandler, loop=loop)  # type: ignore[assignment]
            shared = self._open[(loop, key)] = _Shared(connector)
        shared.users += 1
        return shared.connector

    async def release(self, key: TlsKey, loop: asyncio.AbstractEventLoop) -> None:
        shared = self._open.get((loop, key))
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del self._open[(loop, key)]
            await shared.connector.close()

    def count(self) -> int:
        """Connectors open now (tests read it)."""
        return len(self._open)


def _ssl(verify_tls: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    if not verify_tls:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


CONNECTORS = Connectors()
