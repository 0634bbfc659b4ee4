"""`probe ping`: GET a running agent's endpoint; exit 0 on 2xx, 1 otherwise.

Docker runs this every 30 s inside the sidecar, so it imports the standard library only
(no pydantic, yaml or aiohttp): start-up time is most of its cost.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import urllib.error
import urllib.request

DEFAULT_PATH = "/live"
DEFAULT_TIMEOUT = 3.0
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def default_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """`http://127.0.0.1:8080/live`, on the port of $PROBE_LISTEN when that is set.

    The HEALTHCHECK runs with the container's environment, so an agent moved to another
    port with PROBE_LISTEN is still found without repeating the port in the Dockerfile.
    """
    port = "8080"
    listen = environ.get("PROBE_LISTEN", "")
    candidate = listen.rpartition(":")[2]
    if candidate.isdigit():
        port = candidate
    return f"http://127.0.0.1:{port}{DEFAULT_PATH}"


def parse_timeout(text: str) -> float:
    """`3s`, `500ms`, `1m` or plain seconds."""
    match = _DURATION_RE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a duration like 3s or 500ms, got {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _seconds(timeout: float) -> str:
    return f"{timeout:g}s" if timeout >= 1 else f"{round(timeout * 1000)}ms"


def ping(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, why): why is one line for stderr when not healthy."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "probe-ping"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code} from {url}"
    except urllib.error.URLError as exc:
        return False, f"{_reason(exc.reason, timeout)} ({url})"
    except TimeoutError:
        return False, f"timed out after {_seconds(timeout)} ({url})"
    except (OSError, ValueError) as exc:
        return False, f"{_reason(exc, timeout)} ({url})"
    if 200 <= status < 300:
        return True, ""
    return False, f"HTTP {status} from {url}"


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"timed out after {_seconds(timeout)}"
    if isinstance(reason, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or "request failed"


def main(url: str | None, timeout: float) -> int:
    target = url or default_url()
    if "://" not in target:
        target = f"http://{target}"
    healthy, why = ping(target, timeout)
    if not healthy:
        print(f"probe ping: {why}", file=sys.stderr)
        return 1
    return 0
