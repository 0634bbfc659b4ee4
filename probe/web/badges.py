"""Small SVG badges in the shields.io layout: `label | value`, the value coloured."""

from __future__ import annotations

from html import escape

from probe.core.model import Status

GREEN, AMBER, RED, GREY = "#2e9e44", "#d69e00", "#d23f31", "#8a8f98"
_CHAR_WIDTH = 7  # px per character at 11px Verdana, near enough without font metrics
_PAD = 10

STATUS_WORDS: dict[Status | None, tuple[str, str]] = {
    Status.PASS: ("passing", GREEN),
    Status.WARN: ("degraded", AMBER),
    Status.FAIL: ("failing", RED),
    None: ("no data", GREY),
}


def badge(label: str, value: str, colour: str) -> bytes:
    left = len(label) * _CHAR_WIDTH + _PAD
    right = len(value) * _CHAR_WIDTH + _PAD
    total = left + right
    label_text, value_text = escape(label), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{label_text}: {value_text}"><title>{label_text}: {value_text}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{left / 2:g}" y="14">{label_text}</text>'
        f'<text x="{left + right / 2:g}" y="14">{value_text}</text></g></svg>'
    ).encode()


def status_badge(check: str, status: Status | None) -> bytes:
    word, colour = STATUS_WORDS[status]
    return badge(check, word, colour)


def uptime_colour(share: float | None) -> str:
    if share is None:
        return GREY
    if share >= 0.999:
        return GREEN
    return AMBER if share >= 0.99 else RED


def percent(share: float | None) -> str:
    """`99.95%`; never rounds a short outage up to `100%`."""
    if share is None:
        return "no data"
    if share >= 1.0:
        return "100%"
    value = int(share * 10000) / 100  # truncated: 99.999% reads 99.99%, not 100.00%
    return f"{value:.2f}%"


def uptime_badge(check: str, window: str, share: float | None) -> bytes:
    return badge(f"{check} {window}", percent(share), uptime_colour(share))
