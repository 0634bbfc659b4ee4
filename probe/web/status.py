"""`/status`, the history JSON endpoints and the badges (docs/history.md).

One self-contained HTML page: inline CSS and SVG, no external assets, a meta refresh
(so it refreshes with JavaScript off) and a few lines of script that only say how old
the page is. A change of history or of current states only marks the bodies stale; the
first request after that rebuilds them from memory (`StatusSite.ensure_fresh`), so
handlers pick bytes and never touch a database.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterator
from html import escape

from aiohttp import web

from probe.core.incident_notes import Note
from probe.core.maintenance import Window
from probe.core.model import Health, Status
from probe.core.times import readable_utc, rfc3339_seconds
from probe.core.units import format_duration
from probe.engine.history.model import Incident, Rollup
from probe.engine.history.rollup import WINDOWS, uptime
from probe.web import responses
from probe.web.auth import authorized
from probe.web.badges import AMBER, GREEN, GREY, RED, percent, status_badge, uptime_badge
from probe.web.feed import atom_feed
from probe.web.history import HISTORY_WINDOWS, CheckSummary, HistoryView, Snapshot
from probe.web.responses import ATOM, SVG
from probe.web.settings import LiveSettings

REFRESH_SECONDS = 30
BAR_W, BAR_GAP, BAR_H = 8, 2, 32
CHART_W, CHART_H = 840, 120

_STATE_COLOUR = {Status.PASS: GREEN, Status.WARN: AMBER, Status.FAIL: RED, None: GREY}
_STATE_WORD = {Status.PASS: "pass", Status.WARN: "warn", Status.FAIL: "fail", None: "no data"}
_OVERALL = {
    Health.HEALTHY: ("All checks passing", GREEN),
    Health.DEGRADED: ("Degraded", AMBER),
    Health.UNHEALTHY: ("Unhealthy", RED),
}

CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,
sans-serif;background:#f4f5f7;color:#1d2330}main{max-width:960px;margin:0 auto;padding:12px}
header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;gap:8px}
h1{font-size:1.3em;margin:.4em 0}.overall{color:#fff;border-radius:6px;padding:10px 14px;
font-weight:600;margin:8px 0 16px}.meta{color:#5b6270;font-size:.85em}
.check{background:#fff;border-radius:6px;padding:10px 12px;margin:0 0 12px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}.row{display:flex;flex-wrap:wrap;gap:6px 14px;
align-items:center;justify-content:space-between}.name{font-weight:600;font-size:1.05em}
.state{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:.8em;
font-weight:600;margin-left:6px;vertical-align:middle}.output{color:#5b6270;font-size:.85em;
margin:4px 0 0;overflow-wrap:anywhere}.uptime{display:flex;gap:12px;font-size:.85em}
.uptime b{font-variant-numeric:tabular-nums}svg{display:block;width:100%;height:auto}
.bars{margin:8px 0 2px}.axis{display:flex;justify-content:space-between;color:#8a8f98;
font-size:.75em}details{margin-top:6px}summary{cursor:pointer;color:#5b6270;font-size:.85em}
.incidents{background:#fff;border-radius:6px;padding:10px 12px}.incidents ul{list-style:none;
margin:0;padding:0}.incident{border-top:1px solid #eceef1;padding:8px 0}
.incident:first-child{border-top:0}.bar{rx:1.5px}.bar.p{fill:#2e9e44}
.bar.w{fill:#d69e00}.bar.f{fill:#d23f31}.bar.n{fill:#c9cdd3}.sev{font-weight:600;text-transform:uppercase;
font-size:.75em;margin-right:6px}.sev.critical{color:#d23f31}.sev.warning{color:#b58500}
h2{font-size:1.05em;margin:18px 0 8px}.none{color:#5b6270}.bar.m{fill:#3867d6}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;color:#5b6270;font-size:.8em;margin:0 0 12px}
.legend i{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:4px}
.windows{background:#eef2fc;border-left:4px solid #3867d6;border-radius:6px;padding:8px 12px;
margin:0 0 16px}.windows ul{list-style:none;margin:0;padding:0}.window{padding:4px 0}
.notes{list-style:none;margin:6px 0 0;padding:0 0 0 12px;border-left:2px solid #dfe3ea}
.note{font-size:.9em;padding:2px 0}.note time{color:#5b6270;font-size:.85em;margin-right:6px}
"""

