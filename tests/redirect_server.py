"""A local HTTP server that answers with a redirect (or records what reaches it), for the
tests that notifiers never follow one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.conftest import free_port

NOT_FOLLOWED = "notifiers do not follow redirects; use the final URL"


@dataclass
class Server:
    """A local HTTP server on a free port: `redirect` answers every request with
    `status` and a Location; without it, every request is recorded and answered 200."""

    status: int = 0
    location: str = ""
    port: int = 0
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.method, request.path_qs, dict(request.headers), body))
        if self.status:
            location = self.location or str(request.url)
            return web.Response(status=self.status, headers={"Location": location})
        return web.Response(text="ok")


@pytest.fixture
async def other_host() -> AsyncIterator[Server]:
    """Where the redirects point: must receive nothing."""
    server = await Server().start()
    yield server
    await server.close()


async def redirecting(status: int, location: str) -> Server:
    return await Server(status=status, location=location).start()
