"""Routing: `severities`, `checks` and `exclude_checks` on every notifier. One outage with
criticals and warnings over four notifiers: each receives exactly what its filters select.
Also: how `probe validate` shows the filters, the config errors, and canary secrets in
every notifier's config that never come out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe.contract.plugin import CheckConfig
from probe.core.model import Status
from probe.engine.alerts.alert_test import send_test
from probe.engine.alerts.delivery import Backoff
from probe.engine.alerts.service import AlertService
from tests.alert_helpers import T0, GroupConfig, backlog, make_config, obs, result
from tests.conftest import free_port
from tests.saas_standins import SaaS, notifier_for

FAST = Backoff(initial=0.05, maximum=0.2)
REFUSED = result(Status.FAIL, output="connection refused (127.0.0.1:5432)")


def _keys(saas: SaaS, service: str) -> list[str]:
    """The alert keys each service was told about, in its own format."""
    found: list[str] = []
    for body in saas.delivered(service):
        if service == "pagerduty":
            found.append(body["dedup_key"].split("/", 1)[1])
        elif service == "discord":
            found += [e["title"] for e in body["embeds"]]
        elif service in ("ntfy", "telegram"):
            text = body["message" if service == "ntfy" else "text"]
            found += [k for k in ("database", "redis", "queues/ai-assistant") if f"{k}" in text]
    return found


async def test_one_outage_over_four_notifiers_each_gets_what_its_filters_select(
    saas: SaaS,
) -> None:
    notifiers = [
        notifier_for("pagerduty", saas, severities=["critical"]),
        notifier_for("discord", saas, severities=["warning"]),
        notifier_for("ntfy", saas, checks=["queue*"]),
        notifier_for("telegram", saas, exclude_checks=["database"]),
    ]
    config = make_config(
        alerts={"for": {"fail": "1m", "warn": "1m"}, "group_wait": "5s", "notifiers": notifiers}
    )
    now = [T0]
    service = AlertService(config, clock=lambda: now[0], backoff=FAST, tick_interval=0.05)
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", REFUSED)
            service.observe("redis", REFUSED)
            service.observe("queues", backlog(1240))
            now[0] += 15
        now[0] += 10  # past group_wait: the tick sends the one grouped notification
        for name, count in (("pagerduty", 2), ("discord", 1), ("ntfy", 1), ("telegram", 1)):
            await saas.wait_for(name, count)
        await asyncio.sleep(0.2)  # anything wrongly routed would have arrived by now
    finally:
        await service.stop()
    assert saas.problems == []
    assert sorted(_keys(saas, "pagerduty")) == ["database//up", "redis//up"]
    assert _keys(saas, "discord") == ["WARNING queues/ai-assistant"]
    assert _keys(saas, "ntfy") == ["queues/ai-assistant"]
    assert _keys(saas, "telegram") == ["redis", "queues/ai-assistant"]
    assert saas.delivered("ntfy")[0]["priority"] == 4  # a warning only
    counts = service.notification_counts()
    assert [counts[(n, "sent")] for n in ("pagerduty", "discord", "ntfy", "telegram")] == [
        1,
        1,
        1,
        1,
    ]


async def test_a_filter_naming_a_group_covers_its_members(saas: SaaS) -> None:
    members: list[CheckConfig] = [CheckConfig(name="paystack", type="http")]
    checks: list[CheckConfig] = [
        CheckConfig(name="database", type="tcp"),
        GroupConfig(name="external", type="group", checks=members),
    ]
    notifiers = [
        notifier_for("ntfy", saas, checks=["external"]),
        notifier_for("discord", saas, exclude_checks=["external"]),
    ]
    config = make_config(
        alerts={"for": {"fail": "1m"}, "group_wait": "0s", "notifiers": notifiers},
        checks=checks,
    )
    now = [T0]
    service = AlertService(config, clock=lambda: now[0], backoff=FAST)
    await service.start()
    try:
        for _ in range(5):
            service.observe("external", result(Status.FAIL, output="HTTP 503"))
            now[0] += 15
        await saas.wait_for("ntfy", 1)
        for _ in range(5):
            service.observe("database", REFUSED)
            now[0] += 15
        await saas.wait_for("discord", 1)
        await asyncio.sleep(0.2)
    finally:
        await service.stop()
    assert [b["message"].split(":")[0] for b in saas.delivered("ntfy")] == ["CRITICAL external"]
    assert [e["title"] for b in saas.delivered("discord") for e in b["embeds"]] == [
        "CRITICAL database"
    ]


async def test_alert_test_goes_to_every_notifier_whatever_its_filters(saas: SaaS) -> None:
    notifier = notifier_for("ntfy", saas, severities=["critical"], checks=["database"])
    reports = await send_test(make_config(alerts={"notifiers": [notifier]}))
    assert [delivered for _, delivered, _ in reports] == [True]


# ---------------------------------------------------------------- validate and config errors


def probe_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


CHECKS_YAML = """checks:
  - {name: database, type: tcp, host: 127.0.0.1, port: 5432}
  - {name: queue-billing, type: tcp, host: 127.0.0.1, port: 6379}
  - {name: queue-email, type: tcp, host: 127.0.0.1, port: 6379}
