"""Helpers shared by the tests: a hand-moved clock and the agent's app over a store."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from probe import health
from probe.store import ResultStore
from probe.web.routes import Route, build_app, routes
from probe.web.settings import LiveSettings, WebSettings


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
    return routes(unused, LiveSettings(WebSettings()), CollectorRegistry(), unused, unused)
