"""The bearer-token check every protected route uses.

The scheme is case-insensitive (RFC 7235) and the token is compared in constant time.
aiohttp decodes header bytes that are not UTF-8 as lone surrogates; they are encoded back
with `surrogatepass`, which cannot fail, so a header of any bytes is a token that does not
match, never an exception (and never a 500).
"""

from __future__ import annotations

import hmac

from aiohttp import web


def _as_bytes(text: str) -> bytes:
    return text.strip().encode("utf-8", "surrogatepass")


def bearer(request: web.Request) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header; None without one."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given if scheme.lower() == "bearer" else None


def token_matches(given: str, token: str) -> bool:
    """Whether `given` is `token`; an empty `token` matches nothing."""
    return bool(token) and hmac.compare_digest(_as_bytes(given), token.encode())


def authorized(request: web.Request, token: str, query: bool = False) -> bool:
    """No token set: every request. Otherwise a matching bearer token, or with `query`
    (pages opened from a bookmark, which cannot send a header) a matching `?token=`."""
    if not token:
        return True
    given = bearer(request)
    if given is None and query and request.query_string:
        given = request.query.get("token")
    return given is not None and token_matches(given, token)
