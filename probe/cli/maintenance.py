"""`probe maintenance start|end`: open and close windows on a running agent.

A deploy script runs it next to the agent, with the same config and environment: the
agent's address comes from `agent.listen` and the token from `agent.admin_token` (or
`--url` and `$PROBE_ADMIN_TOKEN` for an agent elsewhere). Exit codes: 0 done, 1 the agent
refused or could not be reached (the line on stderr says which), 2 usage or config error.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from probe.contract.config import load_or_report, resolve_path
from probe.core.units import format_duration

TIMEOUT = 10.0


def _agent_url(listen_host: str, port: int) -> str:
    host = "127.0.0.1" if listen_host in ("", "0.0.0.0") else listen_host
    host = "::1" if host == "::" else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _call(method: str, url: str, token: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read() or b"{}")
        except ValueError:
            answer = {}
        return exc.code, answer


def main(
    config_arg: str | None,
    url: str | None,
    action: str,
    *,
    duration: float = 0.0,
    checks: list[str] | None = None,
    reason: str = "",
    window_id: str = "",
) -> int:
    path = resolve_path(config_arg)
    config = load_or_report(path)
    if config is None:
        return 2
    agent = config.agent
    token = os.environ.get("PROBE_ADMIN_TOKEN") or agent.admin_token.get_secret_value()
    if not token:
        print(
            "probe maintenance: no admin token: set agent.admin_token (or $PROBE_ADMIN_TOKEN)",
            file=sys.stderr,
        )
        return 2
    base = (url or _agent_url(agent.host, agent.port)).rstrip("/")
    if action == "start":
        body = {"checks": checks or [], "duration": f"{duration:g}s", "reason": reason}
        method, target, expected = "POST", f"{base}/api/v1/maintenance", 201
    else:
        body, method, expected = None, "DELETE", 200
        target = f"{base}/api/v1/maintenance/{quote(window_id, safe='')}"
    try:
        status, answer = _call(method, target, token, body)
    except (OSError, ValueError) as exc:
        reason_text = getattr(exc, "reason", None) or exc
        print(f"probe maintenance: cannot reach the agent at {base}: {reason_text}",
              file=sys.stderr)  # fmt: skip
        return 1
    if status != expected:
        error = answer.get("error") if isinstance(answer, dict) else None
        print(f"probe maintenance: HTTP {status}: {error or 'refused'}", file=sys.stderr)
        return 1
    if action == "start":
        covered = ", ".join(checks or []) or "every check"
        print(f"{answer.get('id')}  maintenance for {covered} for {format_duration(duration)}")
    else:
        print(f"{window_id}  maintenance ended")
    return 0
