"""`probe ping`: GET a running agent's endpoint; exit 0 on 2xx, 1 otherwise.

Docker runs this every 30 s inside the sidecar, so it loads the standard library only
(no pydantic, yaml or aiohttp), and it speaks HTTP over a socket (wrapped in TLS for
https://): `urllib.request` alone (email parsing, ssl) costs more than starting Python
does, and its timeout applies per read rather than to the whole request. For the same
reason a plain http:// ping uses `_socket` (the `socket` module adds enum and selectors)
and splits a plain URL itself (`urllib.parse` adds re and ipaddress): together they cost
more than the rest of the command (docs/performance.md#cli-start-up).
"""

from __future__ import annotations

import _socket
import errno
import os
import sys
import time

DEFAULT_PATH = "/live"
DEFAULT_TIMEOUT = 3.0  # seconds
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


class PingError(Exception):
    """Words for stderr: `connection refused`, `timed out after 3s`, `HTTP 503`."""


class _Target:
    # A plain class: importing dataclasses would cost ping more than the rest of it.
    __slots__ = ("authority", "host", "path", "port", "secure")

    def __init__(self, secure: bool, host: str, port: int, authority: str, path: str) -> None:
        self.secure = secure
        self.host = host
        self.port = port
        self.authority = authority  # for the Host header, as written: IPv6 in brackets
        self.path = path


def _split(url: str) -> _Target:
    # urlsplit silently drops CR, LF and tab; a URL with them (or spaces) is a typo.
    if any(char.isspace() or not char.isprintable() for char in url):
        raise PingError("invalid URL")
    scheme, netloc, path, query = split_url(url)
    if scheme not in ("http", "https"):
        raise PingError("only http:// and https:// URLs are supported")
    if "@" in netloc:
        raise PingError("invalid URL: user:password is not supported")
    host, port = _host_and_port(netloc)
    if not host:
        raise PingError("invalid URL")
    secure = scheme == "https"
    path = (path or "/") + (f"?{query}" if query else "")
    return _Target(secure, host, port or (443 if secure else 80), netloc, path)


def split_url(url: str) -> tuple[str, str, str, str]:
    """(scheme, netloc, path, query), as `urllib.parse.urlsplit` gives them.

    A plain ASCII http(s) URL with no fragment or brackets is split here; anything else
    (IPv6 literals, fragments, odd schemes) goes to urlsplit, which knows the rules.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("http", "https") and url.isascii() and not any(c in url for c in "#[]"):
        ends = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
        netloc, rest = rest[: min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
        path, _, query = rest.partition("?")
        return scheme, netloc, path, query
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path, parts.query


def _host_and_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        colon, text = rest[:1], rest[1:]
        if rest and colon != ":":
            raise PingError("invalid URL")
    else:
        host, colon, text = authority.partition(":")
    if not colon or not text:
        return host, None
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 65535:
        return host, int(text)
    # Not a DNS or connection problem: say so before touching the network.
    raise PingError("invalid URL: port must be a number from 1 to 65535")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError()
    return left


def _get(url: str, deadline: float) -> tuple[int, str]:
    """(status, Location header) of one GET.

    Every wait gets only what is left of the deadline: a socket timeout alone applies
    per recv, so a server dribbling a byte at a time would hold the ping forever.
    """
    target = _split(url)
    request = (
        f"GET {target.path} HTTP/1.1\r\nHost: {target.authority}\r\n"
        "User-Agent: probe-ping\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = _connect(target.host, target.port, deadline)
    try:
        if target.secure:
            sock = _tls(sock, target.host, deadline)
        sock.settimeout(_remaining(deadline))
        sock.sendall(request)
        head = _read_head(sock, deadline)
    finally:
        sock.close()
    return _parse_head(head)


def _resolvable(host: str) -> str | bytes:
    """The host as getaddrinfo takes it without loading the idna codec, when that codec
    would return its ASCII unchanged; otherwise as it is, for the codec to judge."""
    if not host.isascii():
        return host
    labels = host.split(".")
    if all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64:
        return host.encode("ascii")
    return host


def _connect(host: str, port: int, deadline: float) -> _socket.socket:
    last_error: OSError = ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")
    found = _socket.getaddrinfo(_resolvable(host), port, 0, _socket.SOCK_STREAM)
    for family, kind, proto, _, address in found:
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last_error = exc  # try the next address (`localhost`: ::1, then 127.0.0.1)
            continue
        return sock
    raise last_error


def _tls(raw: _socket.socket, host: str, deadline: float) -> _socket.socket:
    import socket  # only https pays for it (ssl wraps a socket.socket, not a _socket one)
    import ssl

    sock = socket.socket(raw.family, raw.type, raw.proto, raw.detach())
    try:
        sock.settimeout(_remaining(deadline))  # ssl applies it to the whole handshake
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        error = PingError(f"TLS certificate verify failed: {exc.verify_message}")
    except ssl.SSLError as exc:
        reason = str(exc.reason or "").replace("_", " ").lower()
        error = PingError(f"TLS handshake failed: {reason}".rstrip(": "))
    except BaseException:
        sock.close()  # a no-op once wrap_socket has taken the descriptor
        raise
    sock.close()
    raise error from None


def _read_head(sock: _socket.socket, deadline: float) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def _parse_head(head: bytes) -> tuple[int, str]:
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


def _status(url: str, deadline: float) -> int:
    for _ in range(MAX_REDIRECTS + 1):
        status, location = _get(url, deadline)
        if status not in (301, 302, 303, 307, 308) or not location:
            return status
        from urllib.parse import urljoin  # only a redirect pays for it

        url = urljoin(url, location)
    raise PingError("too many redirects")


def _shown(url: str) -> str:
    """The URL for the error line: password masked, control characters escaped."""
    from probe.core.redact import MASK, redact_url  # stdlib-only; needed only when something failed

    escaped = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in url
    )
    # Everything up to the last `@` is userinfo here (ping takes none), so a password
    # with an unencoded `/` or `@` is masked whole too.
    scheme, sep, rest = escaped.partition("://")
    userinfo, at, rest = rest.rpartition("@")
    if at and ":" in userinfo:
        escaped = f"{scheme}{sep}{userinfo.partition(':')[0]}:{MASK}@{rest}"
    return redact_url(escaped)


def ping(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, why): why is one line for stderr when not healthy."""
    try:
        status = _status(url, time.monotonic() + timeout)
    except PingError as exc:
        return False, f"{exc} ({_shown(url)})"
    except ConnectionRefusedError:
        return False, f"connection refused ({_shown(url)})"
    except TimeoutError:
        # probe.core.units loads dataclasses and enum: only a ping that failed pays for it.
        from probe.core.units import timed_out_after

        return False, f"{timed_out_after(timeout)} ({_shown(url)})"
    except _socket.gaierror:
        return False, f"DNS lookup failed ({_shown(url)})"
    except ConnectionResetError:
        return False, f"connection reset by server ({_shown(url)})"
    except (OSError, ValueError, UnicodeError) as exc:
        words = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        words = " ".join((words or "request failed").split()).lower()
        return False, f"{words} ({_shown(url)})"
    if 200 <= status < 300:
        return True, ""
    return False, f"HTTP {status} from {_shown(url)}"


def main(url: str | None, timeout: float) -> int:
    target = url or default_url()
    if "://" not in target:
        target = f"http://{target}"
    healthy, why = ping(target, timeout)
    if not healthy:
        print(f"probe ping: {why}", file=sys.stderr)
        return 1
    return 0
