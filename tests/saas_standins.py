"""Local stand-ins for the services notifiers post to: PagerDuty, Opsgenie, Teams (Workflows),
Discord, Telegram, Pushover, ntfy, and a plain JSON receiver for apprise's `json://`.

One aiohttp server answers them all on its own paths. Each request is checked against
the service's documented schema and limits (required fields, types, lengths, the auth
header or the token in the path, the content type); one the real service would refuse
is answered with that service's own error body and recorded in `problems`, so a test
that expects delivery fails. `plan(service, ...)` queues answers for the next requests:
`"rate_limited"` (the service's own 429 and words for the wait), `"server_error"`,
`"hang"`. PagerDuty and Opsgenie keep the state of their alerts by dedup key / alias,
so a test can see that a resolve closed what the trigger opened.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port

ROUTING_KEY = "R0ut1ngKey0000000000000000000001"  # 32 characters, as PagerDuty's are
OPSGENIE_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
BOT_TOKEN = "123456789:AAEcanaryTelegramToken_x1"
DISCORD_TOKEN = "discordCanaryToken-9f8e7d"
TEAMS_SIG = "teamsCanarySig123"
PUSHOVER_TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"  # 30 characters
PUSHOVER_USER = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
NTFY_TOKEN = "tk_canaryntfytoken000000000001"

PROBLEM_STATUS = 400


@dataclass(slots=True)
class Hit:
    service: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


class Invalid(Exception):
    """The service would refuse this request: why, in its own words."""


def _uuid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- per-service rules


def _need(condition: bool, words: str) -> None:
    if not condition:
        raise Invalid(words)


def _string(body: dict[str, Any], key: str, limit: int, required: bool = False) -> None:
    value = body.get(key)
    if value is None:
        _need(not required, f"'{key}' is missing")
        return
    _need(isinstance(value, str), f"'{key}' must be a string")
    _need(not required or bool(value), f"'{key}' must not be empty")
    _need(len(value) <= limit, f"'{key}' is longer than {limit} characters ({len(value)})")


def _timestamp(value: Any, key: str) -> None:
    _need(isinstance(value, str), f"'{key}' must be a string")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"'{key}' is not an ISO 8601 timestamp") from None


def check_pagerduty(body: Any) -> None:
    """Events API v2: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/"""
    _need(isinstance(body, dict), "Event object is invalid")
    key = body.get("routing_key")
    _need(isinstance(key, str) and len(key) == 32, "Length of 'routing_key' is incorrect")
    action = body.get("event_action")
    _need(action in ("trigger", "acknowledge", "resolve"), "'event_action' is invalid")
    _string(body, "dedup_key", 255, required=action != "trigger")
    if action != "trigger":
        return
    payload = body.get("payload")
    _need(isinstance(payload, dict), "'payload' is missing or not an object")
    _string(payload, "summary", 1024, required=True)
    _string(payload, "source", 255, required=True)
    _need(
        payload.get("severity") in ("critical", "error", "warning", "info"),
        "'payload.severity' must be one of critical, error, warning, info",
    )
    if "timestamp" in payload:
        _timestamp(payload["timestamp"], "payload.timestamp")
    for name in ("component", "group", "class"):
        _string(payload, name, 1024)
    _need(isinstance(payload.get("custom_details", {}), dict), "'custom_details' not an object")
    for link in body.get("links", []):
        _need(isinstance(link, dict) and isinstance(link.get("href"), str), "'links' invalid")
        _need(link["href"].startswith(("http://", "https://")), "'links.href' not a URL")


def check_opsgenie_create(body: Any) -> None:
    """Alert API v2 create: https://docs.opsgenie.com/docs/alert-api#create-alert"""
    _need(isinstance(body, dict), "Request body is not processable")
    _string(body, "message", 130, required=True)
    _string(body, "alias", 512)
    _string(body, "description", 15000)
    _string(body, "entity", 512)
    _string(body, "source", 100)
    _string(body, "user", 100)
    _string(body, "note", 25000)
    _need(body.get("priority", "P3") in ("P1", "P2", "P3", "P4", "P5"), "Priority is invalid")
    tags = body.get("tags", [])
    _need(isinstance(tags, list) and len(tags) <= 20, "Tags can be at most 20")
    _need(all(isinstance(t, str) and len(t) <= 50 for t in tags), "A tag is longer than 50")
    details = body.get("details", {})
    _need(isinstance(details, dict), "Details must be a map")
    _need(all(isinstance(v, str) for v in details.values()), "Detail values must be strings")
    _need(len(json.dumps(details)) <= 8000, "Details are longer than 8000 characters")


