"""A domain's registration expiry, read from its registry over RDAP.

The registry's RDAP server comes from IANA's bootstrap registry (RFC 9224), fetched once
and shared by every domain check; `rdap_url` names the server instead. An expiry date
moves once a year, so a check asks at most every 12 hours and reports the time left from
its last answer in between.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from probe.checks.fetch import Fetcher, where_of
from probe.contract import limits
from probe.contract.plugin import Check, CheckConfig, CheckContext, CheckFailed, Report
from probe.core.model import Sample, Unit
from probe.core.networds import web_url
from probe.core.redact import redact_url

IANA_BOOTSTRAP = "https://data.iana.org/rdap/dns.json"
ASK_EVERY = 12 * 3600.0  # an expiry date moves once a year: no registry wants more
BOOTSTRAP_KEPT = 24 * 3600.0  # IANA updates the registry every few weeks
DEFAULT_WARN = limits.defaults({"expiry": "<30d"})
DEFAULT_FAIL = limits.defaults({"expiry": "<7d"})
NO_EXPIRY = "the registry publishes no expiration date"


class DomainConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"expiry"}
    default_warn: ClassVar[limits.LimitMap] = DEFAULT_WARN
    default_fail: ClassVar[limits.LimitMap] = DEFAULT_FAIL

    type: Literal["domain"]
    domain: str
    rdap_url: str | None = None  # the registry's RDAP base URL; skips the bootstrap
    bootstrap_url: str = IANA_BOOTSTRAP

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        name = value.strip().rstrip(".").lower()
        labels = name.split(".")
        if len(labels) < 2 or not all(labels) or any(c in name for c in "/:@ "):
            raise ValueError(f"expected a registered domain like example.com, got {value!r}")
        return name

    @field_validator("rdap_url")
    @classmethod
    def _rdap(cls, value: str | None) -> str | None:
        return None if value is None else web_url(value, "https://rdap.verisign.com/com/v1/")

    @field_validator("bootstrap_url")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        return web_url(value, IANA_BOOTSTRAP)

    def target(self) -> str:
        return self.domain


class Bootstraps:
    """IANA's bootstrap registries by URL, read once and kept for a day, shared by every
    domain check: one fetch however many domains are watched."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, list[tuple[list[str], list[str]]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def services(self, url: str, fetch: Any) -> list[tuple[list[str], list[str]]]:
        kept = self._kept.get(url)
        if kept is not None and time.monotonic() - kept[0] < BOOTSTRAP_KEPT:
            return kept[1]
        async with self._locks.setdefault(url, asyncio.Lock()):
            kept = self._kept.get(url)
            if kept is not None and time.monotonic() - kept[0] < BOOTSTRAP_KEPT:
                return kept[1]
            services = _services(await fetch(url, "RDAP bootstrap"))
            self._kept[url] = (time.monotonic(), services)
            return services


BOOTSTRAPS = Bootstraps()


def _services(document: Any) -> list[tuple[list[str], list[str]]]:
    """RFC 9224: `{"services": [[["com", "net"], ["https://rdap.verisign.com/com/v1/"]]]}`."""
    entries = document.get("services") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise CheckFailed("RDAP bootstrap has no services list")
    found = []
    for entry in entries:
        if isinstance(entry, list) and len(entry) >= 2:
            labels = [str(x).lower() for x in entry[0] if isinstance(x, str)]
            urls = [str(x) for x in entry[1] if isinstance(x, str)]
            found.append((labels, urls))
    return found


def rdap_base(domain: str, services: list[tuple[list[str], list[str]]]) -> str | None:
    """The registry's base URL for the longest suffix of `domain` the bootstrap lists,
    HTTPS first."""
    labels = domain.split(".")
    for start in range(1, len(labels)):
        suffix = ".".join(labels[start:])
        for entries, urls in services:
            if suffix in entries and urls:
                return sorted(urls, key=lambda u: not u.startswith("https:"))[0]
    return None


class DomainCheck(Check[DomainConfig]):
    config_model = DomainConfig

    def __init__(self, config: DomainConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._fetcher = Fetcher(config.timeout, "application/rdap+json, application/json")
        self._expires: float | None = None  # unix time; None before the first answer
        self._asked_at = 0.0
        self._asked = False

    async def run(self) -> Report:
        if not self._asked or time.monotonic() - self._asked_at >= ASK_EVERY:
            self._expires = await self._ask()
            self._asked, self._asked_at = True, time.monotonic()
        if self._expires is None:
            return Report(samples=[Sample("expiry", None, Unit.SECONDS, note=NO_EXPIRY)])
        left = self._expires - self.context.clock()
        return Report(samples=[Sample("expiry", left, Unit.SECONDS)])

    async def _ask(self) -> float | None:
        config = self.config
        base = config.rdap_url
        if base is None:
            services = await BOOTSTRAPS.services(config.bootstrap_url, self._get_json)
            base = rdap_base(config.domain, services)
            if base is None:
                tld = config.domain.rsplit(".", 1)[-1]
                raise CheckFailed(
                    f"no RDAP server for .{tld} in the bootstrap registry; set rdap_url"
                )
        url = f"{base.rstrip('/')}/domain/{config.domain}"
        return _expiration(await self._get_json(url, "RDAP server"), config.domain)

    async def _get_json(self, url: str, what: str) -> Any:
        status, body = await self._fetcher.get(url)
        if status == 404 and what == "RDAP server":
            where = where_of(url)
            raise CheckFailed(f"{self.config.domain} is not registered ({what} {where}: 404)")
        if status != 200:
            raise CheckFailed(f"{what} answered HTTP {status} ({redact_url(url)})")
        try:
            return json.loads(body)
        except ValueError:
            raise CheckFailed(f"{what} sent no JSON ({redact_url(url)})") from None

    async def close(self) -> None:
        await self._fetcher.close()


def _expiration(document: Any, domain: str) -> float | None:
    """RFC 9083 `events`: the `expiration` event's `eventDate`, as unix time."""
    if not isinstance(document, Mapping) or document.get("objectClassName") != "domain":
        raise CheckFailed(f"RDAP answer for {domain} is not a domain object")
    for event in document.get("events") or []:
        if isinstance(event, Mapping) and event.get("eventAction") == "expiration":
            try:
                when = datetime.datetime.fromisoformat(str(event.get("eventDate")))
            except ValueError:
                raise CheckFailed(
                    f"RDAP expiration date of {domain} is not a date: {event.get('eventDate')!r}"
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            return when.timestamp()
    return None
