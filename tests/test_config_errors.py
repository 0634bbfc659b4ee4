"""Every broken config gets one exact line naming the file and the key path, exit 2.

Like blackbox_exporter's testdata/invalid-*.yml: each case pairs a file with its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probe.cli.main import main
from probe.contract.plugins import CHECK_TYPES, NOTIFIER_TYPES, check_config_model
from tests.cli_helpers import run_cli

REDIS = 'type: redis, url: "redis://127.0.0.1:6379/0"'
# The lists of known names in the messages come from the registries and the models.
KNOWN_CHECK_TYPES = ", ".join(sorted(CHECK_TYPES))
KNOWN_NOTIFIERS = ", ".join(sorted(NOTIFIER_TYPES))
REDIS_MEASURES = ", ".join(sorted(check_config_model("redis").measures))

# (id, file text, the exact problem line after "<file>: ")
CASES: list[tuple[str, str, str]] = [
    (
        "yaml-syntax",
        "checks:\n  - name: a\n   type: redis\n",
        "line 3, column 4: expected <block end>, but found '<block mapping start>'",
    ),
    (
        "yaml-tab",
        "checks:\n\t- a\n",
        "line 2, column 1: found character '\\t' that cannot start any token",
    ),
    ("unknown-top-level-key", "checks: []\nagnet: {}\n", "agnet: unknown key"),
    (
        "unknown-check-key",
        f"checks:\n  - {{name: a, {REDIS}, tiemout: 1s}}\n",
        "checks[0].tiemout: unknown key",
    ),
    (
        "wrong-type",
        f"checks:\n  - {{name: a, {REDIS}, critical: maybe}}\n",
        "checks[0].critical: expected true or false, got 'maybe'",
    ),
    (
        "duplicate-check-names",
        f"checks:\n  - {{name: a, {REDIS}}}\n  - {{name: a, {REDIS}}}\n",
        "checks[1].name: duplicate check name 'a' (also checks[0])",
    ),
    (
        "duplicate-yaml-keys",
        "checks:\n  - name: a\n    type: redis\n    url: redis://h\n    url: redis://x\n",
        "line 5, column 5: duplicate key 'url'",
    ),
    (
        "timeout-not-below-interval",
        f"checks:\n  - {{name: a, {REDIS}, interval: 5s, timeout: 5s}}\n",
        "checks[0].timeout: timeout (5s) must be shorter than interval (5s)",
    ),
    (
        "unset-variable",
        "checks:\n  - {name: a, type: redis, url: '${PROBE_TEST_UNSET_URL}'}\n",
        "checks[0].url: environment variable PROBE_TEST_UNSET_URL is not set "
        "(set it, or give a default: ${PROBE_TEST_UNSET_URL:-value})",
    ),
    (
        "bad-name",
        f"checks:\n  - {{name: Redis, {REDIS}}}\n",
        "checks[0].name: must match [a-z0-9_-]+, got 'Redis'",
    ),
    (
        "unknown-check-type",
        "checks:\n  - {name: a, type: no-such-type}\n",
        f"checks[0].type: unknown check type 'no-such-type' (known: {KNOWN_CHECK_TYPES})",
    ),
    (
        "missing-check-type",
        "checks:\n  - {name: a}\n",
        f"checks[0].type: unknown check type missing (known: {KNOWN_CHECK_TYPES})",
    ),
    (
        "bad-duration",
        f"checks:\n  - {{name: a, {REDIS}, timeout: fast}}\n",
        "checks[0].timeout: expected a duration like 5s or 500ms, got 'fast'",
    ),
    (
        "negative-duration",
        f"checks:\n  - {{name: a, {REDIS}, timeout: -1s}}\n",
        "checks[0].timeout: expected a duration like 5s or 500ms, got '-1s'",
    ),
    (
        "bad-limit",
        f"checks:\n  - {{name: a, {REDIS}, warn: {{response_time: lots}}}}\n",
        "checks[0].warn: response_time: "
        "expected a limit like 1000, 500ms, 80%, <1 or off, got 'lots'",
    ),
    (
        "unknown-measure",
        f"checks:\n  - {{name: a, {REDIS}, warn: {{backlog: 5}}}}\n",
        f"checks[0].warn: unknown measure 'backlog' (known: {REDIS_MEASURES})",
    ),
    (
        "group-checks-not-a-list",
        "checks:\n  - {name: g, type: group, checks: {name: a}}\n",
        "checks[0].checks: expected a list of checks",
    ),
    (
        "group-member-invalid",
        "checks:\n  - {name: g, type: group, checks: [{name: a, type: tcp, host: h, port: x}]}\n",
        "checks[0].checks[0].port: expected a whole number, got 'x'",
    ),
    (
        "bad-listen",
        "agent: {listen: '8080'}\nchecks: []\n",
        "agent.listen: expected host:port like 0.0.0.0:8080, got '8080'",
    ),
    (
        "unknown-notifier-type",
        "alerts:\n  notifiers: [{type: no-such-notifier, to: x}]\n",
        f"alerts.notifiers[0]: unknown type 'no-such-notifier' (known: {KNOWN_NOTIFIERS})",
    ),
    (
        "slack-token-without-channel",
        "alerts:\n  notifiers: [{type: slack, token: xoxb-1}]\n",
        "alerts.notifiers[0]: token needs a channel",
    ),
    (
        "silence-ends-before-start",
        f"checks:\n  - {{name: a, {REDIS}}}\nalerts:\n  silences: [{{checks: [a], "
        "start: 2026-12-01T03:00:00Z, end: 2026-12-01T02:00:00Z}]\n",
        "alerts.silences[0]: end must be after start",
    ),
    (
        "override-for-unknown-check",
        f"checks:\n  - {{name: a, {REDIS}}}\nalerts:\n  overrides: {{b: {{for: {{warn: 1m}}}}}}\n",
        "alerts.overrides.b: no check named 'b'",
    ),
    ("list-at-top-level", "- a\n- b\n", "expected a map at the top level, got a list"),
    ("empty-file", "", "the file is empty; expected a map with a `checks:` list"),
    (
        "only-a-comment",
        "# nothing here\n",
        "the file is empty; expected a map with a `checks:` list",
    ),
    ("scalar-at-top-level", "hello\n", "expected a map at the top level, got a str"),
    (
        "checks-not-a-list",
        "checks: {name: a}\n",
        "checks: expected a list of checks, got {'name': 'a'}",
    ),
    (
        "check-not-a-map",
        "checks: [redis]\n",
        "checks[0]: expected a map of key: value, got 'redis'",
    ),
    (
        "missing-required-field",
        "checks:\n  - {name: a, type: redis}\n",
        "checks[0].url: required key is missing",
    ),
    (
        "name-not-text",
        f"checks:\n  - {{name: 5, {REDIS}}}\n",
        "checks[0].name: expected text, got 5 (quote it)",
    ),
    (
        "unknown-defaults-key",
        "defaults: {intervall: 5s}\nchecks: []\n",
        "defaults.intervall: unknown key",
    ),
    (
        "resolve-after-zero",
        "alerts: {resolve_after: 0}\n",
        "alerts.resolve_after: must be at least 1, got 0",
    ),
    (
        "interval-not-a-number",
        f"checks:\n  - {{name: a, {REDIS}, interval: .nan}}\n",
        "checks[0].interval: expected a duration like 5s or 500ms, got nan",
    ),
    (
        "interval-too-long",
        f"checks:\n  - {{name: a, {REDIS}, interval: 99999999999999d}}\n",
        "checks[0].interval: expected a duration like 5s or 500ms, at most 365d, "
        "got '99999999999999d'",
    ),
    (
        "limit-not-a-number",
        f"checks:\n  - {{name: a, {REDIS}, warn: {{response_time: .nan}}}}\n",
        "checks[0].warn: response_time: expected a limit like 1000, 500ms, 80%, <1 or off, got nan",
    ),
    (
        "live-timeout-below-heartbeats",
        "agent: {live_timeout: 0s}\n",
        "agent.live_timeout: must be at least 3s, got 0s",
    ),
    (
        "type-is-a-list",
        "checks:\n  - {name: a, type: [redis]}\n",
        f"checks[0].type: unknown check type ['redis'] (known: {KNOWN_CHECK_TYPES})",
    ),
    (
        "webhook-not-a-url",
        "alerts: {notifiers: [{type: slack, webhook_url: 'ftp://x'}]}\n",
        "alerts.notifiers[0].webhook_url: expected an https:// URL like "
        "https://hooks.slack.com/services/...",
    ),
    (
        "alertmanager-url-not-a-url",
        "alerts: {notifiers: [{type: alertmanager, urls: ['am:pw@nowhere']}]}\n",
        "alerts.notifiers[0].urls: expected URLs like http://alertmanager:9093, "
        "got 'am:***@nowhere'",
    ),
    (
        "notifier-without-type",
        "alerts: {notifiers: [{urls: ['http://am:9093']}]}\n",
        f"alerts.notifiers[0]: required key `type` is missing (known: {KNOWN_NOTIFIERS})",
    ),
    (
        "secret-of-the-wrong-type-is-not-echoed",
        "agent: {auth_token: 98765432100}\n",
        "agent.auth_token: expected text, got '***' (quote it)",
    ),
    (
        "header-with-a-line-break",
        "checks:\n  - {name: a, type: http, url: 'http://h/', "
        'headers: {Authorization: "Bearer t\\r\\nX: 1"}}\n',
        "checks[0].headers: header 'Authorization' must not contain line breaks or NUL",
    ),
    (
        "header-name-with-a-space",
        "checks:\n  - {name: a, type: http, url: 'http://h/', headers: {'X A': b}}\n",
        "checks[0].headers: header name 'X A' is not a valid HTTP field name",
    ),
    (
        "at-sign-in-dsn-password",
        "checks:\n  - {name: a, type: postgres, dsn: 'postgresql://app:pw@4@h/db'}\n",
        "checks[0].dsn: the user or password contains '@'; write it as %40",
    ),
    (
        "nested-group",
        "checks:\n  - name: g\n    type: group\n    checks:\n"
        "      - {name: h, type: group, checks: []}\n",
        "checks[0]: member 'h' is a group; groups do not nest",
    ),
    (
        "name-too-long",
        f"checks:\n  - {{name: {'a' * 65}, {REDIS}}}\n",
        "checks[0].name: must be at most 64 characters, got 65",
    ),
    (
        "resolve-after-too-large",
        "alerts: {resolve_after: 99999999}\n",
        "alerts.resolve_after: must be at most 1000, got 99999999",
    ),
    (
        "nul-character",
        "checks: []\x00\n",
        "character 11: unacceptable character #x0000: special characters are not allowed",
    ),
]


@pytest.mark.parametrize(("text", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_names_file_and_key(
    text: str, problem: str, write_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process `probe validate` (the same main() the console script calls): a child
    # process per case would cost seconds and prove nothing more.
    path = write_config(text)
    assert main(["validate", "-c", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [f"{path}: {problem}"]


def test_a_broken_file_in_a_real_process(write_config: Any) -> None:
    path = write_config("checks:\n  - {name: a, type: redis, url: redis://h, timeout: fast}\n")
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    expected = "checks[0].timeout: expected a duration like 5s or 500ms, got 'fast'"
    assert out.stderr == f"{path}: {expected}\n"


def test_every_problem_is_reported_in_one_pass(write_config: Any) -> None:
    text = (
        "agent: {listen: nowhere}\n"
        "alerts: {notifiers: [{type: alertmanager, urls: []}]}\n"
        "checks:\n"
        f"  - {{name: a, {REDIS}, timeout: fast}}\n"
        "  - {name: B, type: no-such-type}\n"
        f"  - {{name: c, {REDIS}, tiemout: 1s}}\n"
    )
    path = write_config(text)
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    assert [line.split(": ")[1] for line in out.stderr.splitlines()] == [
        "agent.listen",
        "alerts.notifiers[0].urls",
        "checks[0].timeout",
        "checks[1].type",
        "checks[2].tiemout",
    ]


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(b"\x00\x01\xff\xfe\x80 garbage")
    out = run_cli("validate", "-c", str(path))
    assert out.code == 2
    assert out.stderr == f"{path}: not a UTF-8 text file (byte 2)\n"


def test_yaml_merge_keys_may_be_overridden(write_config: Any) -> None:
    path = write_config(
        "x-redis: &redis {type: redis, url: 'redis://127.0.0.1:6379/0', timeout: 1s}\n"
        "checks:\n"
        "  - {<<: *redis, name: a, timeout: 2s}\n"
    )
    out = run_cli("validate", "-c", str(path))
    # x- keys are not probe's: the merge itself works, the unknown key is the one problem.
    assert out.stderr == f"{path}: x-redis: unknown key\n"


def test_a_file_larger_than_a_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# padding\n" * 200_000)
    out = run_cli("validate", "-c", str(path))
    assert (out.code, out.stderr) == (2, f"{path}: larger than 1 MiB; is this the config file?\n")
