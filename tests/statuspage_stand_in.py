"""A stand-in for an Atlassian Statuspage: `api/v2/summary.json` documents in the
service's own shape (components, incidents, indicator), switched by the test."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

DOCUMENT = web.AppKey("document", dict[str, Any])
PAGE = {
    "id": "01JMYB4AKB8EPM2W6RP3QBSC3N",
    "name": "OpenAI",
    "url": "https://status.openai.com",
    "time_zone": "Etc/UTC",
    "updated_at": "2026-12-06T09:58:12.431Z",
}


def component(cid: str, name: str, status: str = "operational") -> dict[str, Any]:
    return {
        "id": cid, "name": name, "status": status, "created_at": "2023-01-10T18:05:53.520Z",
        "updated_at": "2026-12-06T09:58:12.409Z", "position": 1, "description": None,
        "showcase": True, "start_date": None, "group_id": None, "page_id": PAGE["id"],
        "group": False, "only_show_if_degraded": False,
    }  # fmt: skip


def incident(name: str, impact: str, components: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "x1y2z3", "name": name, "status": "investigating",
        "created_at": "2026-12-06T09:41:00.000Z", "updated_at": "2026-12-06T09:58:12.000Z",
        "monitoring_at": None, "resolved_at": None, "impact": impact,
        "shortlink": "https://stspg.io/x1y2z3", "started_at": "2026-12-06T09:41:00.000Z",
        "page_id": PAGE["id"],
        "incident_updates": [{
            "id": "u1", "status": "investigating", "body": "We are investigating.",
            "incident_id": "x1y2z3", "created_at": "2026-12-06T09:41:00.000Z",
            "updated_at": "2026-12-06T09:41:00.000Z", "display_at": "2026-12-06T09:41:00.000Z",
            "affected_components": [
                {"code": c["id"], "name": c["name"], "old_status": "operational",
                 "new_status": c["status"]} for c in components
            ],
            "deliver_notifications": True, "custom_tweet": None, "tweet_id": None,
        }],
        "components": components,
    }  # fmt: skip


def summary(
    indicator: str, description: str, components: list[dict[str, Any]], incidents: list[Any]
) -> dict[str, Any]:
    return {
        "page": PAGE,
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": [],
        "status": {"indicator": indicator, "description": description},
    }


API_DOWN = component("c-api", "API", "partial_outage")
CHATGPT_SLOW = component("c-chat", "ChatGPT", "degraded_performance")
SORA = component("c-sora", "Sora")
ALL_WELL = summary("none", "All Systems Operational", [component("c-api", "API"), SORA], [])
MINOR = summary(
    "minor", "Minor Service Outage", [component("c-api", "API"), CHATGPT_SLOW, SORA],
    [incident("Slow responses in ChatGPT", "minor", [CHATGPT_SLOW])],
)  # fmt: skip
MAJOR = summary(
    "major", "Partial System Outage", [API_DOWN, SORA],
    [incident("Elevated error rates on the API", "major", [API_DOWN])],
)  # fmt: skip
DEGRADED_NO_INCIDENT = summary(
    "minor", "Minor Service Outage", [component("c-api", "API", "degraded_performance")], []
)


def stand_in() -> web.Application:
    """Serves the document set in app[DOCUMENT] where Statuspage serves it; other paths
    get Statuspage's own 404 shape."""

    async def summary_json(request: web.Request) -> web.Response:
        assert request.method == "GET"
        return web.json_response(request.app[DOCUMENT])

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "Not found"}, status=404)

    app = web.Application()
    app[DOCUMENT] = copy.deepcopy(ALL_WELL)
    app.router.add_get("/api/v2/summary.json", summary_json)
    app.router.add_route("*", "/{tail:.*}", missing)
    return app


def serve(page: TestServer, document: dict[str, Any]) -> None:
    """What the stand-in serves from now on (the running app's state is not replaced)."""
    served = page.app[DOCUMENT]
    served.clear()
    served.update(copy.deepcopy(document))
