"""Every route the agent serves, in one table, and the app built from it.

A route answers its own methods; any other method gets a JSON 405 naming the allowed
ones, and a path that is not here a JSON 404 (`probe.web.responses`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from probe.web import responses
from probe.web.admin import AdminRoutes
from probe.web.auth import authorized
from probe.web.health import HealthRoutes
from probe.web.metrics import metrics_handler
from probe.web.pings import PingRoutes
from probe.web.settings import LiveSettings
from probe.web.status import StatusSite
from probe.web.views import HealthBodies, PingReceiver

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Header lines up to aiohttp's default limit; a longer one is a 400 before any handler.
MAX_FIELD_SIZE = 8190


@dataclass(frozen=True, slots=True)
class Route:
    paths: tuple[str, ...]
    handler: Handler
    methods: tuple[str, ...] = ("GET", "HEAD")


def token_required(handler: Handler, settings: LiveSettings) -> Handler:
    """`handler` behind `agent.auth_token`, read per request."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not authorized(request, settings.current.auth_token):
            return responses.unauthorized()
        return await handler(request)

    return guarded


def routes(
    bodies: HealthBodies,
    settings: LiveSettings,
    registry: CollectorRegistry,
    site: StatusSite | None = None,
    inbox: PingReceiver | None = None,
    admin: AdminRoutes | None = None,
) -> list[Route]:
    health = HealthRoutes(bodies, settings)
    table = [
        Route(("/health", "/api/health"), health.health),
        Route(("/ready", "/api/health/ready"), health.ready),
        Route(("/live", "/api/health/live"), health.live),
        Route(("/health/{check}",), health.check_health),
        Route(("/ready/{check}",), health.check_ready),
        # Cached and formatted off the loop for the agent's own registry.
        Route(("/metrics",), token_required(metrics_handler(registry), settings)),
    ]
    if site is not None:
        # Registered even when the page is off (they answer 404 then), so a reload can
        # turn it on or off.
        table += [
            Route(("/status",), site.guarded(site.status)),
            Route(("/api/v1/uptime",), site.guarded(site.uptime)),
            Route(("/api/v1/incidents",), site.guarded(site.incidents)),
            Route(("/api/v1/checks/{name}/history",), site.guarded(site.check_history)),
            Route(("/badge/{check}/status.svg",), site.guarded(site.badge_status)),
            Route(("/badge/{check}/uptime/{window}.svg",), site.guarded(site.badge_uptime)),
            Route(("/status/feed.atom",), site.guarded(site.feed)),
        ]
    if site is not None and admin is not None:
        list_windows, open_window = (
            site.guarded(admin.list_windows),
            admin.guarded(admin.open_window),
        )

        async def maintenance(request: web.Request) -> web.StreamResponse:
            # One path, two audiences: reading is the status page's, writing the admin's.
            return await (open_window if request.method == "POST" else list_windows)(request)

        table += [
            Route(("/api/v1/maintenance",), maintenance, ("GET", "HEAD", "POST")),
            Route(("/api/v1/maintenance/{id}",), admin.guarded(admin.close_window), ("DELETE",)),
            Route(("/api/v1/incidents/{id}/notes",), admin.guarded(admin.add_note), ("POST",)),
        ]
    if inbox is not None:
        pings = PingRoutes(inbox, settings)
        table.append(
            # HEAD counts as a ping, as healthchecks.io counts it.
            Route(("/ping/{check}", "/ping/{check}/{action}"), pings.ping, ("GET", "HEAD", "POST"))
        )
    return table


def build_app(
    bodies: HealthBodies,
    settings: LiveSettings,
    registry: CollectorRegistry,
    site: StatusSite | None = None,
    inbox: PingReceiver | None = None,
    admin: AdminRoutes | None = None,
) -> web.Application:
    app = web.Application(handler_args={"max_field_size": MAX_FIELD_SIZE})
    for route in routes(bodies, settings, registry, site, inbox, admin):
        allow = ", ".join(route.methods)

        async def not_allowed(request: web.Request, allow: str = allow) -> web.StreamResponse:
            return responses.method_not_allowed(request, allow)

        for path in route.paths:
            for method in route.methods:
                app.router.add_route(method, path, route.handler)
            app.router.add_route("*", path, not_allowed)

    async def not_found(request: web.Request) -> web.StreamResponse:
        return responses.not_found(request)

    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
