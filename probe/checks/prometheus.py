"""Prometheus/OpenMetrics scrape: the app's own error ratio, rates, spikes and gauges.

Each run scrapes once; counters are kept per selector across runs (`promql.CounterWindow`)
so ratios and rates are measured over `window` as rate() would, resets included. Until a
window of scrapes exists a measure has no value ("warming up: 1m of 5m"), so a restart
of the agent never judges a rate from one scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from dataclasses import replace
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from probe import __version__
from probe.checks.errors import failure
from probe.checks.promql import (
    MAX_SERIES,
    CounterWindow,
    Scrape,
    ScrapeParser,
    Selector,
    parse_selector,
)
from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    CheckFailed,
    MetricFamily,
    MetricPoint,
    Report,
)
from probe.core.fields import NAME_RE, Duration, StrictModel
from probe.core.model import Sample, Unit
from probe.core.networds import address, network_words, url_port, web_url
from probe.core.redact import redact_url, url_secrets
from probe.core.units import Limit, format_bytes, format_duration

MAX_BODY = 10 * 1024 * 1024  # far above any app's metrics; a runaway exporter must not eat memory
THREAD_PARSE = 256 * 1024  # bodies larger than this are parsed off the event loop
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=1"
BUILT_IN = frozenset({"response_time", "error_rate"})

SIGNAL = MetricFamily(
    "probe_app_signal",
    "Each measure of a prometheus check (ratio, rate per `per`, spike, value), "
    "from its last scheduled run; NaN while warming up.",
    ("check", "measure"),
)


def _selector(raw: object) -> Selector:
    if isinstance(raw, Selector):
        return raw
    return parse_selector(raw)  # type: ignore[arg-type]  # ValueError words for any input


SelectorField = Annotated[Selector, BeforeValidator(_selector)]


class MeasureSpec(StrictModel):
    """One of `{ratio: [a, b]}`, `{rate: a, per: 1m}`, `{spike: a, baseline: 1h}`, `{value: a}`."""

    ratio: tuple[str, str] | None = None
    rate: str | None = None
    spike: str | None = None
    value: str | None = None
    per: Duration | None = None
    baseline: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MeasureSpec:
        kinds = [k for k in ("ratio", "rate", "spike", "value") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of ratio, rate, spike or value")
        if self.per is not None and self.rate is None:
            raise ValueError("per goes with rate only")
        if self.baseline is not None and self.spike is None:
            raise ValueError("baseline goes with spike only")
        if self.per is not None and self.per <= 0:
            raise ValueError("per must be greater than 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("ratio", "rate", "spike", "value") if getattr(self, k) is not None)

    @property
    def uses(self) -> tuple[str, ...]:
        if self.ratio is not None:
            return self.ratio
        return (self.rate or self.spike or self.value or "",)


class PrometheusConfig(CheckConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"url", "password"})
    metric_families: ClassVar[tuple[MetricFamily, ...]] = (SIGNAL,)

    type: Literal["prometheus"]
    url: str
    username: str = ""
    password: SecretStr = SecretStr("")
    series: dict[str, SelectorField]
    # `measures` is the contract's class-level set of known measure names, hence the alias.
    specs: dict[str, MeasureSpec] = Field(alias="measures")
    min_requests: int = Field(default=10, ge=0)

    @field_validator("warn", "fail")
    @classmethod
    def _known_measures(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        # Measure names come from this check's own `measures:`; checked once it is read.
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return web_url(value, "http://host:3000/api/metrics")

    @field_validator("series")
    @classmethod
    def _some_series(cls, value: dict[str, Selector]) -> dict[str, Selector]:
        if not value:
            raise ValueError("name at least one series, e.g. requests: 'http_requests_total'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusConfig:
        if not self.specs:
            raise ValueError(
                "measures: name at least one, e.g. error_ratio: {ratio: [errors, requests]}"
            )
        for name, spec in self.specs.items():
            where = f"measures.{name}"
            if not NAME_RE.match(name) or name == "response_time":
                raise ValueError(
                    f"{where}: a measure name must match [a-z0-9_-]+, not response_time"
                )
            for used in spec.uses:
                if used not in self.series:
                    known = ", ".join(self.series)
                    raise ValueError(f"{where}: {used!r} is not a key of series (known: {known})")
            if spec.spike is not None and self.baseline_of(spec) <= self.window:
                raise ValueError(
                    f"{where}: baseline ({format_duration(self.baseline_of(spec))}) must be "
                    f"longer than window ({format_duration(self.window)})"
                )
        allowed = BUILT_IN | set(self.specs)
        for key, limits in (("warn", self.warn), ("fail", self.fail)):
            for measure in limits:
                if measure not in allowed:
                    raise ValueError(
                        f"{key}.{measure}: unknown measure (known: {', '.join(sorted(allowed))})"
                    )
        if bool(self.username) != bool(self.password.get_secret_value()):
            raise ValueError("username and password go together (basic auth)")
        if urlsplit(self.url).username is not None and self.username:
            raise ValueError("url has user:password and username is set; use only one of them")
        return self

    def baseline_of(self, spec: MeasureSpec) -> float:
        return spec.baseline if spec.baseline is not None else 3600.0

    def per_of(self, spec: MeasureSpec) -> float:
        return spec.per if spec.per is not None else 60.0

    def target(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        return [*url_secrets(self.url), self.password.get_secret_value()]

    def metric_points(self) -> list[MetricPoint]:
        return [MetricPoint(SIGNAL, (self.name, m), "", m) for m in self.specs]


# ---------------------------------------------------------------- check


class PrometheusCheck(Check[PrometheusConfig]):
    config_model = PrometheusConfig

    def __init__(self, config: PrometheusConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._session: aiohttp.ClientSession | None = None
        counted = {k for s in config.specs.values() if s.kind != "value" for k in s.uses}
        longest = max(
            [config.window, *(config.baseline_of(s) for s in config.specs.values() if s.spike)]
        )
        self._windows = {key: CounterWindow(keep=longest) for key in counted}
        self._parser = ScrapeParser(frozenset(s.name for s in config.series.values()))
        self._parsing: asyncio.Future[Scrape] | None = None  # a parse off the event loop

    async def run(self) -> Report:
        text = await self._scrape()
        try:
            scrape = await self._parse(text)
        except ValueError as exc:
            raise CheckFailed(f"{exc} (from {self.config.target()})") from None
        self._require(scrape, text)
        now = self.context.clock()
        for key, window in self._windows.items():
            window.add(now, scrape.matching(self.config.series[key]))
        return Report(
            samples=[
                _with_caveats(self._measure(n, s, scrape, now), self._caveats(s, scrape, now))
                for n, s in self.config.specs.items()
            ]
        )

    async def _parse(self, text: str) -> Scrape:
        """One parse at a time. A run that times out leaves its thread parsing; without
        this, every later run queued one more body (3 MB at 50,000 series) behind it in
        the thread pool, and memory grew for as long as parsing took longer than
        `interval`. The parser's caches are shared, so a small body waits its turn too."""
        busy = self._parsing
        if busy is not None and not busy.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(busy)  # this run's deadline still bounds the wait
        if len(text) <= THREAD_PARSE:
            return self._parser.parse(text)
        parsing = asyncio.ensure_future(asyncio.to_thread(self._parser.parse, text))
        # A parse whose run timed out still ends; its error is nobody's to report.
        parsing.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._parsing = parsing
        return await asyncio.shield(parsing)

    # -- scraping

    async def _scrape(self) -> str:
        config = self.config
        headers = {}
        if config.username:
            password = config.password.get_secret_value()
            headers["Authorization"] = aiohttp.encode_basic_auth(config.username, password)
        try:
            async with self._get_session().get(config.url, headers=headers) as response:
                if response.status != 200:
                    raise CheckFailed(f"scrape answered HTTP {response.status} ({config.target()})")
                body = await _read_limited(response)
        except aiohttp.ClientError as exc:
            host, port = urlsplit(config.url).hostname or "", url_port(config.url)
            raise failure(exc, network_words(exc, host, address(host, port))) from None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckFailed(
                f"not Prometheus text: the body is not UTF-8 ({config.target()})"
            ) from None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                connector=aiohttp.TCPConnector(limit=2),
                headers={"User-Agent": f"probe/{__version__}", "Accept": ACCEPT},
            )
        return self._session

    def _require(self, scrape: Scrape, text: str) -> None:
        for selector in self.config.series.values():
            if selector.name not in scrape.series and not _declared(text, selector.name):
                raise CheckFailed(
                    f"series {selector.name} not found in the scrape ({scrape.seen:,} series seen)"
                )

    # -- measures

    def _measure(self, name: str, spec: MeasureSpec, scrape: Scrape, now: float) -> Sample:
        config = self.config
        window = config.window
        if spec.value is not None:
            total = sum(v for _, v in scrape.matching(config.series[spec.value]))
            return Sample(name, total, Unit.COUNT)
        span = config.baseline_of(spec) if spec.spike is not None else window
        first = self._windows[spec.uses[0]]
        if self.context.agent is None:
            return Sample(
                name,
                None,
                _unit(spec),
                note=f"needs the agent: rates are measured over {format_duration(span)}",
            )
        if first.covered(now) < span:
            covered = (
                format_duration(round(first.covered(now))) if first.covered(now) >= 1 else "0s"
            )
            return Sample(
                name, None, _unit(spec), note=f"warming up: {covered} of {format_duration(span)}"
            )
        shown = format_duration(window)
        if spec.ratio is not None:
            part = first.increase(now, window) or 0.0
            whole = self._windows[spec.ratio[1]].increase(now, window) or 0.0
            if whole < max(config.min_requests, 1):
                note = (
                    f"{whole:,.0f} {spec.ratio[1]} in {shown}, "
                    f"under min_requests {config.min_requests}"
                )
                return Sample(name, None, Unit.RATIO, note=note)
            note = f"{part:,.0f} of {whole:,.0f} in {shown}"
            return Sample(name, part / whole, Unit.RATIO, note=note, note_explains=True)
        if spec.rate is not None:
            per = config.per_of(spec)
            rate = first.rate(now, window) or 0.0
            note = f"{first.increase(now, window) or 0:,.0f} in {shown}, per {format_duration(per)}"
            return Sample(name, rate * per, Unit.COUNT, note=note, note_explains=True)
        recent, usual = first.rate(now, window) or 0.0, first.rate(now, span) or 0.0
        # The baseline includes the window, so it is zero only when the window is too.
        spike = recent / usual if usual > 0 else 0.0
        note = (
            f"{recent * 60:,.2f}/min over {shown} "
            f"vs {usual * 60:,.2f}/min over {format_duration(span)}"
        )
        return Sample(name, spike, Unit.NONE, note=note, note_explains=True)

    def _caveats(self, spec: MeasureSpec, scrape: Scrape, now: float) -> list[str]:
        """What makes this measure's figure less than exact: samples left out of this
        scrape (NaN, +-Inf) and series beyond the followed ones within the window."""
        odd: dict[str, float] = {}  # by series: a series two selectors match is one sample
        limited = False
        span = self.config.baseline_of(spec) if spec.spike is not None else self.config.window
        for key in dict.fromkeys(spec.uses):
            odd.update(scrape.non_finite(self.config.series[key]))
            window = self._windows.get(key)
            limited = limited or (window is not None and window.limited(now, span))
        words = [
            f"{count:,} {'sample was' if count == 1 else 'samples were'} {word}"
            for word, count in sorted(Counter(map(_odd_word, odd.values())).items())
        ]
        if limited:
            words.append(f"series limit reached ({MAX_SERIES:,} followed, the rest summed as one)")
        return words

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _odd_word(value: float) -> str:
    return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"


def _with_caveats(sample: Sample, caveats: list[str]) -> Sample:
    if not caveats:
        return sample
    note = "; ".join([sample.note, *caveats] if sample.note else caveats)
    return replace(sample, note=note)


def _unit(spec: MeasureSpec) -> Unit:
    return Unit.RATIO if spec.ratio is not None else Unit.COUNT if spec.rate else Unit.NONE


def _declared(text: str, name: str) -> bool:
    """A counter declared with `# TYPE` but not yet incremented has no samples: it is
    there, at zero (prom-client prints labelled counters so before their first inc)."""
    family = name.removesuffix("_total")
    return f"# TYPE {name} " in text or f"# TYPE {family} counter" in text


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None and length > MAX_BODY:
        raise CheckFailed(_too_big(length))
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise CheckFailed(_too_big(None))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(length: int | None) -> str:
    got = f" ({format_bytes(length)})" if length is not None else ""
    return f"scrape body is larger than {format_bytes(MAX_BODY)}{got}; scrape a smaller endpoint"
