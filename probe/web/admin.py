"""The admin API: maintenance windows and incident notes, written by deploy scripts.

Every write needs `agent.admin_token`; without one the API is off (404), and the
read-only `auth_token` does not open it. A refused request changes nothing, and a bad body
is a 400 with one line naming the field. In a fleet a write goes to the shared store
first; while that cannot be reached the answer is a 503 and nothing changes. Bodies are
read up to MAX_BODY bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from probe.core.incident_notes import MAX_TEXT, clean_text
from probe.core.maintenance import MAX_DURATION, MAX_REASON, Window
from probe.core.times import Clock, rfc3339_seconds
from probe.core.units import parse_duration
from probe.engine.health import dumps
from probe.engine.history.model import Incident
from probe.web import responses
from probe.web.auth import bearer, token_matches
from probe.web.settings import LiveSettings
from probe.web.views import Planner, Unavailable

MAX_BODY = 16 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """One line for the 400: which field, what was wrong."""


def window_json(window: Window, now: float) -> dict[str, Any]:
    return {
        "id": window.id,
        "checks": list(window.checks),
        "start": rfc3339_seconds(window.start),
        "end": rfc3339_seconds(window.end),
        "reason": window.reason,
        "origin": window.origin,
        "active": window.active(now),
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadRequest(f"body: larger than {MAX_BODY // 1024} KiB")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object")
    return data


class AdminRoutes:
    def __init__(
        self,
        planner: Planner,
        check_names: Callable[[], list[str]],
        incidents: Callable[[], list[Incident]],
        settings: LiveSettings,
        clock: Clock = time.time,
    ) -> None:
        self.planner = planner
        self.check_names = check_names
        self.incidents = incidents
        self.settings = settings
        self.clock = clock

    def guarded(self, handler: Handler) -> Handler:
        """`handler` behind `agent.admin_token`: off without one, 401 for any other token."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            token = self.settings.current.admin_token
            if not token:
                return responses.not_found(request)
            given = bearer(request)
            if given is None or not token_matches(given, token):
                return responses.unauthorized()
            try:
                return await handler(request)
            except BadRequest as exc:
                return responses.error(400, str(exc))
            except Unavailable as exc:
                return responses.error(503, str(exc))

        return guarded

    # ------------------------------------------------------------ windows

    async def open_window(self, request: web.Request) -> web.Response:
        data = await _json_body(request)
        unknown = sorted(set(data) - {"checks", "duration", "reason"})
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown key (known: checks, duration, reason)")
        checks = self._checks(data.get("checks", []))
        duration = self._duration(data.get("duration"))
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise BadRequest("reason: expected a string")
        if len(reason) > MAX_REASON:
            raise BadRequest(f"reason: at most {MAX_REASON} characters")
        window = await self.planner.open_window(checks, duration, clean_text(reason))
        return responses.body(dumps(window_json(window, self.clock())), 201)

    async def close_window(self, request: web.Request) -> web.Response:
        window_id = request.match_info["id"]
        window = await self.planner.close_window(window_id)
        if window is None:
            return responses.error(404, f"no such maintenance window: {window_id}")
        return responses.body(dumps(window_json(window, self.clock())))

    async def list_windows(self, request: web.Request) -> web.Response:
        now = self.clock()
        windows = [window_json(w, now) for w in self.planner.windows(now)]
        return responses.body(dumps({"timestamp": rfc3339_seconds(now), "windows": windows}))

    def _checks(self, value: object) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest("checks: expected a list of check names")
        known = set(self.check_names())
        for name in value:
            if name not in known:
                raise BadRequest(f"checks: no check named {name!r}")
        return list(dict.fromkeys(value))

    @staticmethod
    def _duration(value: object) -> float:
        if value is None:
            raise BadRequest("duration: required, e.g. 15m")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise BadRequest(f"duration: {exc}") from None
        if not 0 < seconds <= MAX_DURATION:
            raise BadRequest(f"duration: more than 0 and at most 31d, got {value!r}")
        return seconds

    # ------------------------------------------------------------ notes

    async def add_note(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        if not any(i.id == incident_id for i in self.incidents()):
            return responses.error(404, f"no such incident: {incident_id}")
        data = await _json_body(request)
        unknown = sorted(set(data) - {"text"})
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown key (known: text)")
        text = data.get("text")
        if not isinstance(text, str) or not clean_text(text):
            raise BadRequest("text: expected a non-empty string")
        if len(text) > MAX_TEXT:
            raise BadRequest(f"text: at most {MAX_TEXT} characters")
        note = await self.planner.add_note(incident_id, text)
        return responses.body(dumps({**note.to_dict(), "at": rfc3339_seconds(note.at)}), 201)
