"""The alert state machine, driven by sequences of results and a hand-moved clock."""

from __future__ import annotations

import pytest

from probe.contract.notification import Alert, Kind, Severity, alert_line
from probe.contract.plugin import Check, CheckConfig, CheckFailed, Report
from probe.core.model import CheckResult, Status, Unit
from probe.engine.alerts.engine import AlertEngine, Grouper, Phase, verdicts
from probe.engine.runner import CheckRunner
from tests.alert_helpers import (
    HEALTHY,
    REFUSED,
    T0,
    GroupConfig,
    backlog,
    engine_for,
    feed,
    make_config,
    no_workers,
    obs,
    result,
)

# ---------------------------------------------------------------- tests


def test_a_flap_shorter_than_for_sends_nothing() -> None:
    engine = engine_for()
    # 4m45s of backlog over the limit (20 results, 15s apart), then healthy.
    due = feed(engine, "queues", [backlog(1240)] * 20 + [backlog(10)], T0)
    assert due == []
    assert engine.states == {}


def test_warning_fires_once_non_pass_lasted_for() -> None:
    engine = engine_for()
    due = feed(engine, "queues", [backlog(1240)] * 30, T0)
    assert len(due) == 1
    at, alert = due[0]
    assert at == T0 + 300
    assert (alert.kind, alert.severity, alert.key) == (
        Kind.FIRING,
        Severity.WARNING,
        "queues/ai-assistant",
    )
    assert alert.summary == "ai-assistant backlog 1,240 > 1,000"
    assert alert.since == T0
    assert engine.firing_counts() == {"warning": 1, "critical": 0}


def test_critical_fires_after_the_fail_for() -> None:
    engine = engine_for()
    due = feed(engine, "queues", [no_workers()] * 6, T0)
    assert [(t - T0, a.severity, a.summary) for t, a in due] == [
        (60, Severity.CRITICAL, "ai-assistant workers 0 < 1")
    ]


def test_resolves_after_resolve_after_consecutive_passes() -> None:
    engine = engine_for(resolve_after=3)
    feed(engine, "queues", [no_workers()] * 5, T0)  # fires at T0+60
    # A pass, a fail (resets the count), then three passes.
    sequence = [backlog(5), no_workers(), backlog(5), backlog(5), backlog(5)]
    due = feed(engine, "queues", sequence, T0 + 75)
    assert len(due) == 1
    at, alert = due[0]
    assert at == T0 + 75 + 4 * 15
    assert alert.kind is Kind.RESOLVED and alert.severity is Severity.CRITICAL
    assert alert.lasted == at - T0
    assert "lasted 2m15s" in alert_line(alert)
    assert engine.firing_counts() == {"warning": 0, "critical": 0}


def test_connection_refused_is_an_alert_on_the_whole_check() -> None:
    engine = engine_for()
    due = feed(engine, "database", [REFUSED] * 5, T0)
    assert [(a.key, a.severity, a.summary) for _, a in due] == [
        ("database", Severity.CRITICAL, "connection refused (127.0.0.1:5432)")
    ]
    due = feed(engine, "database", [HEALTHY, HEALTHY], T0 + 75)
    assert [a.kind for _, a in due] == [Kind.RESOLVED]


def test_a_failed_run_leaves_component_alerts_as_they_were() -> None:
    """Redis down: the queue check cannot see its queues; their alerts neither fire nor resolve."""
    engine = engine_for()
    feed(engine, "queues", [no_workers()] * 5, T0)
    feed(engine, "queues", [REFUSED] * 3, T0 + 75)
    assert engine.states[("queues", "ai-assistant", "workers")].phase is Phase.FIRING
    assert engine.states[("queues", "", "up")].phase is Phase.PENDING


def test_reminder_every_repeat_and_never_with_zero() -> None:
    engine = engine_for()
    feed(engine, "database", [REFUSED] * 5, T0)  # fires at T0+60
    assert engine.tick(T0 + 60 + 4 * 3600 - 1) == []
    reminders = engine.tick(T0 + 60 + 4 * 3600)
    assert [(a.kind, a.key) for a in reminders] == [(Kind.REMINDER, "database")]
    assert "still firing after 4h1m" in alert_line(reminders[0])
    assert engine.tick(T0 + 60 + 4 * 3600 + 60) == []

    quiet = engine_for(repeat=0)
    feed(quiet, "database", [REFUSED] * 5, T0)
    assert quiet.tick(T0 + 30 * 86400) == []