def check_opsgenie_close(body: Any, query: dict[str, str]) -> None:
    _need(query.get("identifierType") == "alias", "identifierType must be alias here")
    _need(isinstance(body, dict), "Request body is not processable")
    _string(body, "source", 100)
    _string(body, "user", 100)
    _string(body, "note", 25000)


_CARD_ELEMENTS = {"TextBlock", "Container", "ColumnSet", "FactSet", "Image", "ActionSet"}
_CONTAINER_STYLES = {"default", "emphasis", "good", "attention", "warning", "accent"}


def _check_element(element: Any) -> None:
    _need(isinstance(element, dict), "card element is not an object")
    kind = element.get("type")
    _need(kind in _CARD_ELEMENTS, f"unknown card element type {kind!r}")
    if kind == "TextBlock":
        _need(isinstance(element.get("text"), str) and element["text"] != "", "TextBlock text")
    if kind == "Container":
        _need(element.get("style", "default") in _CONTAINER_STYLES, "Container style")
        items = element.get("items")
        _need(isinstance(items, list) and bool(items), "Container needs items")
        for item in items:
            _check_element(item)


def check_teams(body: Any, raw_size: int) -> None:
    """Workflows "When a Teams webhook request is received": a message whose attachments
    are Adaptive Cards (the retired connector's MessageCard is refused)."""
    _need(raw_size <= 28 * 1024, "message larger than 28 KB")
    _need(isinstance(body, dict) and body.get("type") == "message", "type must be 'message'")
    _need("@type" not in body, "MessageCard (Office 365 connector) is not supported")
    attachments = body.get("attachments")
    _need(isinstance(attachments, list) and len(attachments) >= 1, "attachments missing")
    for attachment in attachments:
        _need(
            attachment.get("contentType") == "application/vnd.microsoft.card.adaptive",
            "attachment contentType must be application/vnd.microsoft.card.adaptive",
        )
        card = attachment.get("content")
        _need(isinstance(card, dict) and card.get("type") == "AdaptiveCard", "not an AdaptiveCard")
        version = str(card.get("version", ""))
        _need(version in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"), f"card version {version!r}")
        _need(isinstance(card.get("body"), list) and bool(card["body"]), "card body missing")
        for element in card["body"]:
            _check_element(element)
        for action in card.get("actions", []):
            _need(action.get("type") == "Action.OpenUrl", "only Action.OpenUrl works here")
            _need(str(action.get("url", "")).startswith(("http://", "https://")), "action url")


def check_discord(body: Any) -> None:
    """Execute Webhook: https://discord.com/developers/docs/resources/webhook#execute-webhook"""
    _need(isinstance(body, dict), "Invalid Form Body")
    content, embeds = body.get("content", ""), body.get("embeds", [])
    _need(bool(content) or bool(embeds), "Cannot send an empty message")
    _need(len(content) <= 2000, "content: Must be 2000 or fewer in length.")
    _need(isinstance(embeds, list) and len(embeds) <= 10, "embeds: Must be 10 or fewer in length.")
    total = 0
    for embed in embeds:
        title = embed.get("title", "")
        description = embed.get("description", "")
        footer = embed.get("footer", {}).get("text", "")
        _need(len(title) <= 256, "embeds.title: Must be 256 or fewer in length.")
        _need(len(description) <= 4096, "embeds.description: Must be 4096 or fewer in length.")
        _need(len(footer) <= 2048, "embeds.footer.text: Must be 2048 or fewer in length.")
        _need(len(embed.get("fields", [])) <= 25, "embeds.fields: Must be 25 or fewer in length.")
        colour = embed.get("color", 0)
        _need(isinstance(colour, int) and 0 <= colour <= 0xFFFFFF, "embeds.color: invalid")
        if "timestamp" in embed:
            _timestamp(embed["timestamp"], "embeds.timestamp")
        total += len(title) + len(description) + len(footer)
    _need(total <= 6000, "embeds: Embed size exceeds maximum size of 6000")
    _need(len(body.get("username", "")) <= 80, "username: Must be 80 or fewer in length.")


_TELEGRAM_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
    "a", "code", "pre", "tg-spoiler", "span", "blockquote", "tg-emoji",
}  # fmt: skip


