"""/health, /ready, /live and their per-check and application/health+json forms.

- `/health` and `/ready` serve the bodies the store rendered; `?verbose=1` adds each
  check's observations and group members and needs the token when one is set.
- `/ready?exclude=openai` (repeatable) judges readiness without the named checks, as
  kube-apiserver's `/readyz?exclude=etcd` does; a name that matches no check is reported
  back rather than ignored, so a typo cannot pass for an exclusion.
- `/health/<check>` and `/ready/<check>` answer for one check (group members included).
- `Accept: application/health+json` gets /health in the shape of draft-inadarei-api-health-
  check (`status` pass/warn/fail, `checks` keyed `component:measure`); without it, the
  body stays the one docs/endpoints.md describes.

Every answer is built from the store's current snapshot and kept until its next render:
no I/O, and no per-request work proportional to the number of checks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web

from probe.core.model import Health, Observation, Status
from probe.core.times import rfc3339_seconds
from probe.engine import health
from probe.engine.store import Rendered, Snapshot
from probe.web import responses
from probe.web.auth import authorized
from probe.web.responses import HEALTH_JSON
from probe.web.settings import LiveSettings
from probe.web.views import HealthBodies

_IETF_STATUS = {Health.HEALTHY: "pass", Health.DEGRADED: "warn", Health.UNHEALTHY: "fail"}


def _is_truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on", "")


def wants_health_json(request: web.Request) -> bool:
    accept = request.headers.get(hdrs.ACCEPT)
    if accept is None or HEALTH_JSON not in accept.lower():
        return False
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if media == HEALTH_JSON:
            return "q=0" not in params and "q=0.0" not in params
    return False


class HealthRoutes:
    def __init__(self, bodies: HealthBodies, settings: LiveSettings) -> None:
        self.bodies = bodies
        self.settings = settings

    def _authorized(self, request: web.Request) -> bool:
        return authorized(request, self.settings.current.auth_token)

    async def health(self, request: web.Request) -> web.Response:
        if wants_health_json(request):
            return self._health_json(request)
        # `query_string` first: parsing the query costs more than the rest of this handler.
        if request.query_string and _is_truthy(request.query.get("verbose")):
            if not self._authorized(request):
                return responses.unauthorized()
            return responses.rendered(self.bodies.health_verbose)
        await self.bodies.refresh()  # in slices: thousands of checks are milliseconds
        return responses.rendered(self.bodies.last_health)

    async def ready(self, request: web.Request) -> web.Response:
        if request.query_string:
            return self._ready_excluding(request)
        await self.bodies.refresh()
        return responses.rendered(self.bodies.last_ready)

    async def live(self, request: web.Request) -> web.Response:
        if self.bodies.is_alive(self.settings.current.live_timeout):
            return responses.rendered(self.bodies.live)
        return responses.rendered(self.bodies.stalled_live())

    async def check_health(self, request: web.Request) -> web.Response:
        return self._one(request, ready=False)

    async def check_ready(self, request: web.Request) -> web.Response:
        return self._one(request, ready=True)

    def _health_json(self, request: web.Request) -> web.Response:
        """/health as application/health+json. It carries observed values, as the verbose
        body does, so it needs the token when one is set."""
        if not self._authorized(request):
            return responses.unauthorized()
        settings = self.settings.current
        # Keyed by what it shows of the settings too: a reload may change them.
        key = (HEALTH_JSON, settings.version, settings.name)
        found = self.bodies.derived(key, lambda shot: _ietf(shot, settings.version, settings.name))
        return responses.rendered(found, HEALTH_JSON)

    def _ready_excluding(self, request: web.Request) -> web.Response:
        """/ready with a query string: `exclude=` changes the judgement, anything else not."""
        names = tuple(sorted(set(request.query.getall("exclude", []))))
        if not names:
            return responses.rendered(self.bodies.ready)
        known = set(self.bodies.check_names())
        found = self.bodies.derived(("exclude", names), lambda shot: _ready(shot, names, known))
        return responses.rendered(found)

    def _one(self, request: web.Request, ready: bool) -> web.Response:
        name = request.match_info["check"]
        entry = self.bodies.entry(name)
        if entry is None:
            return responses.no_such_check(name)
        ok = entry.status is not Status.FAIL and (entry.result is not None or not ready)
        return responses.rendered(Rendered(200 if ok else 503, self.bodies.fragment(entry)))


# ---------------------------------------------------------------- bodies


def _ready(shot: Snapshot, names: tuple[str, ...], known: set[str]) -> Rendered:
    excluded = [n for n in names if n in known]
    gating = [e for e in shot.entries if e.config.critical and e.config.name not in excluded]
    ready = health.is_ready(gating)
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "timestamp": rfc3339_seconds(shot.now),
        "checks": [health.check_entry(e, verbose=False) for e in gating],
        "excluded": excluded,
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        body["unknown"] = unknown  # kube: `some health checks cannot be excluded`
    return Rendered(200 if ready else 503, health.dumps(body))


def _ietf(shot: Snapshot, version: str, name: str) -> Rendered:
    overall = health.overall(shot.entries)
    checks: dict[str, list[dict[str, Any]]] = {}
    for entry in shot.entries:
        members = health.member_entries(entry, shot.now) if entry.config.has_members else []
        for each in (entry, *members):
            _add_check(checks, each)
    body: dict[str, Any] = {
        "status": _IETF_STATUS[overall],
        "version": version,
        "serviceId": name,
        "description": "probe health-probe sidecar",
        "checks": checks,
    }
    code = 503 if overall is Health.UNHEALTHY else 200
    return Rendered(code, health.dumps(body))


def _add_check(checks: dict[str, list[dict[str, Any]]], entry: health.Entry) -> None:
    config, result = entry.config, entry.result
    own: dict[str, Any] = {"componentType": config.type}
    if result is not None and not config.has_members:
        own["observedValue"] = round(result.response_time * 1000)
        own["observedUnit"] = "ms"
    own["status"] = entry.status.value
    if result is not None:
        own["time"] = rfc3339_seconds(result.observed_at)
    if entry.status is not Status.PASS:
        own["output"] = entry.output
    checks.setdefault(f"{config.name}:responseTime", []).append(own)
    if result is None:
        return
    at = rfc3339_seconds(result.observed_at)
    for obs in result.observations:
        checks.setdefault(f"{config.name}:{obs.measure}", []).append(
            _observation(config.type, obs, at)
        )


def _observation(kind: str, obs: Observation, at: str) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if obs.component:
        item["componentId"] = obs.component
    item["componentType"] = kind
    if obs.value is not None:
        item["observedValue"] = obs.value
    if obs.unit.value:
        item["observedUnit"] = obs.unit.value
    item["status"] = obs.status.value
    item["time"] = at
    if obs.status is not Status.PASS:
        item["output"] = obs.describe(with_component=False)
    return item
