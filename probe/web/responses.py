"""How the agent answers over HTTP: one set of headers, one error body, one 401, 404, 405.

Every answer is `Cache-Control: no-store`: a cache between the agent and its reader would
serve yesterday's health. Errors are `{"status": "error", "error": "<what>"}` on every route.
"""

from __future__ import annotations

import json

from aiohttp import web

from probe.engine.store import Rendered

JSON = "application/json"
HEALTH_JSON = "application/health+json"
SVG = "image/svg+xml"
ATOM = "application/atom+xml"
NO_STORE = {"Cache-Control": "no-store"}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="probe"'}


def body(
    content: bytes,
    status: int = 200,
    content_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        body=content,
        status=status,
        content_type=content_type,
        headers={**NO_STORE, **(headers or {})},
    )


def rendered(answer: Rendered, content_type: str = JSON) -> web.Response:
    """A body the store rendered, with the status code rendered with it."""
    return body(answer.body, answer.status_code, content_type)


def html(page: bytes) -> web.Response:
    return web.Response(body=page, content_type="text/html", charset="utf-8", headers=NO_STORE)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    content = json.dumps({"status": "error", "error": message}).encode()
    return body(content, status, JSON, headers)


def unauthorized() -> web.Response:
    """The one 401 of the agent, whatever the route and whatever was wrong with the token."""
    return error(401, "unauthorized", CHALLENGE)


def not_found(request: web.Request) -> web.Response:
    return error(404, f"no such endpoint: {request.path}")


def no_such_check(name: str) -> web.Response:
    return error(404, f"no such check: {name}")


def method_not_allowed(request: web.Request, allow: str) -> web.Response:
    return error(405, f"method {request.method} not allowed", {"Allow": allow})