def test_warning_to_critical_escalation_is_notified_at_once() -> None:
    engine = engine_for()
    due = feed(engine, "queues", [backlog(1240)] * 21, T0)  # warning fires at T0+300
    assert [a.kind for _, a in due] == [Kind.FIRING]
    # The same cause getting worse (alerts are per measure: a new measure is a new alert).
    huge = result(Status.FAIL, obs("ai-assistant", "backlog", 9000, Status.FAIL, "> 5,000"))
    due = feed(engine, "queues", [huge] * 5, T0 + 315)
    assert [(t - T0, a.kind, a.severity, a.previous_severity) for t, a in due] == [
        (375, Kind.ESCALATED, Severity.CRITICAL, Severity.WARNING)
    ]
    # Back to a mere warning: no notification, and it stays critical until resolved.
    assert feed(engine, "queues", [backlog(1240)] * 4, T0 + 390) == []
    assert engine.firing_counts() == {"warning": 0, "critical": 1}


def test_overrides_per_check_and_disabled_alerts() -> None:
    engine = engine_for(
        overrides={"queues": {"for": {"warn": "10m"}}, "system": {"enabled": False}}
    )
    slow = feed(engine, "queues", [backlog(1240)] * 45, T0)
    assert [t - T0 for t, _ in slow] == [600]
    usual = feed(
        engine,
        "redis",
        [result(Status.WARN, obs("", "memory", 0.9, Status.WARN, "> 80%", Unit.RATIO))] * 30,
        T0,
    )
    assert [t - T0 for t, _ in usual] == [300]
    assert feed(engine, "system", [no_workers("memory")] * 100, T0) == []


def test_silence_mutes_firing_and_notifies_when_it_ends_if_still_firing() -> None:
    engine = engine_for(
        silences=[
            {"checks": ["database"], "start": "2025-12-01T10:00:00Z", "end": "2025-12-01T10:30:00Z"}
        ]
    )
    assert feed(engine, "database", [REFUSED] * 20, T0) == []
    assert engine.firing_counts()["critical"] == 1
    assert engine.tick(T0 + 1799) == []
    after = engine.tick(T0 + 1800)
    assert [(a.kind, a.key) for a in after] == [(Kind.FIRING, "database")]


def test_an_alert_that_fired_and_resolved_inside_a_silence_sends_nothing() -> None:
    engine = engine_for(
        silences=[
            {"checks": ["database"], "start": "2025-12-01T10:00:00Z", "end": "2025-12-01T11:00:00Z"}
        ]
    )
    assert feed(engine, "database", [REFUSED] * 10 + [HEALTHY] * 2, T0) == []
    assert engine.states == {}
    assert engine.tick(T0 + 3600) == []


def test_group_members_have_their_own_keys_and_inherit_group_silences() -> None:
    members = [CheckConfig(name=n, type="http") for n in ("paystack", "openai")]
    group = GroupConfig(name="external_services", type="group", checks=members)
    config = make_config(
        alerts={
            "for": {"fail": "0s"},
            "silences": [
                {
                    "checks": ["external_services"],
                    "start": "2025-12-01T10:00:00Z",
                    "end": "2025-12-01T10:05:00Z",
                }
            ],
        },
        checks=[group],
    )
    engine = AlertEngine(
        config.alerts, {"paystack": "external_services", "openai": "external_services"}
    )
    grouped = CheckResult(
        Status.FAIL,
        0.2,
        "paystack: HTTP 503",
        T0,
        (obs("", "response_time", 0.2, unit=Unit.SECONDS),),
        members=(("paystack", result(Status.FAIL, output="HTTP 503")), ("openai", HEALTHY)),
    )
    assert engine.observe("external_services", grouped, T0) == []  # silenced
    assert set(engine.states) == {("paystack", "", "up")}
    later = engine.observe("external_services", grouped, T0 + 300)
    assert [(a.key, a.summary) for a in later] == [("paystack", "HTTP 503")]


def test_verdicts_are_per_component_and_measure() -> None:
    found = verdicts(
        result(
            Status.FAIL,
            obs("", "response_time", 0.01, unit=Unit.SECONDS),
            obs("billing", "backlog", 10),
            obs("email", "backlog", 1500, Status.WARN, "> 1,000"),
            obs("email", "workers", 0, Status.FAIL, "< 1"),
        )
    )
    assert {k: (v.status, v.summary) for k, v in found.items()} == {
        ("", "response_time"): (Status.PASS, ""),
        ("billing", "backlog"): (Status.PASS, ""),
        ("email", "backlog"): (Status.WARN, "email backlog 1,500 > 1,000"),
        ("email", "workers"): (Status.FAIL, "email workers 0 < 1"),
    }