SCRIPT = """
(function(){var t=document.getElementById('age');if(!t)return;
var at=Date.parse(t.getAttribute('datetime'));if(isNaN(at))return;
function tick(){var s=Math.max(0,Math.round((Date.now()-at)/1000));
t.textContent=s<90?s+'s ago':Math.round(s/60)+'m ago';}tick();setInterval(tick,1000);})();
"""


_BAR_CLASS = {Status.PASS: "p", Status.WARN: "w", Status.FAIL: "f", None: "n"}
MAINTENANCE_COLOUR = "#3867d6"
_LEGEND = (
    '<div class="legend" aria-label="legend">'
    + "".join(
        f'<span><i style="background:{colour}"></i>{word}</span>'
        for colour, word in (
            (GREEN, "pass"),
            (AMBER, "warn"),
            (RED, "fail"),
            (MAINTENANCE_COLOUR, "maintenance"),
            (GREY, "no data"),
        )
    )
    + "</div>"
)
_BAR_X = [str(i * (BAR_W + BAR_GAP)) for i in range(400)]


@functools.lru_cache(maxsize=512)
def _day_word(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day))


def _bar(index: int, day: int, r: Rollup, maintenance: bool = False) -> str:
    if r.runs:
        tip = (
            f"{_day_word(day)}: {percent(uptime(r))} up, {r.runs:,} runs "
            f"({r.passed:,} pass, {r.warned:,} warn, {r.failed:,} fail)"
        )
    else:
        tip = f"{_day_word(day)}: no data"
    kind = _BAR_CLASS[r.worst]
    if maintenance:
        tip += "; planned maintenance"
        # A failure outside the window still shows: the colour is the worst that counted.
        kind = "m" if r.worst in (Status.PASS, None) else kind
    return (
        f'<rect class="bar {kind}" x="{_BAR_X[index]}" width="{BAR_W}" '
        f'height="{BAR_H}"><title>{tip}</title></rect>'
    )