"""


def test_validate_shows_each_notifiers_filters(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        CHECKS_YAML + "alerts:\n  notifiers:\n"
        "    - {type: pagerduty, routing_key: R0ut1ngKey0000000000000000000001,"
        " severities: [critical]}\n"
        "    - {type: ntfy, url: 'https://ntfy.sh/x-alerts', checks: ['queue-*'],"
        " exclude_checks: [queue-email]}\n"
        "    - {type: discord, webhook_url: 'https://discord.com/api/webhooks/1/abc'}\n"
    )
    done = probe_cli("validate", "-c", str(path))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("notifier:")]
    assert lines == [
        "notifier: pagerduty on (critical)",
        "notifier: ntfy on (checks: queue-*; exclude_checks: queue-email)",
        "notifier: discord on",
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ("checks: [databse]", "alerts.notifiers[0].checks: no check named 'databse'"),
        ("exclude_checks: ['cache*']", "alerts.notifiers[0].exclude_checks: no check matches"),
        (
            "severities: [info]",
            "alerts.notifiers[0].severities[0]: Input should be 'critical' or 'warning'",
        ),
        ("severities: []", "alerts.notifiers[0].severities:"),
        ("checks: ['Data Base']", "alerts.notifiers[0].checks: expected check names or globs"),
    ],
)
def test_a_filter_that_names_no_check_is_a_config_error(
    tmp_path: Path, filters: str, expected: str
) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        CHECKS_YAML + "alerts:\n  notifiers:\n"
        f"    - {{type: ntfy, url: 'https://ntfy.sh/secret-topic-x1', {filters}}}\n"
    )
    done = probe_cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert f"{path}: {expected}" in done.stderr, done.stderr
    assert "secret-topic-x1" not in done.stderr and "Traceback" not in done.stderr


def test_apprise_without_its_extra_is_a_config_error_naming_the_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "apprise"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = tmp_path / "probe.yaml"
    path.write_text(
        "checks: []\nalerts:\n  notifiers:\n"
        "    - {type: apprise, urls: ['tgram://123456:AAEcanary/42']}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    done = probe_cli("validate", "-c", str(path), env=env)
    assert done.returncode == 2
    assert (
        f"{path}: alerts.notifiers[0].urls: the apprise notifier needs the apprise package: "
        "pip install 'probe[apprise]'"
    ) in done.stderr
    assert "AAEcanary" not in done.stderr


@pytest.mark.parametrize(
    ("notifier", "expected"),
    [
        (
            "{type: pagerduty, routing_key: short-canary-key}",
            "routing_key: expected the 32-character integration key",
        ),
        (
            "{type: opsgenie, api_key: k-canary, region: asia}",
            "region: Input should be 'us' or 'eu'",
        ),
        ("{type: telegram, bot_token: canary/token, chat_id: 1}", "bot_token: expected a bot"),
        ("{type: telegram, bot_token: '1:canary'}", "chat_id: required key is missing"),
        ("{type: ntfy, url: 'https://ntfy.sh/'}", "url: expected the server and topic"),
        ("{type: pushover, token: canary, user: u, retry: 5s}", "retry:"),
        ("{type: apprise, urls: ['nosuch://canary@x']}", "urls: urls[0]: apprise cannot use"),
        ("{type: teams, webhook_url: 'ftp://canary'}", "webhook_url: expected the https://"),
    ],
)
def test_notifier_config_errors_name_the_key_and_never_echo_secrets(
    tmp_path: Path, notifier: str, expected: str
) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(f"checks: []\nalerts:\n  notifiers:\n    - {notifier}\n")
    done = probe_cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert f"{path}: alerts.notifiers[0].{expected}" in done.stderr, done.stderr
    assert "canary" not in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- canary secrets


CANARIES: dict[str, dict[str, Any]] = {
    "pagerduty": {"routing_key": "CanaryPagerDutyKey00000000000001"},
    "opsgenie": {"api_key": "canary-opsgenie-key-77"},
    "teams": {"webhook_url": "http://127.0.0.1:{port}/workflows/x?sig=canaryTeamsSig77"},
    "discord": {"webhook_url": "http://127.0.0.1:{port}/api/webhooks/1/canaryDiscordTok77"},
    "telegram": {"bot_token": "77:canaryTelegramToken77", "chat_id": 5},
    "email": {
        "host": "127.0.0.1",
        "port": "{port}",
        "from": "p@example.com",
        "to": ["o@example.com"],
        "username": "u",
        "password": "canarySmtpPassword77",
    },
    "ntfy": {"url": "http://127.0.0.1:{port}/canary-ntfy-topic77", "token": "tk_canaryntfy77"},
    "pushover": {"token": "canaryPushoverAppToken77", "user": "canaryPushoverUser77"},
    "apprise": {"urls": ["json://u:canaryApprisePass77@127.0.0.1:{port}/x"]},
}
SECRET_WORDS = [
    "CanaryPagerDutyKey",
    "canary-opsgenie-key",
    "canaryTeamsSig",
    "canaryDiscordTok",
    "canaryTelegramToken",
    "canarySmtpPassword",
    "canary-ntfy-topic",
    "tk_canaryntfy",
    "canaryPushover",
    "canaryApprisePass",
]


def _canary_notifiers(port: int) -> list[dict[str, Any]]:
    entries = []
    for name, fields in CANARIES.items():
        entry: dict[str, Any] = {"type": name, "timeout": "2s"}
        for key, value in fields.items():
            if isinstance(value, str):
                value = value.replace("{port}", str(port))
                value = int(value) if key == "port" else value
            elif isinstance(value, list):
                value = [v.replace("{port}", str(port)) for v in value]
            entry[key] = value
        if name in ("pagerduty", "opsgenie", "telegram", "pushover"):
            entry["url"] = {
                "pagerduty": f"http://127.0.0.1:{port}/v2/enqueue",
                "opsgenie": f"http://127.0.0.1:{port}",
                "telegram": f"http://127.0.0.1:{port}",
                "pushover": f"http://127.0.0.1:{port}/1/messages.json",
            }[name]
        entries.append(entry)
    return entries


def _assert_no_canary(*texts: str) -> None:
    for text in texts:
        found = [word for word in SECRET_WORDS if word in text]
        assert found == [], f"secrets leaked: {found}\n{text[:2000]}"


@pytest.mark.slow
@pytest.mark.timeout(90)  # two CLI runs; alert-test retries each of nine notifiers once
def test_canary_secrets_never_come_out_of_validate_or_alert_test(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: every notifier fails and says why
    path = tmp_path / "probe.yaml"
    config = {
        "agent": {"name": "canary-agent"},
        "checks": [{"name": "database", "type": "tcp", "host": "127.0.0.1", "port": 5432}],
        "alerts": {"notifiers": _canary_notifiers(port)},
    }
    path.write_text(yaml.safe_dump(config))
    validate = probe_cli("validate", "-c", str(path))
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.count("notifier:") == len(CANARIES)
    tested = probe_cli("alert-test", "-c", str(path))
    assert tested.returncode == 1
    assert tested.stdout.count("FAILED") == len(CANARIES), tested.stdout
    _assert_no_canary(validate.stdout, validate.stderr, tested.stdout, tested.stderr)


async def test_canary_secrets_never_reach_the_state_file_or_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    state = tmp_path / "state.json"
    config = make_config(
        alerts={"for": {"fail": "1m"}, "group_wait": "0s", "notifiers": _canary_notifiers(port)},
        agent={"state_file": str(state)},
    )
    now = [T0]
    service = AlertService(config, clock=lambda: now[0], backoff=FAST)
    caplog.set_level("DEBUG")
    await service.start()
    try:
        for _ in range(5):
            service.observe("database", REFUSED)
            now[0] += 15
        await asyncio.sleep(1.0)
    finally:
        await service.stop(flush_timeout=0.5)
    saved = state.read_text()
    assert '"outbox"' in saved and "connection refused" in saved
    _assert_no_canary(saved, caplog.text)
    assert "notification to telegram chat 5 failed" in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_canary_secrets_never_reach_endpoints_metrics_logs_state_or_history(
    tmp_path: Path,
) -> None:
    """`probe run` with every notifier failing: /health, /metrics, the JSON logs, the state
    file and the history database hold the failure words but no secret."""
    import aiohttp

    closed, listen = free_port(), free_port()
    state, history = tmp_path / "state.json", tmp_path / "history.db"
    path = tmp_path / "probe.yaml"
    config = {
        "agent": {
            "name": "canary-agent",
            "listen": f"127.0.0.1:{listen}",
            "state_file": str(state),
            "history": f"sqlite:///{history}",
        },
        "defaults": {"interval": "1s", "timeout": "500ms"},
        "checks": [{"name": "database", "type": "tcp", "host": "127.0.0.1", "port": closed}],
        "alerts": {
            "for": {"fail": "1s"},
            "group_wait": "0s",
            "notifiers": _canary_notifiers(closed),
        },
    }
    path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "probe", "run", "-c", str(path), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bodies: list[str] = []
    base = f"http://127.0.0.1:{listen}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def metrics() -> str:
                try:
                    async with session.get(f"{base}/metrics") as response:
                        return await response.text()
                except aiohttp.ClientError:
                    return ""

            async with asyncio.timeout(40):
                while 'notifier="telegram",result="failed"} 0.0' in (text := await metrics()) or (
                    'notifier="telegram"' not in text
                ):
                    await asyncio.sleep(0.3)
            bodies.append(text)
            for page in ("/health?verbose=1", "/status"):
                async with session.get(base + page) as response:
                    bodies.append(await response.text())
    finally:
        process.send_signal(15)
        _, err = process.communicate(timeout=20)
    assert 'probe_notifications_total{notifier="pagerduty",result="failed"}' in bodies[0]
    assert "connection refused" in err
    saved = [state.read_text(), history.read_bytes().decode(errors="replace")]
    _assert_no_canary(*bodies, err, *saved)


async def test_a_resolve_reaches_the_notifier_that_saw_the_alert_fire_before_it_escalated(
    saas: SaaS,
) -> None:
    notifiers = [
        notifier_for("discord", saas, severities=["warning"]),
        notifier_for("pagerduty", saas, severities=["critical"]),
    ]
    config = make_config(
        alerts={"for": {"fail": "1m", "warn": "1m"}, "group_wait": "0s", "notifiers": notifiers}
    )
    now = [T0]
    service = AlertService(config, clock=lambda: now[0], backoff=FAST)
    severe = result(Status.FAIL, obs("ai-assistant", "backlog", 5000, Status.FAIL, "> 4,000"))
    await service.start()
    try:
        for sample in [backlog(1240)] * 5 + [severe] * 6 + [backlog(10)] * 2:
            service.observe("queues", sample)
            now[0] += 15
        await saas.wait_for("discord", 2)
        await saas.wait_for("pagerduty", 2)
        await asyncio.sleep(0.2)
    finally:
        await service.stop()
    titles = [e["title"] for b in saas.delivered("discord") for e in b["embeds"]]
    assert titles == ["WARNING queues/ai-assistant", "RESOLVED queues/ai-assistant"]
    actions = [e["event_action"] for e in saas.delivered("pagerduty")]
    assert actions == ["trigger", "resolve"]
    assert saas.delivered("pagerduty")[0]["payload"]["severity"] == "critical"