class _TelegramHTML(HTMLParser):
    """Telegram's HTML parse mode: only its tags, every tag closed, and only the entities
    &lt; &gt; &amp; &quot; and numeric ones; a bare `<` or `&` is refused."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        _need(tag in _TELEGRAM_TAGS, f'can\'t parse entities: Unsupported start tag "{tag}"')
        if tag == "a":
            _need(any(k == "href" for k, _ in attrs), "can't parse entities: a without href")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        _need(
            bool(self.open) and self.open.pop() == tag,
            f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\"",
        )

    def handle_data(self, data: str) -> None:
        _need("<" not in data and ">" not in data, "can't parse entities: unexpected < or >")
        _need("&" not in data, "can't parse entities: Character '&' is reserved")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        _need(name in ("lt", "gt", "amp", "quot"), f"can't parse entities: &{name};")
        self.text.append("x")

    def handle_charref(self, name: str) -> None:
        self.text.append("x")


def check_telegram(body: Any) -> None:
    """sendMessage: https://core.telegram.org/bots/api#sendmessage"""
    _need(isinstance(body, dict), "Bad Request: invalid request")
    _need(body.get("chat_id") not in (None, ""), "Bad Request: chat_id is empty")
    text = body.get("text")
    _need(isinstance(text, str) and text.strip() != "", "Bad Request: message text is empty")
    visible = text
    if body.get("parse_mode") == "HTML":
        parser = _TelegramHTML()
        # A raw `<` that starts no tag reaches handle_data only at the end; check it here.
        _need(not re.search(r"<(?![a-zA-Z/])", text), "can't parse entities: unexpected <")
        parser.feed(text)
        parser.close()
        _need(not parser.open, f'can\'t parse entities: unclosed tag "{parser.open[-1:]}"')
        visible = "".join(parser.text)
    _need(len(visible) <= 4096, "Bad Request: message is too long")


def check_pushover(body: Any) -> None:
    """https://pushover.net/api: token and user of 30 characters, limits on every field."""
    _need(isinstance(body, dict), "invalid request")
    _need(body.get("token") == PUSHOVER_TOKEN, "token:application token is invalid")
    _need(body.get("user") == PUSHOVER_USER, "user:user identifier is not a valid user")
    _string(body, "message", 1024, required=True)
    _string(body, "title", 250)
    _string(body, "url", 512)
    _string(body, "url_title", 100)
    priority = body.get("priority", 0)
    _need(priority in (-2, -1, 0, 1, 2), "priority:is invalid")
    if priority == 2:
        _need(int(body.get("retry", 0)) >= 30, "retry:must be at least 30 seconds")
        expire = int(body.get("expire", 0))
        _need(0 < expire <= 10800, "expire:must be at most 10800 seconds")


