"""`/ping/<check>/<exit code>` takes ASCII digits only: digits of other scripts are an
unknown action (404, as healthchecks.io routes `[0-9]+` only), never a 500 or an exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.ping_helpers import agent_yaml, call, health, started

UNKNOWN = "expected /ping/<check>, /start, /fail or an exit code 0-255"


@pytest.mark.parametrize(
    "suffix", ["\u00b2", "\u2460", "\u0663", "\uff13", "1\u00b2", "\u0665\u0665"]
)
async def test_unicode_digits_are_an_unknown_action(
    suffix: str,
    write_config: Any,
    tmp_path: Path,
    session: Any,
) -> None:
    agent = await started(write_config, agent_yaml(tmp_path / "state.json"))
    base = f"http://127.0.0.1:{agent.port}/ping/billing"
    try:
        for method in ("GET", "POST"):
            status, body = await call(session, method, f"{base}/{quote(suffix)}")
            assert (status, body) == (404, {"ok": False, "error": UNKNOWN})
        # Nothing was recorded: no run ended, with an exit code or otherwise.
        state = agent.inbox.state("billing")
        assert state is None or state.last_end is None
        assert "last run failed" not in (await health(session, agent))["billing"].get("output", "")
        assert await call(session, "GET", f"{base}/3") == (200, {"ok": True})  # ASCII still works
    finally:
        await agent.stop()
