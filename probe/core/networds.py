"""Network errors -> the words users read, the same for every check type and notifier.

Only the standard library is imported here: each check module adds its driver's own
errors on top, so `probe check` still loads only the drivers it needs.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from probe.core.redact import redact_url

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by server",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by server",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EADDRNOTAVAIL: "address not available",
    errno.ENOENT: "no such socket file",
    errno.EACCES: "permission denied",
}
# asyncio joins the errors of every address it tried into one message (Python 3.11).
_MULTIPLE_ERRNOS = re.compile(r"\[Errno (\d+)\]")
# asyncpg: `PostgreSQL server at "db:5432" rejected SSL upgrade`.
_TLS_REFUSED = re.compile(r"rejected SSL", re.IGNORECASE)


def address(host: str, port: int | None) -> str:
    """`host:port`, with brackets around IPv6 literals."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def split_host_port(authority: str) -> tuple[str, str | None]:
    """`host:port` -> (host, port text or None); IPv6 literals come in brackets."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    host, colon, port = authority.rpartition(":")
    return (host, port) if colon else (authority, None)


def checked_port(text: str, url: str = "") -> int:
    """A port number from config text; ValueError with words for anything else.

    Config validators call this so that a bad port is a config error, not a crash on
    every run (`http://x:abc/` passes urlsplit and fails only when used).
    """
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    if "@" in url and "@" not in urlsplit(url).netloc:
        # A `/`, `?` or `#` in the password ended the authority early: the "port" is
        # part of the password and must not be shown.
        raise ValueError(
            "port must be a number from 1 to 65535; URL-encode any /, ? or # in the password"
        )
    raise ValueError(f"port must be a number from 1 to 65535, got {text!r}")


def url_port(url: str) -> int | None:
    """The port a URL names (None when it names none), checked as `checked_port` does."""
    authority = urlsplit(url).netloc.rpartition("@")[2]
    _, port = split_host_port(authority)
    return checked_port(port, url) if port else None


def web_url(value: str, example: str) -> str:
    """`value` if it is an http(s) URL with a host and a valid port; otherwise ValueError in
    the words config errors use (`expected a URL like <example>, got '...'`, password masked)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected a URL like {example}, got {redact_url(value)!r}")
    url_port(value)
    return value


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_timeout(exc: BaseException) -> bool:
    return any(isinstance(e, TimeoutError) for e in causes(exc))


def network_words(exc: BaseException, host: str, where: str) -> str | None:
    """Words for the DNS, TLS or socket error behind `exc`; None if there is none.

    `host` is the name that was looked up, `where` the `host:port` that was dialled.
    The innermost cause speaks first: drivers wrap the socket error in their own.
    """
    for cause in reversed(list(causes(exc))):
        words = _words_for(cause, host, where)
        if words:
            return words
    return None


def _words_for(exc: BaseException, host: str, where: str) -> str | None:
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed for {host}"
    # Wrappers such as aiohttp's subclass the ssl errors without their attributes.
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
        return f"TLS certificate verify failed: {reason or ''}".rstrip(": .")
    if isinstance(exc, ssl.SSLError):
        reason = str(getattr(exc, "reason", None) or "").replace("_", " ").lower()
        return f"{_at('TLS handshake failed', where)}: {reason}".rstrip(": ")
    if isinstance(exc, OSError):
        return _os_error_words(exc, where)
    return None


def _os_error_words(exc: OSError, where: str) -> str | None:
    codes = {exc.errno} if exc.errno is not None else _multiple_errnos(str(exc))
    if len(codes) == 1:
        code = next(iter(codes))
        words = _ERRNO_WORDS.get(code) if code is not None else None
        if words:
            return _at(words, where)
    if exc.strerror:
        return _at(f"{exc.strerror[0].lower()}{exc.strerror[1:]}", where)
    if isinstance(exc, ConnectionError) and _TLS_REFUSED.search(str(exc)):
        # A server without TLS answering a client that requires it (PostgreSQL's `N` to
        # an SSLRequest); "connection closed" would send people looking at a proxy.
        return _at("server refused TLS", where)
    if isinstance(exc, ConnectionError):
        # Raised bare by drivers whose peer hung up mid-handshake (asyncpg's
        # `unexpected connection_lost() call`): no errno, and the text is internal.
        return _at("connection closed by server", where)
    return None


def _at(words: str, where: str) -> str:
    """`words (where)`; just the words when the caller does not know where (a receiver's
    reset reaches the notifiers without an address)."""
    return f"{words} ({where})" if where else words


def _multiple_errnos(message: str) -> set[int | None]:
    if not message.startswith("Multiple exceptions"):
        return set()
    return {int(code) for code in _MULTIPLE_ERRNOS.findall(message)}


def first_line(exc: BaseException, default: str = "no details") -> str:
    """The first line of an error's own message, without a trailing full stop."""
    text = str(exc).strip().rstrip(".")
    return text.splitlines()[0] if text else default
