"""What tests share: a hand-moved clock, polling, and the agent's app over a store.

Test modules import from here (and the other helper modules of tests/), never from one
another."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from probe.engine import health
from probe.engine.store import ResultStore
from probe.web.routes import Route, build_app, routes
from probe.web.settings import LiveSettings, WebSettings
from tests.conftest import free_port


def web_app(store: ResultStore, registry: CollectorRegistry | None = None) -> web.Application:
    """The agent's health and metrics routes over `store`, with its config's settings."""
    settings = LiveSettings.of(store.config.agent)
    return build_app(store, settings, registry if registry is not None else CollectorRegistry())


class Renders:
    """Counts the store's renders: of the plain bodies (`render`) and of the verbose one."""

    def __init__(self, store: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.plain = 0
        self.verbose = 0
        render, health_body = store.render, health.health_body

        def counted_render() -> None:
            self.plain += 1
            render()

        def counted_body(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.verbose += bool(kwargs.get("verbose"))
            return health_body(*args, **kwargs)

        monkeypatch.setattr(store, "render", counted_render)
        monkeypatch.setattr(health, "health_body", counted_body)


def route_table() -> list[Route]:
    """Every route of the agent, read from the one table (handlers built but never called)."""

    class Unused:
        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    unused: Any = Unused()
    return routes(unused, LiveSettings(WebSettings()), CollectorRegistry(), unused, unused, unused)


class HandClock:
    """A clock that moves only when the test moves it: `clock.now += 60`, `clock.advance(60)`."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def until(predicate: Callable[[], Any], timeout: float = 10.0, every: float = 0.1) -> Any:
    """Poll `predicate` (plain, or returning an awaitable) until its value is truthy; that
    value, or an AssertionError with the last one after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"not within {timeout}s; last: {last!r}")


async def settled(read: Callable[[], Any], expected: Any, timeout: float = 5.0) -> Any:
    """`read()` (plain, or returning an awaitable) once it gives `expected`, or its last
    value after `timeout` seconds, for the caller to assert on: connections open and close
    asynchronously on both sides."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if inspect.isawaitable(found):
            found = await found
        if found == expected or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.05)


class LocalSite:
    """A stand-in's app on one local port that a test can close (`refuse`) and open again
    (`accept`), as a receiver that goes down and comes back. Subclasses are dataclasses
    with `port`, `_runner` and `_site` fields."""

    port: int
    _runner: web.AppRunner | None
    _site: web.TCPSite | None

    async def serve(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self.port = self.port or free_port()
        await self.accept()

    async def accept(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def refuse(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def stop_serving(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
