"""Secrets are known to the config; these helpers keep them out of everything printed."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
# `user:password@` after `//`, after any `/`, or at the very start: typos such as
# `redis//:pw@host` and `postgres:/app:pw@host` must not print the password either. The
# password runs to the last `@` before the path, so an unescaped `@` in it stays hidden.
_USERINFO_PASSWORD = re.compile(r"((?:^|/)[^/@:\s]*:)[^/\s]*@")
_QUERY_SECRET = re.compile(
    r"((?:password|passwd|pwd|pass|auth|token|secret|key|sig|signature|credential|jwt"
    r"|session|code)=)[^&\s]*",
    re.IGNORECASE,
)
HEARTBEAT_SECRET_LENGTH = 16  # a ping key is 22 characters, a UUID 36
SENSITIVE_HEADER_HINTS = ("authorization", "token", "key", "secret", "cookie", "password")


def redact_url(url: str) -> str:
    """`postgresql://app:pw@db/x?password=y` -> `postgresql://app:***@db/x?password=***`."""
    return _QUERY_SECRET.sub(rf"\1{MASK}", _USERINFO_PASSWORD.sub(rf"\1{MASK}@", url))


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL or DSN: the userinfo password and secret query values."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    match = _USERINFO_PASSWORD.search(url)
    if match:
        found.append(url[match.end(1) : match.end() - 1])
    if password:
        found.append(password)
    if parts is not None:
        for name, value in parse_qsl(parts.query):
            if _QUERY_SECRET.search(f"{name}=") and value:
                found.append(value)
    return [s for s in dict.fromkeys(found) if s]


def heartbeat_secrets(url: str) -> list[str]:
    """A ping URL's secrets: besides `url_secrets`, the long path segments, which is where
    healthchecks.io (`/<uuid>`, `/<ping-key>/<slug>`) and Cronitor (`/p/<key>/...`) keep theirs."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    long_segments = [s for s in path.split("/") if len(s) >= HEARTBEAT_SECRET_LENGTH]
    return [*url_secrets(url), *long_segments]


def url_origin(url: str) -> str:
    """`https://hc-ping.com/<uuid>` -> `https://hc-ping.com`: what logs may say of a URL."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "the configured URL"


def is_sensitive_header(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in SENSITIVE_HEADER_HINTS)


class Redactor:
    """Replaces every known secret string with `***`.

    Built from the config's secret fields, so redaction happens because the config
    knows what is secret, not because some output happened to look like a password.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        unique = sorted({s for s in secrets if s}, key=len, reverse=True)
        # Whole words only: masking the `pass` inside `username-password` would spell the
        # secret out through the gap it leaves. Secrets sit between separators (`:`, `@`,
        # spaces, quotes) wherever they are really quoted, so nothing real is missed.
        alternatives = "|".join(re.escape(s) for s in unique)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)") if unique else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text


class RedactingFilter(logging.Filter):
    """Last line of defence for logs: scrubs secrets from the rendered message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redactor(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in STANDARD_RECORD_KEYS and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks may quote a DSN; keep the type and place, lose the text.
            record.exc_text = self.redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


# Attributes every LogRecord has; anything else on a record is a field passed in `extra`.
STANDARD_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
