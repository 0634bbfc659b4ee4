"""The HTTP face of the agent: pre-serialised bodies from the store, no I/O per request."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from probe.store import Rendered, ResultStore

JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _respond(rendered: Rendered) -> web.Response:
    return web.Response(
        body=rendered.body, status=rendered.status_code, content_type=JSON, headers=NO_STORE
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"status": "error", "error": message}).encode()
    return web.Response(
        body=body, status=status, content_type=JSON, headers={**NO_STORE, **(headers or {})}
    )


def _is_truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on", "")


class Endpoints:
    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def authorized(self, request: web.Request) -> bool:
        token = self.store.config.agent.auth_token.get_secret_value()
        if not token:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # The scheme is case-insensitive (RFC 7235); the token is compared in constant time.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )

    async def health(self, request: web.Request) -> web.Response:
        # `query_string` first: parsing the query costs more than the rest of this handler.
        if request.query_string and _is_truthy(request.query.get("verbose")):
            if not self.authorized(request):
                return _unauthorized()
            return _respond(self.store.health_verbose)
        return _respond(self.store.health)

    async def ready(self, request: web.Request) -> web.Response:
        return _respond(self.store.ready)

    async def live(self, request: web.Request) -> web.Response:
        if self.store.is_alive(self.store.config.agent.live_timeout):
            return _respond(self.store.live)
        return _respond(self.store.stalled_live())


def _unauthorized() -> web.Response:
    return _error(401, "unauthorized", {"WWW-Authenticate": 'Bearer realm="probe"'})


async def _method_not_allowed(request: web.Request) -> web.StreamResponse:
    return _error(405, f"method {request.method} not allowed", {"Allow": "GET, HEAD"})


def build_app(store: ResultStore, registry: CollectorRegistry) -> web.Application:
    endpoints = Endpoints(store)
    metrics = make_aiohttp_handler(registry)

    async def metrics_route(request: web.Request) -> web.StreamResponse:
        if not endpoints.authorized(request):
            return _unauthorized()
        return await metrics(request)

    async def not_found(request: web.Request) -> web.StreamResponse:
        return _error(404, f"no such endpoint: {request.path}")

    app = web.Application(handler_args={"max_field_size": 8190})
    routes: list[tuple[tuple[str, ...], Handler]] = [
        (("/health", "/api/health"), endpoints.health),
        (("/ready", "/api/health/ready"), endpoints.ready),
        (("/live", "/api/health/live"), endpoints.live),
        (("/metrics",), metrics_route),
    ]
    for paths, handler in routes:
        for path in paths:
            # GET (and HEAD) first; every other method falls through to a JSON 405.
            app.router.add_get(path, handler)
            app.router.add_route("*", path, _method_not_allowed)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