def check_ntfy(body: Any) -> None:
    """JSON publish: https://docs.ntfy.sh/publish/#publish-as-json"""
    _need(isinstance(body, dict), "invalid request: request body must be message JSON")
    topic = body.get("topic")
    _need(
        isinstance(topic, str) and re.fullmatch(r"[-_A-Za-z0-9]{1,64}", topic) is not None,
        "invalid request: topic invalid",
    )
    message = body.get("message", "")
    _need(len(message.encode()) <= 4096, "invalid request: message too large")
    _need(body.get("priority", 3) in (1, 2, 3, 4, 5), "invalid priority")
    tags = body.get("tags", [])
    _need(isinstance(tags, list) and all(isinstance(t, str) for t in tags), "invalid tags")


# ---------------------------------------------------------------- the server


@dataclass
class SaaS:
    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pagerduty_alerts: dict[str, str] = field(default_factory=dict)  # dedup_key -> state
    opsgenie_alerts: dict[str, str] = field(default_factory=dict)  # alias -> open|closed
    _plans: dict[str, list[str]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, service: str, *answers: str) -> None:
        self._plans.setdefault(service, []).extend(answers)

    def delivered(self, service: str) -> list[Any]:
        return [h.body for h in self.hits if h.service == service and h.status < 300]

    async def wait_for(self, service: str, count: int, timeout: float = 10.0) -> list[Any]:
        assert self._arrived is not None
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.delivered(service)) >= count)
        return self.delivered(service)

    async def start(self) -> SaaS:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._pagerduty)
        app.router.add_post("/v2/alerts", self._opsgenie_create)
        app.router.add_post("/v2/alerts/{alias}/close", self._opsgenie_close)
        app.router.add_post("/workflows/{rest:.*}", self._teams)
        app.router.add_post("/api/webhooks/{id}/{token}", self._discord)
        app.router.add_post("/{bot}/sendMessage", self._telegram)
        app.router.add_post("/1/messages.json", self._pushover)
        app.router.add_post("/ntfy/", self._ntfy)
        app.router.add_post("/apprise", self._apprise)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self._arrived = asyncio.Condition()
        self.port = self.port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ plumbing

    async def _record(self, service: str, request: web.Request, body: Any, status: int) -> None:
        self.hits.append(Hit(service, request.path_qs, dict(request.headers), body, status))
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()

    def _next(self, service: str) -> str:
        plan = self._plans.get(service)
        return plan.pop(0) if plan else "ok"

    async def _json(self, request: web.Request) -> tuple[Any, int]:
        raw = await request.read()
        if request.content_type != "application/json":
            return None, len(raw)
        try:
            return json.loads(raw), len(raw)
        except ValueError:
            return None, len(raw)

    async def _handle(
        self,
        service: str,
        request: web.Request,
        validate: Any,
        ok: tuple[int, Any],
        invalid: Any,
        rate_limited: tuple[Any, dict[str, str]],
        auth_error: tuple[int, Any] | None = None,
    ) -> web.Response:
        """Auth, then the planned answer, then the schema; the answer in the service's words."""
        body, size = await self._json(request)
        answer = self._next(service)
        if answer == "hang":
            await self._record(service, request, body, 0)
            await asyncio.Event().wait()
        if auth_error is not None:
            await self._record(service, request, body, auth_error[0])
            return _json_response(*auth_error)
        if answer == "rate_limited":
            await self._record(service, request, body, 429)
            return _json_response(429, rate_limited[0], rate_limited[1])
        if answer == "server_error":
            await self._record(service, request, body, 500)
            return _json_response(500, {"message": "internal error"})
        try:
            if body is None:
                raise Invalid("the body is not JSON with Content-Type: application/json")
            validate(body, size)
        except Invalid as exc:
            self.problems.append(f"{service}: {exc}")
            await self._record(service, request, body, PROBLEM_STATUS)
            return _json_response(PROBLEM_STATUS, invalid(str(exc)))
        await self._record(service, request, body, ok[0])
        return _json_response(ok[0], ok[1])

    # ------------------------------------------------------------ services

    async def _pagerduty(self, request: web.Request) -> web.Response:
        def validate(body: Any, size: int) -> None:
            check_pagerduty(body)
            key = body.get("dedup_key") or _uuid()
            if body["event_action"] == "trigger":
                self.pagerduty_alerts[key] = "triggered"
            elif key in self.pagerduty_alerts:
                self.pagerduty_alerts[key] = "resolved"

        return await self._handle(
            "pagerduty",
            request,
            validate,
            (202, {"status": "success", "message": "Event processed", "dedup_key": "x"}),
            lambda why: {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [why],
            },
            (
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please retry later.",
                },
                {},
            ),
        )

    def _opsgenie_auth(self, request: web.Request) -> tuple[int, Any] | None:
        if request.headers.get("Authorization") == f"GenieKey {OPSGENIE_KEY}":
            return None
        return 401, {"message": "Could not authenticate", "took": 0.0, "requestId": _uuid()}

    def _opsgenie_answers(self) -> dict[str, Any]:
        return {
            "ok": (202, {"result": "Request will be processed", "took": 0.1, "requestId": _uuid()}),
            "invalid": lambda why: {
                "message": "Request body is not processable. Please check the errors.",
                "errors": {"body": why},
                "took": 0.0,
                "requestId": _uuid(),
            },
            "rate_limited": (
                {
                    "message": "You are making too many requests! To avoid errors, we "
                    "recommend you limit requests.",
                    "took": 0.0,
                    "requestId": _uuid(),
                },
                {"X-RateLimit-State": "THROTTLED", "Retry-After": "1"},
            ),
        }

    async def _opsgenie_create(self, request: web.Request) -> web.Response:
        def validate(body: Any, size: int) -> None:
            check_opsgenie_create(body)
            self.opsgenie_alerts[body.get("alias") or _uuid()] = "open"

        a = self._opsgenie_answers()
        return await self._handle(
            "opsgenie", request, validate, a["ok"], a["invalid"], a["rate_limited"],
            self._opsgenie_auth(request),
        )  # fmt: skip

    async def _opsgenie_close(self, request: web.Request) -> web.Response:
        alias = request.match_info["alias"]  # aiohttp has decoded %2F back to /

        def validate(body: Any, size: int) -> None:
            check_opsgenie_close(body, dict(request.query))
            if alias in self.opsgenie_alerts:
                self.opsgenie_alerts[alias] = "closed"

        a = self._opsgenie_answers()
        return await self._handle(
            "opsgenie", request, validate, a["ok"], a["invalid"], a["rate_limited"],
            self._opsgenie_auth(request),
        )  # fmt: skip

    async def _teams(self, request: web.Request) -> web.Response:
        auth = None
        if request.query.get("sig") != TEAMS_SIG:
            auth = (401, {"error": {"code": "DirectApiAuthorizationRequired",
                                    "message": "The request must be authenticated."}})  # fmt: skip
        return await self._handle(
            "teams",
            request,
            lambda body, size: check_teams(body, size),
            (202, None),
            lambda why: {"error": {"code": "InvalidRequestContent", "message": why}},
            (
                {"error": {"code": "TooManyRequests", "message": "Rate limit is exceeded."}},
                {"Retry-After": "1"},
            ),
            auth,
        )

    async def _discord(self, request: web.Request) -> web.Response:
        auth = None
        if request.match_info["token"] != DISCORD_TOKEN:
            auth = (401, {"message": "Invalid Webhook Token", "code": 50027})
        return await self._handle(
            "discord",
            request,
            lambda body, size: check_discord(body),
            (204, None),
            lambda why: {
                "code": 50035,
                "errors": {"_errors": [{"message": why}]},
                "message": "Invalid Form Body",
            },
            ({"message": "You are being rate limited.", "retry_after": 0.25, "global": False}, {}),
            auth,
        )

    async def _telegram(self, request: web.Request) -> web.Response:
        auth = None
        if request.match_info["bot"] != f"bot{BOT_TOKEN}":
            auth = (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})

        def validate(body: Any, size: int) -> None:
            check_telegram(body)

        ok = {
            "ok": True,
            "result": {"message_id": len(self.hits) + 1, "chat": {"id": -100}, "date": 0},
        }
        return await self._handle(
            "telegram",
            request,
            validate,
            (200, ok),
            lambda why: {"ok": False, "error_code": 400, "description": f"Bad Request: {why}"},
            (
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                },
                {},
            ),
            auth,
        )

    async def _pushover(self, request: web.Request) -> web.Response:
        return await self._handle(
            "pushover",
            request,
            lambda body, size: check_pushover(body),
            (200, {"status": 1, "request": _uuid()}),
            lambda why: {
                why.partition(":")[0]: "invalid",
                "errors": [why.partition(":")[2] or why],
                "status": 0,
                "request": _uuid(),
            },
            ({"status": 0, "errors": ["too many requests"], "request": _uuid()}, {}),
        )

    async def _ntfy(self, request: web.Request) -> web.Response:
        auth = None
        if request.headers.get("Authorization") != f"Bearer {NTFY_TOKEN}":
            auth = (401, {"code": 40101, "http": 401, "error": "unauthorized",
                          "link": "https://ntfy.sh/docs/publish/#authentication"})  # fmt: skip
        return await self._handle(
            "ntfy",
            request,
            lambda body, size: check_ntfy(body),
            (200, {"id": _uuid()[:12], "time": 0, "event": "message", "topic": "t"}),
            lambda why: {
                "code": 40024,
                "http": 400,
                "error": why,
                "link": "https://ntfy.sh/docs/publish/",
            },
            (
                {
                    "code": 42901,
                    "http": 429,
                    "error": "limit reached: too many requests; increase your limits with a "
                    "paid plan, see https://ntfy.sh",
                    "link": "https://ntfy.sh/docs/publish/#limitations",
                },
                {},
            ),
            auth,
        )

    async def _apprise(self, request: web.Request) -> web.Response:
        def validate(body: Any, size: int) -> None:
            # apprise's json:// document
            _need({"version", "title", "message", "type"} <= set(body), "apprise json fields")

        return await self._handle(
            "apprise",
            request,
            validate,
            (200, {"ok": True}),
            lambda why: {"error": why},
            ({"error": "slow down"}, {"Retry-After": "1"}),
        )


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


