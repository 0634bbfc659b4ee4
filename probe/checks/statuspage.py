"""A vendor's own Atlassian Statuspage (`api/v2/summary.json`): what the vendor says about
itself, as a measure on Statuspage's own scale, with the incident's name in the words."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import field_validator

from probe.checks.fetch import Fetcher
from probe.contract import limits
from probe.contract.plugin import Check, CheckConfig, CheckContext, CheckFailed, Report
from probe.core.model import Sample, Unit
from probe.core.networds import web_url
from probe.core.redact import redact_url

SUMMARY_PATH = "api/v2/summary.json"
# Statuspage's page indicator and component statuses on one scale: 0 all is well, 1 minor
# or degraded performance, 2 major or a partial outage, 3 critical or a major outage.
LEVELS = {
    "none": 0,
    "maintenance": 0,
    "operational": 0,
    "under_maintenance": 0,
    "minor": 1,
    "degraded_performance": 1,
    "major": 2,
    "partial_outage": 2,
    "critical": 3,
    "major_outage": 3,
}
# Warn on anything minor or degraded; fail on a major incident or a partial outage.
DEFAULT_WARN = limits.defaults({"indicator": 0})
DEFAULT_FAIL = limits.defaults({"indicator": 1})
NAMED_INCIDENTS = 2  # incident names quoted in the words; the rest are counted


class StatuspageConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"indicator"}
    default_warn: ClassVar[limits.LimitMap] = DEFAULT_WARN
    default_fail: ClassVar[limits.LimitMap] = DEFAULT_FAIL

    type: Literal["statuspage"]
    url: str  # the page (https://status.openai.com) or its api/v2/summary.json
    component: str | None = None  # judge this component (by name, any case) only

    @field_validator("url")
    @classmethod
    def _page_url(cls, value: str) -> str:
        return web_url(value, "https://status.example.com")

    @property
    def summary_url(self) -> str:
        if urlsplit(self.url).path.endswith(".json"):
            return self.url
        return f"{self.url.rstrip('/')}/{SUMMARY_PATH}"

    def target(self) -> str:
        return redact_url(self.summary_url)


class StatuspageCheck(Check[StatuspageConfig]):
    config_model = StatuspageConfig

    def __init__(self, config: StatuspageConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._fetcher = Fetcher(config.timeout, "application/json")

    async def run(self) -> Report:
        summary = await self._summary()
        page = _text(_mapping(summary.get("page")).get("name")) or "the vendor"
        incidents = [i for i in _list(summary.get("incidents")) if isinstance(i, Mapping)]
        if self.config.component is None:
            level, words = _page_state(page, summary, incidents)
        else:
            level, words = self._component_state(page, summary, incidents)
        return Report(
            samples=[Sample("indicator", level, Unit.NONE, note=words, note_explains=True)]
        )

    async def _summary(self) -> Mapping[str, Any]:
        config = self.config
        url = config.summary_url
        status, body = await self._fetcher.get(url)
        if status != 200:
            raise CheckFailed(f"status page answered HTTP {status} ({redact_url(url)})")
        try:
            summary = json.loads(body)
        except ValueError:
            raise CheckFailed(f"status page sent no JSON ({redact_url(url)})") from None
        if not isinstance(summary, dict) or not isinstance(summary.get("status"), dict):
            raise CheckFailed(f"not a Statuspage summary: no status.indicator ({redact_url(url)})")
        return summary

    async def close(self) -> None:
        await self._fetcher.close()

    def _component_state(
        self, page: str, summary: Mapping[str, Any], incidents: list[Mapping[str, Any]]
    ) -> tuple[int, str]:
        wanted = (self.config.component or "").strip().lower()
        components = [c for c in _list(summary.get("components")) if isinstance(c, Mapping)]
        found = next((c for c in components if _text(c.get("name")).lower() == wanted), None)
        if found is None:
            names = ", ".join(_text(c.get("name")) for c in components[:10])
            raise CheckFailed(
                f'no component named "{self.config.component}" on the {page} status page '
                f"(components: {names or 'none'})"
            )
        status = _text(found.get("status"))
        level = LEVELS.get(status, 0)
        if level == 0:
            return 0, ""
        name = _text(found.get("name"))
        state = f"{name}: {status.replace('_', ' ')}"
        mine = [i for i in incidents if _affects(i, found)] or incidents
        if mine:
            return level, f"{page} reports: {_incident_names(mine)} ({state})"
        return level, f"{page} reports {state}"


def _page_state(
    page: str, summary: Mapping[str, Any], incidents: list[Mapping[str, Any]]
) -> tuple[int, str]:
    status = _mapping(summary.get("status"))
    level = LEVELS.get(_text(status.get("indicator")), 0)
    if incidents:
        return level, f"{page} reports: {_incident_names(incidents)}"
    if level:
        return level, f"{page} reports: {_text(status.get('description')) or 'an incident'}"
    return 0, ""


def _affects(incident: Mapping[str, Any], component: Mapping[str, Any]) -> bool:
    ids = {_text(c.get("id")) for c in _list(incident.get("components")) if isinstance(c, Mapping)}
    return _text(component.get("id")) in ids


def _incident_names(incidents: list[Mapping[str, Any]]) -> str:
    names = [json.dumps(_text(i.get("name")), ensure_ascii=False) for i in incidents]
    shown = ", ".join(names[:NAMED_INCIDENTS])
    more = len(names) - NAMED_INCIDENTS
    return f"{shown} and {more} more" if more > 0 else shown


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
