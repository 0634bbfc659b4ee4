"""`/ping/<check>[/start|/fail|/<exit code>]`, GET, HEAD and POST: heartbeats from cron jobs,
workers and webhook handlers, recorded in memory by the inbox (`probe.engine.pings`).

The token is checked before the name, so without it no check name can be probed for.
"""

from __future__ import annotations

import json

from aiohttp import web

from probe.contract.heartbeat_state import MAX_MESSAGE
from probe.web import responses
from probe.web.auth import authorized
from probe.web.settings import LiveSettings
from probe.web.views import PingReceiver

MAX_RID = 64
_OK = json.dumps({"ok": True}).encode()


def _refuse(status: int, error: str) -> web.Response:
    """The ping's own answers keep its `ok` shape; the router's (401, 405) are the agent's."""
    return responses.body(json.dumps({"ok": False, "error": error}).encode(), status)


def _action(text: str) -> tuple[str, int | None] | None:
    if text in ("", "success"):
        return "success", None
    if text in ("start", "fail"):
        return text, None
    # ASCII digits only: `²` and `①` are isdigit() and int() refuses them (a 500), and
    # `٣` (Arabic-Indic three) would read as exit code 3. healthchecks.io routes only
    # [0-9]+ there, so these answer as any other unknown action: 404.
    if text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 255:
        code = int(text)
        return ("success" if code == 0 else "fail"), code
    return None


class PingRoutes:
    def __init__(self, inbox: PingReceiver, settings: LiveSettings) -> None:
        self.inbox = inbox
        self.settings = settings

    async def ping(self, request: web.Request) -> web.StreamResponse:
        # Read per request: a reload that sets `agent.ping_token` applies at once.
        if not authorized(request, self.settings.current.ping_token):
            return responses.unauthorized()
        name = request.match_info["check"]
        if not self.inbox.knows(name):
            return _refuse(404, f"no heartbeat check named {name[:64]!r}")
        action = _action(request.match_info.get("action", ""))
        if action is None:
            return _refuse(404, "expected /ping/<check>, /start, /fail or an exit code 0-255")
        rid = request.query.get("rid", "")[:MAX_RID] if request.query_string else ""
        message = ""
        if request.body_exists:
            raw = await request.content.read(MAX_MESSAGE)
            message = raw.decode("utf-8", "replace")
        kind, code = action
        self.inbox.record(name, kind, code, rid, message)
        return responses.body(_OK)