@pytest.fixture
async def saas() -> AsyncIterator[SaaS]:
    """A started stand-in for every SaaS notifier, closed after the test."""
    stand_in = await SaaS().start()
    yield stand_in
    await stand_in.close()


def notifier_for(service: str, saas: SaaS, **extra: Any) -> dict[str, Any]:
    """The config entry of one SaaS notifier pointed at the stand-in."""
    base = saas.base
    entries: dict[str, dict[str, Any]] = {
        "pagerduty": {"routing_key": ROUTING_KEY, "url": f"{base}/v2/enqueue"},
        "opsgenie": {"api_key": OPSGENIE_KEY, "region": "eu", "url": base},
        "teams": {
            "webhook_url": f"{base}/workflows/4f1c/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
        },
        "discord": {"webhook_url": f"{base}/api/webhooks/1234567890/{DISCORD_TOKEN}"},
        "telegram": {"bot_token": BOT_TOKEN, "chat_id": -1001234567890, "url": base},
        "pushover": {
            "token": PUSHOVER_TOKEN,
            "user": PUSHOVER_USER,
            "url": f"{base}/1/messages.json",
        },
        "ntfy": {"url": f"{base}/ntfy/probe-alerts", "token": NTFY_TOKEN},
        "apprise": {"urls": [f"json://127.0.0.1:{saas.port}/apprise"]},
    }
    return {"type": service, **entries[service], **extra}