class _Parts:
    """Markup of past days and hours, kept while the writer's generation holds: only
    today's bar and the uptime figures change from one second to the next."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int, int, frozenset[int]], str] = {}

    def get(self, kind: str, summary: CheckSummary, moment: int, make: Callable[[], str]) -> str:
        key = (kind, summary.name, moment, summary.generation, summary.maintenance_days)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 8192:  # checks renamed or removed: start over
                self._cache.clear()
            found = self._cache[key] = make()
        return found


def _past_bars(summary: CheckSummary, days: list[tuple[int, Rollup]]) -> str:
    planned = summary.maintenance_days
    return "".join(_bar(i, d, r, d in planned) for i, (d, r) in enumerate(days[:-1]))


def _bars(summary: CheckSummary, days: list[tuple[int, Rollup]], parts: _Parts) -> str:
    width = len(days) * (BAR_W + BAR_GAP) - BAR_GAP
    today, rollup = days[-1]
    past = parts.get("bars", summary, today, lambda: _past_bars(summary, days))
    return (
        f'<svg class="bars" viewBox="0 0 {width} {BAR_H}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(summary.name)}: last {len(days)} days">'
        f"{past}{_bar(len(days) - 1, today, rollup, today in summary.maintenance_days)}"
        "</svg>"
    )


def _polylines(points: list[tuple[int, float | None]], scale: float, colour: str) -> str:
    """One polyline per run of hours with data: gaps stay gaps, not straight lines."""
    step = CHART_W / max(1, len(points) - 1)
    runs: list[list[str]] = [[]]
    for index, (_, value) in enumerate(points):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        # Whole pixels: the chart is 840 wide, and formatting floats is the page's cost.
        runs[-1].append(f"{round(index * step)},{round(CHART_H - min(CHART_H, value * scale))}")
    drawn = []
    for run in runs:
        if len(run) == 1:  # an hour with no neighbours: a line of one point is invisible
            x, y = run[0].split(",")
            drawn.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
        elif run:
            drawn.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                f'points="{" ".join(run)}"/>'
            )
    return "".join(drawn)


def _chart(summary: CheckSummary) -> str:
    p50 = [(h, r.p50_us / 1000 if r.runs else None) for h, r in summary.chart]
    p95 = [(h, r.p95_us / 1000 if r.runs else None) for h, r in summary.chart]
    peak = max((v for _, v in p95 if v is not None), default=0.0)
    if peak <= 0:
        return '<p class="none">no response times in the last 7 days</p>'
    scale = (CHART_H - 8) / peak
    return (
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
        f'aria-label="{escape(summary.name)} response time, last 7 days, p50 and p95 per hour">'
        f"<title>response time per hour, last 7 days: p95 up to {peak:,.1f} ms</title>"
        f'<line x1="0" y1="{CHART_H}" x2="{CHART_W}" y2="{CHART_H}" stroke="#ccd0d6"/>'
        f"{_polylines(p95, scale, '#e8833a')}{_polylines(p50, scale, '#3867d6')}"
        f'<text x="4" y="12" font-size="11" fill="#5b6270">{peak:,.1f} ms</text></svg>'
        '<div class="axis"><span>7 days ago</span>'
        '<span><span style="color:#3867d6">p50</span> · '
        '<span style="color:#e8833a">p95</span></span><span>now</span></div>'
    )


def _check(summary: CheckSummary, parts: _Parts) -> str:
    # `days` and `chart` are lists made on each read (90 and 168 long): read once, or
    # not at all where their last element is all that is needed.
    days = summary.days
    state = summary.status
    uptimes = "".join(f"<span>{w} <b>{percent(summary.uptime[w])}</b></span>" for w in WINDOWS)
    output = f'<p class="output">{escape(summary.output)}</p>' if summary.output else ""
    return (
        f'<section class="check" data-check="{escape(summary.name)}" '
        f'data-status="{_STATE_WORD[state]}"><div class="row"><div>'
        f'<span class="name">{escape(summary.name)}</span>'
        f'<span class="state" style="background:{_STATE_COLOUR[state]}">'
        f"{_STATE_WORD[state]}</span></div>"
        f'<div class="uptime">{uptimes}</div></div>{output}{_bars(summary, days, parts)}'
        f'<div class="axis"><span>{len(days)} days ago</span><span>today</span></div>'
        "<details open><summary>response time, 7 days</summary>"
        f"{parts.get('chart', summary, summary.chart_hours[-1], lambda: _chart(summary))}</details>"
        "</section>"
    )


def _window(window: Window, now: float) -> str:
    covered = ", ".join(window.checks) or "every check"
    if window.active(now):
        when = f"now, until {readable_utc(window.end)}"
    else:
        when = f"{readable_utc(window.start)} to {readable_utc(window.end)}"
    reason = escape(window.reason) if window.reason else "Planned maintenance"
    return (
        f'<li class="window" data-id="{escape(window.id)}" '
        f'data-active="{"true" if window.active(now) else "false"}"><b>{reason}</b>'
        f'<div class="meta">{escape(covered)}: {when}</div></li>'
    )


def _windows(snap: Snapshot) -> str:
    planned = snap.planned()
    if not planned:
        return ""
    items = "".join(_window(w, snap.now) for w in planned[:20])
    return f'<section class="windows"><h2>Planned maintenance</h2><ul>{items}</ul></section>'


def _notes(notes: list[Note]) -> str:
    if not notes:
        return ""
    items = "".join(
        f'<li class="note"><time datetime="{rfc3339_seconds(n.at)}">{readable_utc(n.at)}</time>'
        f"{escape(n.text)}</li>"
        for n in notes
    )
    return f'<ul class="notes">{items}</ul>'


def _incident(incident: Incident, now: float, notes: list[Note] | None = None) -> str:
    subject = incident.check + (f"/{incident.component}" if incident.component else "")
    if incident.measure:
        subject += f" {incident.measure}"
    lasted = format_duration(incident.duration(now))
    when = (
        f"lasted {lasted}, ended {readable_utc(incident.end)}"
        if incident.end is not None
        else f"ongoing for {lasted}"
    )
    return (
        f'<li class="incident" data-check="{escape(incident.check)}" '
        f'data-open="{"false" if incident.end is not None else "true"}">'
        f'<span class="sev {escape(incident.severity)}">{escape(incident.severity)}</span> '
        f"<b>{escape(subject)}</b>: {escape(incident.summary)}"
        f'<div class="meta">started {readable_utc(incident.start)}; {when}</div>'
        f"{_notes(notes or [])}</li>"
    )


def render_page(snap: Snapshot, limit: int = 20, parts: _Parts | None = None) -> str:
    return "".join(page_pieces(snap, limit, parts))


def page_pieces(snap: Snapshot, limit: int = 20, parts: _Parts | None = None) -> Iterator[str]:
    """The page a check at a time (its head, each check's section, its tail)."""
    parts = parts if parts is not None else _Parts()
    words, colour = _OVERALL[snap.overall]
    history = "" if snap.history == "on" else f" · history: {escape(snap.history)}"
    incidents = "".join(
        _incident(i, snap.now, snap.notes.get(i.id)) for i in snap.incidents[:limit]
    )
    yield (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<link rel="icon" href="data:,">'  # no /favicon.ico request, no 404 in the console
        '<link rel="alternate" type="application/atom+xml" href="/status/feed.atom" '
        f'title="{escape(snap.agent)} incidents and maintenance">'
        f"<title>{escape(snap.agent)} status</title><style>{CSS}</style></head><body><main>"
        f"<header><h1>{escape(snap.agent)}</h1>"
        f'<span class="meta">updated <time id="age" datetime="{rfc3339_seconds(snap.now)}">'
        f"{readable_utc(snap.now)}</time>{history}</span></header>"
        f'<div class="overall" style="background:{colour}">{words}</div>' + _windows(snap) + _LEGEND
    )
    for check in snap.checks:
        yield _check(check, parts)
    yield (
        '<h2>Recent incidents</h2><div class="incidents">'
        + (f"<ul>{incidents}</ul>" if incidents else '<p class="none">No incidents.</p>')
        + f"</div></main><script>{SCRIPT}</script></body></html>"
    )


# ---------------------------------------------------------------- serving

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A page nobody reads costs nothing; one that is read is rebuilt at most this often. The
# page reloads itself every REFRESH_SECONDS, so fresher than that would not be seen.
MIN_REBUILD_INTERVAL = 2.0
# A rebuild for a request hands the loop back after this long: at 3,000 checks a rebuild
# is half a second of work (and the page 26 MB), which held /live and every check.
SLICE_SECONDS = 0.001


class _Slices:
    """Hands the loop back once a slice has run SLICE_SECONDS."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self.started > SLICE_SECONDS

    async def pause(self) -> None:
        await asyncio.sleep(0)
        self.started = time.perf_counter()

    async def step(self) -> None:
        if self.due():
            await self.pause()


class StatusSite:
    """The cached bodies, and the handlers that serve them.

    History changes only mark the bodies stale (`mark_stale`); the first request after
    that rebuilds them from memory, at most once per MIN_REBUILD_INTERVAL. A rebuild
    costs checks x days of arithmetic, so rebuilding on every history batch, read or
    not, cost an agent of 100 checks a third of a core.
    """

    def __init__(self, view: HistoryView, settings: LiveSettings) -> None:
        self.view = view
        self.settings = settings
        self.page: list[bytes] = []  # in pieces: joined, tens of MB were copied on the loop
        self.feed_body = b""
        self._parts = _Parts()
        self.status_badges: dict[str, bytes] = {}
        self.uptime_badges: dict[tuple[str, str], bytes] = {}
        self._stale = True
        self._built_at = -MIN_REBUILD_INTERVAL
        self._refreshing: asyncio.Future[None] | None = None

    def mark_stale(self) -> None:
        self._stale = True

    def _due(self) -> bool:
        now = time.monotonic()
        return self._stale and (not self.page or now - self._built_at >= MIN_REBUILD_INTERVAL)

    def ensure_fresh(self) -> None:
        if self._due():
            self.refresh()

    async def fresh(self) -> None:
        """`ensure_fresh` for requests: the rebuild runs in slices, shared by concurrent
        requests, and they wait for it."""
        if self._refreshing is None:
            if not self._due():
                return
            self._refreshing = asyncio.ensure_future(self.refresh_in_slices())
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)

    def _refreshed(self, done: asyncio.Future[None]) -> None:
        if self._refreshing is done:
            self._refreshing = None
        if done.cancelled() or done.exception() is not None:
            self._stale = True  # the next request tries again

    def refresh(self) -> None:
        self._stale = False
        self._built_at = time.monotonic()
        self.view.rebuild()
        snap = self.view.snapshot
        self.page = [render_page(snap, parts=self._parts).encode()]
        self._install(snap, *self._badges(snap.checks))

    async def refresh_in_slices(self) -> None:
        """`refresh`, handing the loop back every SLICE_SECONDS."""
        self._stale = False
        self._built_at = time.monotonic()
        slices = _Slices()
        for _ in self.view.rebuilding():
            await slices.step()
        await slices.pause()  # the view's JSON bodies were the last slice
        snap = self.view.snapshot
        page: list[bytes] = []
        pending: list[str] = []
        for piece in page_pieces(snap, parts=self._parts):
            pending.append(piece)
            if slices.due():
                page.append("".join(pending).encode())
                pending.clear()
                await slices.pause()
        page.append("".join(pending).encode())
        status: dict[str, bytes] = {}
        uptime: dict[tuple[str, str], bytes] = {}
        for check in snap.checks:
            made = self._badges([check])
            status.update(made[0])
            uptime.update(made[1])
            await slices.step()
        self.page = page
        self._install(snap, status, uptime)

    @staticmethod
    def _badges(
        checks: list[CheckSummary],
    ) -> tuple[dict[str, bytes], dict[tuple[str, str], bytes]]:
        status = {c.name: status_badge(c.name, c.status) for c in checks}
        uptime = {
            (c.name, w): uptime_badge(c.name, w, c.uptime[w]) for c in checks for w in WINDOWS
        }
        return status, uptime

    def _install(
        self,
        snap: Snapshot,
        status: dict[str, bytes],
        uptime: dict[tuple[str, str], bytes],
    ) -> None:
        notes = [n for group in snap.notes.values() for n in group]
        self.feed_body = atom_feed(
            snap.agent, "/status/feed.atom", snap.now, snap.incidents, notes, snap.windows
        )
        self.status_badges = status
        self.uptime_badges = uptime

    # ------------------------------------------------------------ access

    def _denied(self, request: web.Request) -> web.Response | None:
        settings = self.settings.current  # read each time: a reload may have turned it off
        if settings.status_page == "off":
            return responses.not_found(request)
        if settings.status_page == "token" and not authorized(
            request, settings.auth_token, query=True
        ):
            return responses.unauthorized()
        return None

    def guarded(self, handler: Handler) -> Handler:
        """`handler` behind the page's switch and token, on fresh bodies."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            denied = self._denied(request)
            if denied is not None:
                return denied
            await self.fresh()
            return await handler(request)

        return guarded

    # ------------------------------------------------------------ handlers

    async def status(self, request: web.Request) -> web.StreamResponse:
        if len(self.page) == 1:
            return responses.html(self.page[0])
        # A piece at a time: one body of tens of megabytes is a copy on the loop.
        response = web.StreamResponse(headers=responses.NO_STORE)
        response.content_type = "text/html"
        response.charset = "utf-8"
        response.content_length = sum(map(len, self.page))
        await response.prepare(request)
        if request.method != "HEAD":
            for piece in self.page:
                await response.write(piece)
        await response.write_eof()
        return response

    async def feed(self, request: web.Request) -> web.Response:
        return responses.body(self.feed_body, content_type=ATOM)

    async def uptime(self, request: web.Request) -> web.Response:
        return responses.body(self.view.uptime_body)

    async def incidents(self, request: web.Request) -> web.Response:
        return responses.body(self.view.incidents_body)

    async def check_history(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not self.view.has_check(name):
            return responses.no_such_check(name)
        window = request.query.get("window", "7d")
        if window not in HISTORY_WINDOWS:
            allowed = ", ".join(HISTORY_WINDOWS)
            return responses.error(400, f"window must be one of {allowed}, got {window!r}")
        return responses.body(self.view.history_body(name, window))

    async def badge_status(self, request: web.Request) -> web.Response:
        found = self.status_badges.get(request.match_info["check"])
        if found is None:
            return responses.no_such_check(request.match_info["check"])
        return responses.body(found, content_type=SVG)

    async def badge_uptime(self, request: web.Request) -> web.Response:
        check, window = request.match_info["check"], request.match_info["window"]
        if window not in WINDOWS:
            return responses.error(
                404, f"window must be one of {', '.join(WINDOWS)}, got {window!r}"
            )
        found = self.uptime_badges.get((check, window))
        if found is None:
            return responses.no_such_check(check)
        return responses.body(found, content_type=SVG)
