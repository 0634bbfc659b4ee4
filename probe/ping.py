"""`probe ping`: GET a running agent's endpoint; exit 0 on 2xx, 1 otherwise.

Docker runs this every 30 s inside the sidecar, so it loads the standard library only
(no pydantic, yaml or aiohttp), and for plain http:// it speaks HTTP over a socket:
`urllib.request` alone (email parsing, ssl) costs more than starting Python does.
https:// URLs go through urllib.
"""

from __future__ import annotations

import os
import socket
import sys

DEFAULT_PATH = "/live"
DEFAULT_TIMEOUT = 3.0
MAX_REDIRECTS = 3
_DURATION_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0))


def default_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """`http://127.0.0.1:8080/live`, on the port of $PROBE_LISTEN when that is set.

    The HEALTHCHECK runs with the container's environment, so an agent moved to another
    port with PROBE_LISTEN is still found without repeating the port in the Dockerfile.
    """
    port = "8080"
    candidate = environ.get("PROBE_LISTEN", "").rpartition(":")[2]
    if candidate.isdigit():
        port = candidate
    return f"http://127.0.0.1:{port}{DEFAULT_PATH}"


def parse_timeout(text: str) -> float:
    """`3s`, `500ms`, `1m` or plain seconds."""
    number, factor = text.strip(), 1.0
    for suffix, size in _DURATION_UNITS:
        if number.endswith(suffix):
            number, factor = number[: -len(suffix)], size
            break
    try:
        seconds = float(number) * factor
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"expected a duration like 3s or 500ms, got {text!r}")
    return seconds


def _seconds(timeout: float) -> str:
    return f"{timeout:g}s" if timeout >= 1 else f"{round(timeout * 1000)}ms"


class PingError(Exception):
    """Words for stderr: `connection refused`, `timed out after 3s`, `HTTP 503`."""


def _split(url: str) -> tuple[str, int, str]:
    rest = url.removeprefix("http://")
    authority, slash, path = rest.partition("/")
    host, colon, port = authority.rpartition(":") if "]" not in authority[-1:] else ("", "", "")
    if not colon or not port.isdigit():
        host, port = authority, "80"
    host = host.strip("[]")
    if not host or "@" in host:
        raise PingError("invalid URL")
    return host, int(port), slash + path if slash else "/"


def _get_http(url: str, timeout: float) -> tuple[int, str]:
    """(status, Location header) of one plain-HTTP GET."""
    host, port, path = _split(url)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: probe-ping\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise PingError("not an HTTP response")
    location = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            location = value.strip()
    return int(parts[1]), location


def _get_https(url: str, timeout: float) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # follows redirects
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):
            raise exc.reason from None
        raise PingError(str(exc.reason)) from None


def _status(url: str, timeout: float) -> int:
    for _ in range(MAX_REDIRECTS + 1):
        if url.startswith("https://"):
            return _get_https(url, timeout)[0]
        if not url.startswith("http://"):
            raise PingError("only http:// and https:// URLs are supported")
        status, location = _get_http(url, timeout)
        if status not in (301, 302, 303, 307, 308) or not location:
            return status
        if location.startswith("/"):
            host, port, _ = _split(url)
            location = f"http://{host}:{port}{location}"
        url = location
    raise PingError("too many redirects")


def ping(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, why): why is one line for stderr when not healthy."""
    try:
        status = _status(url, timeout)
    except PingError as exc:
        return False, f"{exc} ({url})"
    except ConnectionRefusedError:
        return False, f"connection refused ({url})"
    except TimeoutError:
        return False, f"timed out after {_seconds(timeout)} ({url})"
    except socket.gaierror:
        return False, f"DNS lookup failed ({url})"
    except ConnectionResetError:
        return False, f"connection reset by server ({url})"
    except (OSError, ValueError, UnicodeError) as exc:
        words = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return False, f"{(words or 'request failed').lower()} ({url})"
    if 200 <= status < 300:
        return True, ""
    return False, f"HTTP {status} from {url}"


def main(url: str | None, timeout: float) -> int:
    target = url or default_url()
    if "://" not in target:
        target = f"http://{target}"
    healthy, why = ping(target, timeout)
    if not healthy:
        print(f"probe ping: {why}", file=sys.stderr)
        return 1
    return 0
