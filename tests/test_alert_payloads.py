"""The pure payload builders at the services' limits: a Redis outage of 60 queues, summaries
longer than any field allows, and text full of HTML. Every payload must pass the same
schema checks the stand-ins apply (tests/saas_standins.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from probe.contract.notification import Alert, Kind, Notification, Severity
from probe.notifiers import discord, ntfy, opsgenie, pagerduty, pushover, teams, telegram
from tests.saas_standins import (
    PUSHOVER_TOKEN,
    PUSHOVER_USER,
    ROUTING_KEY,
    check_discord,
    check_ntfy,
    check_opsgenie_create,
    check_pagerduty,
    check_pushover,
    check_teams,
    check_telegram,
)

T0 = 1_764_583_200.0
LONG = "<b>&" + "x" * 5000 + "</i>"


def outage(
    count: int, summary: str = "backlog 1,240 > 1,000", agent: str = "botflow-probe"
) -> Notification:
    alerts = tuple(
        Alert(
            "queues",
            f"queue-{i:03d}",
            Severity.CRITICAL if i % 2 else Severity.WARNING,
            Kind.FIRING,
            summary,
            T0,
            T0 + 60,
            T0 + 60,
            measure="backlog",
        )
        for i in range(count)
    )
    return Notification(agent, T0 + 60, alerts)


CASES = [outage(1), outage(60), outage(3, LONG), outage(2, agent="a" * 300)]
IDS = ["one", "sixty", "long-summary", "long-agent"]


@pytest.mark.parametrize("notification", CASES, ids=IDS)
def test_discord_stays_within_its_embed_limits(notification: Notification) -> None:
    payload = discord.build_payload(notification, "https://probe.example.com")
    check_discord(payload)
    if len(notification.alerts) == 60:
        assert len(payload["embeds"]) == 10
        assert payload["embeds"][-1]["title"] == "and 51 more"


@pytest.mark.parametrize("notification", CASES, ids=IDS)
def test_telegram_is_valid_html_within_4096_characters(notification: Notification) -> None:
    body = telegram.build_message(notification, 42, "https://probe.example.com/?a=1&b=<2>")
    check_telegram(body)
    assert len(body["text"]) <= telegram.MESSAGE_LIMIT


@pytest.mark.parametrize("notification", CASES, ids=IDS)
def test_teams_card_is_within_28_kb(notification: Notification) -> None:
    card = teams.build_card(notification, "https://probe.example.com")
    check_teams(card, len(json.dumps(card).encode()))


@pytest.mark.parametrize("notification", CASES, ids=IDS)
def test_pagerduty_events_are_valid_and_one_per_alert(notification: Notification) -> None:
    events = pagerduty.build_events(notification, ROUTING_KEY, "https://probe.example.com")
    assert len(events) == len(notification.alerts)
    for event in events:
        check_pagerduty(event)
    keys = [e["dedup_key"] for e in events]
    assert len(set(keys)) == len(keys)  # a long agent name still keeps keys apart


@pytest.mark.parametrize("notification", CASES, ids=IDS)
def test_opsgenie_creates_are_valid(notification: Notification) -> None:
    for path, body in opsgenie.build_requests(notification, "https://probe.example.com", ["x"]):
        assert path == "/v2/alerts"
        check_opsgenie_create(body)


@pytest.mark.parametrize("notification", CASES, ids=IDS)
def test_ntfy_and_pushover_fit_their_limits(notification: Notification) -> None:
    check_ntfy(ntfy.build_message(notification, "alerts", "https://probe.example.com"))
    body: dict[str, Any] = pushover.build_message(
        notification, PUSHOVER_TOKEN, PUSHOVER_USER, "https://probe.example.com", (60, 3600)
    )
    check_pushover(body)
    if any(a.severity is Severity.CRITICAL for a in notification.alerts):
        assert body["priority"] == 2 and (body["retry"], body["expire"]) == (60, 3600)
    else:
        assert body["priority"] == 0 and "retry" not in body