def test_grouper_batches_alerts_due_within_group_wait() -> None:
    grouper = Grouper(group_wait=10)
    first = Alert("redis", "", Severity.CRITICAL, Kind.FIRING, "connection refused", T0, T0)
    second = Alert("queues", "email", Severity.CRITICAL, Kind.FIRING, "", T0, T0 + 4)
    grouper.add([first], T0)
    grouper.add([second], T0 + 4)
    assert grouper.due(T0 + 9.9) == []
    assert grouper.due(T0 + 10) == [first, second]
    assert grouper.due(T0 + 30) == []


class _Flaky(Check[CheckConfig]):
    """Fails every other run, like an API dropping half its requests."""

    config_model = CheckConfig
    runs = 0

    async def run(self) -> Report:
        self.runs += 1
        if self.runs % 2:
            raise CheckFailed("HTTP 502")
        return Report()


@pytest.mark.parametrize("with_error_rate", [True, False])
async def test_error_rate_turns_intermittent_failures_into_one_alert(with_error_rate: bool) -> None:
    """Failing every other run flaps (never fires) unless `error_rate` is a threshold."""
    now = [T0]
    limits = (
        {"warn": {"error_rate": "20%"}, "fail": {"error_rate": "90%"}} if with_error_rate else {}
    )
    config = CheckConfig.model_validate({"name": "app", "type": "http", **limits})
    runner = CheckRunner(_Flaky(config), clock=lambda: now[0])
    engine = engine_for(**{"for": {"warn": "2m", "fail": "1m"}})
    due: list[Alert] = []
    for _ in range(20):
        due += engine.observe("app", await runner.run(), now[0])
        now[0] += 15
    if not with_error_rate:
        assert due == []
        return
    assert [(a.key, a.severity, a.kind) for a in due] == [("app", Severity.WARNING, Kind.FIRING)]
    assert "error_rate 5" in due[0].summary and "> 20%" in due[0].summary


# ---------------------------------------------------------------- flap windows


def test_flap_needs_n_of_the_last_m_runs_before_pending() -> None:
    engine = engine_for(**{"for": {"fail": "0s"}, "flap": {"fail": 3, "of": 5}})
    two_of_five = [REFUSED, HEALTHY, REFUSED, HEALTHY, HEALTHY, HEALTHY, HEALTHY]
    assert feed(engine, "database", two_of_five, T0) == []
    assert engine.states == {}
    due = feed(engine, "database", [REFUSED, HEALTHY, REFUSED, HEALTHY, REFUSED], T0 + 105)
    assert [(t - T0 - 105, a.kind, a.measure) for t, a in due] == [(60, Kind.FIRING, "up")]


def test_intermittent_failures_stay_pending_across_passes_and_fire_after_for() -> None:
    """Failing every other run: a flap without `flap`; with 3 of 5 it is one alert."""
    engine = engine_for(**{"for": {"fail": "1m"}, "flap": {"fail": 3, "of": 5}})
    due = feed(engine, "database", [REFUSED, HEALTHY] * 10, T0)
    # Pending at the 3rd failure (T0+60), fires at the first failed run a minute later.
    assert [(t - T0, a.kind) for t, a in due] == [(120, Kind.FIRING)]
    # It resolves only after `resolve_after` consecutive passes, not between failures.
    resolved = feed(engine, "database", [HEALTHY] * 2, T0 + 300)
    assert [a.kind for _, a in resolved] == [Kind.RESOLVED]


def test_flap_windows_are_per_key_and_may_be_overridden_per_check() -> None:
    engine = engine_for(
        **{"for": {"fail": "0s"}, "overrides": {"database": {"flap": {"fail": 2, "of": 3}}}}
    )
    assert [a.check for _, a in feed(engine, "redis", [REFUSED], T0)] == ["redis"]  # 1 of 1
    assert feed(engine, "database", [REFUSED, HEALTHY], T0) == []
    assert [a.check for _, a in feed(engine, "database", [REFUSED], T0 + 30)] == ["database"]


def test_flap_fail_cannot_exceed_of() -> None:
    with pytest.raises(ValueError, match=r"fail \(4\) cannot be more than of \(3\)"):
        engine_for(flap={"fail": 4, "of": 3})
