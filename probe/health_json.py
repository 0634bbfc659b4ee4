"""Kubernetes' and the IETF draft's conventions on the JSON endpoints, beside the seed's.

- `/ready?exclude=openai` (repeatable) judges readiness without the named checks, as
  kube-apiserver's `/readyz?exclude=etcd` does; a name that matches no check is reported
  back rather than ignored, so a typo cannot pass for an exclusion.
- `/health/<check>` and `/ready/<check>` answer for one check (group members included).
- `Accept: application/health+json` gets /health in the shape of draft-inadarei-api-health-
  check (`status` pass/warn/fail, `checks` keyed `component:measure`); without it, the
  body stays DESIGN.md 2.2's.

Every answer is built from the store's current snapshot and kept until its next render:
no I/O, and no per-request work proportional to the number of checks.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import hdrs, web

from probe import health
from probe.model import Health, Observation, Status
from probe.store import Rendered, ResultStore, Snapshot
from probe.times import rfc3339_seconds

HEALTH_JSON = "application/health+json"
JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store"}
_IETF_STATUS = {Health.HEALTHY: "pass", Health.DEGRADED: "warn", Health.UNHEALTHY: "fail"}


class Endpoints(Protocol):
    """What is used of `probe.server.Endpoints` (the server imports this module)."""

    @property
    def store(self) -> ResultStore: ...

    def authorized(self, request: web.Request) -> bool: ...


def wants_health_json(request: web.Request) -> bool:
    accept = request.headers.get(hdrs.ACCEPT)
    if accept is None or HEALTH_JSON not in accept.lower():
        return False
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if media == HEALTH_JSON:
            return "q=0" not in params and "q=0.0" not in params
    return False


def health_json(endpoints: Endpoints, request: web.Request) -> web.Response:
    """/health as application/health+json. It carries observed values, as the verbose
    body does, so it needs the token when one is set."""
    if not endpoints.authorized(request):
        return _error(401, "unauthorized", {"WWW-Authenticate": 'Bearer realm="probe"'})
    store = endpoints.store
    rendered = store.derived(HEALTH_JSON, lambda shot: _ietf(store, shot))
    return _respond(rendered, HEALTH_JSON)


def ready_excluding(store: ResultStore, request: web.Request) -> web.Response:
    """/ready with a query string: `exclude=` changes the judgement, anything else not."""
    names = tuple(sorted(set(request.query.getall("exclude", []))))
    if not names:
        return _respond(store.ready, JSON)
    rendered = store.derived(("exclude", names), lambda shot: _ready(store, shot, names))
    return _respond(rendered, JSON)


def routes(endpoints: Endpoints) -> list[tuple[tuple[str, ...], Any]]:
    """Per-check routes, for `build_app`'s table."""

    async def check_health(request: web.Request) -> web.Response:
        return _one(endpoints.store, request, ready=False)

    async def check_ready(request: web.Request) -> web.Response:
        return _one(endpoints.store, request, ready=True)

    return [(("/health/{check}",), check_health), (("/ready/{check}",), check_ready)]


# ---------------------------------------------------------------- bodies


def _one(store: ResultStore, request: web.Request, ready: bool) -> web.Response:
    name = request.match_info["check"]
    entry = store.entry(name)
    if entry is None:
        return _error(404, f"no such check: {name}")
    ok = entry.status is not Status.FAIL and (entry.result is not None or not ready)
    return _respond(Rendered(200 if ok else 503, store.fragment(entry)), JSON)


def _ready(store: ResultStore, shot: Snapshot, names: tuple[str, ...]) -> Rendered:
    known = set(store.check_names())
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


def _ietf(store: ResultStore, shot: Snapshot) -> Rendered:
    overall = health.overall(shot.entries)
    checks: dict[str, list[dict[str, Any]]] = {}
    for entry in shot.entries:
        members = health.member_entries(entry, shot.now) if entry.config.nested else []
        for each in (entry, *members):
            _add_check(checks, each)
    body: dict[str, Any] = {
        "status": _IETF_STATUS[overall],
        "version": store.config.agent.version,
        "serviceId": store.config.agent.name,
        "description": "probe health-probe sidecar",
        "checks": checks,
    }
    code = 503 if overall is Health.UNHEALTHY else 200
    return Rendered(code, health.dumps(body))


def _add_check(checks: dict[str, list[dict[str, Any]]], entry: health.Entry) -> None:
    config, result = entry.config, entry.result
    own: dict[str, Any] = {"componentType": config.type}
    if result is not None and not config.nested:
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


def _respond(rendered: Rendered, content_type: str) -> web.Response:
    return web.Response(
        body=rendered.body, status=rendered.status_code, content_type=content_type,
        headers=NO_STORE,
    )  # fmt: skip


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    # The same bytes as the server's own errors.
    body = json.dumps({"status": "error", "error": message}).encode()
    return web.Response(
        body=body, status=status, content_type=JSON, headers={**NO_STORE, **(headers or {})}
    )
