"""External dependencies through the real agent: an API failing during its vendor's
declared incident alerts with the vendor's words, and verbose /health says where a slow
API's time went."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.agent import Agent
from probe.contract.config import load_config
from tests.alert_helpers import texts
from tests.slack_receiver import SlackReceiver
from tests.statuspage_stand_in import MAJOR, serve, stand_in
from tests.support import until

ServerFactory = Callable[..., Awaitable[TestServer]]

CONFIG = """
agent: {{ name: e2e-probe, listen: "127.0.0.1:0", state_file: "{state}" }}
defaults: {{ interval: 1s, timeout: 800ms }}
checks:
  - name: external_services
    type: group
    checks:
      - {{ name: openai, type: http, url: "{api}/v1/models", vendor: openai_status }}
      - {{ name: slow_api, type: http, url: "{api}/slow", warn: {{ first_byte_time: 200ms }} }}
      - {{ name: openai_status, type: statuspage, url: "{page}" }}
alerts:
  for: {{ warn: 0s, fail: 0s }}
  group_wait: 200ms
  notifiers:
    - {{ type: slack, webhook_url: "{hook}" }}
"""


async def test_vendor_incident_in_the_alert_and_phases_in_verbose_health(
    write_config: Any,
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    receiver: SlackReceiver,
) -> None:
    down = asyncio.Event()

    async def models(request: web.Request) -> web.Response:
        if down.is_set():
            return web.Response(status=503, text="upstream connect error")
        return web.json_response({"object": "list", "data": []})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response({"status": "ok"})

    api = web.Application()
    api.router.add_get("/v1/models", models)
    api.router.add_get("/slow", slow)
    api_server = await aiohttp_server(api)
    page = await aiohttp_server(stand_in())
    serve(page, MAJOR)
    path = write_config(
        CONFIG.format(
            state=tmp_path / "state.json",
            api=str(api_server.make_url("")).rstrip("/"),
            page=str(page.make_url("/")),
            hook=receiver.webhook_url,
        )
    )
    agent = Agent(load_config(path), path)
    await agent.start()
    try:
        # The vendor has declared its incident; then the API starts failing.
        await until(lambda: agent.store.latest("openai_status"))
        down.set()
        fired = await until(
            lambda: [t for t in texts(receiver) if "openai:" in t and "reports" in t]
        )
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{agent.port}/health?verbose=1"
            async with session.get(url) as response:
                body = await response.json()
    finally:
        await agent.stop()

    print("ALERT:", fired[0])
    assert (
        'openai: HTTP 503 (expected 200-399) (OpenAI reports: "Elevated error rates on the API")'
        in fired[0]
    )
    [group] = body["checks"]
    members = {m["name"]: m for m in group["members"]}
    slow_api = members["slow_api"]
    print("VERBOSE slow_api:", json.dumps(slow_api, indent=1))
    phases = {o["measure"]: o for o in slow_api["observations"]}
    assert slow_api["status"] == "warn"
    assert slow_api["output"].startswith("first_byte_time ")
    assert phases["first_byte_time"]["value"] >= 0.3
    assert phases["first_byte_time"]["threshold"] == "> 200ms"
    assert {"dns_time", "connect_time", "first_byte_time"} <= set(phases)
