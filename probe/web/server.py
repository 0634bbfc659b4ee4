"""Serving the app: the listening socket, its connection budget and its accept errors.

The port is open to anyone who can reach it, and each connection costs a file descriptor:
connections live a few seconds unless they carry requests, their number stays below the
descriptor budget, and a failing accept() is logged once a minute, not once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("probe.server")

# aiohttp's default holds an idle connection for an hour. Its keep-alive timer also runs
# from connect and a trickle of header bytes does not reset it, so this is the deadline
# for a request's headers as well. Kubelets open a connection per probe, and Prometheus
# reconnecting once per scrape costs nothing.
KEEPALIVE_SECONDS = 5.0
# Descriptors kept free for the checks' own connections, the log, and one loop turn of
# accepts (up to the listen backlog) that arrive before the oldest idle ones are closed.
FD_RESERVE = 256
BACKLOG = 128
MIN_CONNECTIONS = 16
# Far more than an orchestrator and a few scrapers need; each one costs memory too.
MAX_CONNECTIONS = 1000
ACCEPT_LOG_INTERVAL = 60.0


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.

    Docker 25+ and containerd 2 start containers with a soft limit of 1024, which the
    process may raise by itself up to the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Linux refuses an infinite soft limit; its own ceiling (nr_open) defaults to 2^20.
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.warning("cannot raise the open-file limit above %d", soft)
    return soft


def connection_limit(fd_limit: int) -> int:
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, fd_limit - FD_RESERVE))


class ConnectionGuard:
    """The listening socket's protocol factory: admits every connection, and past `limit`
    closes the oldest ones that have no request in progress.

    Refusing new connections instead would leave the kubelet's next /live probe queued
    behind whoever holds the slots; the newest connection is the one most likely to be a
    probe that sends its request at once.
    """

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit

    def __call__(self) -> RequestHandler:
        open_now = [h for h in self.server.connections if h.transport is not None]
        excess = len(open_now) + 1 - self.limit
        for handler in open_now:
            if excess <= 0:
                break
            # aiohttp has no public word for it; an unknown version closes the oldest.
            if not getattr(handler, "_request_in_progress", False):
                handler.force_close()
                excess -= 1
        return self.server()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, limit: int) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self.host = host
        self.port = port
        self.limit = limit

    @property
    def name(self) -> str:
        return f"http://{self.host or '0.0.0.0'}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            ConnectionGuard(server, self.limit),
            self.host,
            self.port,
            backlog=self._backlog,
            reuse_address=True,
        )


class AcceptErrorLog:
    """The loop's exception handler, quiet about accept() failures.

    Out of descriptors, asyncio reports the failed accept() with a traceback on every
    retry, up to the listen backlog each loop turn: 4,000 lines a second. One line per
    `interval` says the same, with a count; everything else goes where it went before.
    """

    def __init__(self, interval: float = ACCEPT_LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: float | None = None  # monotonic time of the last report
        self._since_last = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if str(context.get("message", "")).startswith("socket.accept() out of system"):
                self.failed(context.get("exception"))
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)

    def failed(self, exc: object) -> None:
        self._since_last += 1
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            return
        reason = str(getattr(exc, "strerror", None) or exc).lower()
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        repeats = (
            f"{self._since_last} failed accepts since the last report"
            if self._last is not None
            else f"said at most once every {self.interval:g}s"
        )
        log.error("cannot accept connections: %s (open-file limit %d); %s", reason, soft, repeats)
        self._last, self._since_last = now, 0


async def serve(app: web.Application, host: str | None, port: int) -> web.AppRunner:
    """Start serving `app`; the caller cleans the returned runner up."""
    limit = connection_limit(raise_fd_limit())
    AcceptErrorLog().install(asyncio.get_running_loop())
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=2.0, keepalive_timeout=KEEPALIVE_SECONDS
    )
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, limit).start()
    except BaseException:  # the port is taken, say: nothing may stay half open
        await runner.cleanup()
        raise
    return runner
