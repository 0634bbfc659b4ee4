"""The argument parser of every command, with each command's help and exit codes.

Kept out of `probe.cli.main` so that `probe ping` (the image's HEALTHCHECK, every 30 s)
can skip it: argparse with its gettext and re costs more than the ping itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from probe import __version__
from probe.cli.ping import DEFAULT_TIMEOUT, parse_timeout

# Exit code for a usage or config error, per command (docs/cli.md).
ERROR_CODES = {
    "run": 2,
    "check": 3,
    "validate": 2,
    "ping": 1,
    "alert-test": 2,
    "history": 2,
    "maintenance": 2,
}
TOP_LEVEL_ERROR = 2

_CONFIG_HELP = (
    "config file (default: $PROBE_CONFIG, else ./config/probe.yaml, else the built-in default)"
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with the command's own code."""

    error_code = TOP_LEVEL_ERROR

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.error_code, f"{self.prog}: error: {message}\n")


def duration(text: str) -> float:
    from probe.core.units import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return seconds


def _ping_timeout(text: str) -> float:
    try:
        return parse_timeout(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _command(
    subparsers: argparse._SubParsersAction[_Parser], name: str, help_text: str, epilog: str
) -> _Parser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.error_code = ERROR_CODES[name]
    parser.set_defaults(command=name, command_parser=parser)
    return parser


def build_parser(only: str | None = None) -> _Parser:
    """Every command, each with its options, or only `only`'s: the others are still
    listed (for `probe --help` and "invalid choice") but never read, and argparse formats
    each option as it is added, which cost `probe check` a few milliseconds."""
    parser = _Parser(
        prog="probe",
        description="Health-probe sidecar: checks PostgreSQL, Redis, HTTP/TCP services, "
        "BullMQ queues and the container; serves /health, /ready, /live and /metrics; "
        "alerts to Slack and Alertmanager.",
        epilog="examples:\n"
        "  probe run -c config/probe.yaml\n"
        "  probe check --format nagios\n"
        "  probe validate -c staging.yaml\n"
        "  probe ping\n\n"
        "Run `probe COMMAND --help` for a command's options and exit codes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"probe {__version__}")
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_Parser
    )

    for name, (help_text, epilog, add_options) in _COMMANDS.items():
        command_parser = _command(subparsers, name, help_text, epilog)
        if only is None or only == name:
            add_options(command_parser)
    return parser


def _run_options(parser: _Parser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="json: one object per line on stderr (default); text: for people",
    )


def _check_options(parser: _Parser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument(
        "--format",
        choices=("text", "json", "nagios"),
        default="text",
        help="text: for people (default); json: the /health body; nagios: plugin output",
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help="run only this check (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        type=duration,
        help="bound on the whole run, e.g. 10s (each check is also bounded by its own timeout)",
    )


def _validate_options(parser: _Parser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print every check's effective limits and where each came from",
    )


def _ping_options(parser: _Parser) -> None:
    parser.add_argument("url", nargs="?", metavar="URL", help="default: http://127.0.0.1:8080/live")
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        type=_ping_timeout,
        default=DEFAULT_TIMEOUT,
        help="default: 3s",
    )


def _alert_test_options(parser: _Parser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)


def _history_options(parser: _Parser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument("--check", metavar="NAME", default="", help="only this check")
    parser.add_argument(
        "--window", metavar="DURATION", default="7d", help="e.g. 24h, 7d, 90d (default 7d)"
    )


def _maintenance_options(parser: _Parser) -> None:
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    start = actions.add_parser("start", help="open a window now")
    end = actions.add_parser("end", help="close a window now")
    for action in (start, end):
        action.error_code = ERROR_CODES["maintenance"]
        action.add_argument("-c", "--config", metavar="FILE", help=_CONFIG_HELP)
        action.add_argument("--url", metavar="URL", help="the agent, e.g. http://10.0.0.5:8080")
    start.add_argument(
        "--for", dest="duration", metavar="DURATION", type=duration, required=True,
        help="how long, e.g. 15m",
    )  # fmt: skip
    start.add_argument(
        "--check", dest="checks", metavar="NAME", action="append", default=[],
        help="cover this check (repeatable; default: every check)",
    )  # fmt: skip
    start.add_argument("--reason", default="", help="shown on /status and in the feed")
    end.add_argument("window_id", metavar="ID", help="the id `start` printed")


_COMMANDS: dict[str, tuple[str, str, Callable[[_Parser], None]]] = {
    "run": (
        "run the agent until SIGTERM/SIGINT (SIGHUP reloads the config)",
        "exit codes: 0 after a clean stop, 2 config error\n\n"
        "examples:\n"
        "  probe run\n"
        "  probe run -c /etc/probe/probe.yaml --log-format text",
        _run_options,
    ),
    "check": (
        "run every enabled check once, concurrently, print the results",
        "exit codes: 0 healthy, 1 degraded, 2 unhealthy, 3 config or usage error\n"
        "(Nagios: OK, WARNING, CRITICAL, UNKNOWN)\n\n"
        "--only takes top-level check names; to run one member of a group, run its group.\n\n"
        "examples:\n"
        "  probe check\n"
        "  probe check --only database --only redis\n"
        "  probe check --format json --timeout 10s\n"
        "  probe check --format nagios          # for Nagios, Icinga, Naemon",
        _check_options,
    ),
    "validate": (
        "load and validate the config, print one line per check",
        "exit codes: 0 valid, 2 invalid (every problem is printed, one per line)\n"
        "-v also prints every check's effective warn/fail limits and where each came from\n"
        "(`default`: the check type's own; else the config key that set it).\n\n"
        "examples:\n"
        "  probe validate\n"
        "  probe validate -v\n"
        "  PROBE_CONFIG=staging.yaml probe validate",
        _validate_options,
    ),
    "ping": (
        "GET a running agent's endpoint (for Docker HEALTHCHECK)",
        "exit codes: 0 on 2xx, 1 otherwise (with one line on stderr saying why)\n"
        "The default URL uses the port of $PROBE_LISTEN when it is set.\n\n"
        "examples:\n"
        '  HEALTHCHECK CMD ["probe", "ping"]\n'
        "  probe ping http://127.0.0.1:8080/ready --timeout 2s",
        _ping_options,
    ),
    "alert-test": (
        "send one test notification through every configured notifier",
        "exit codes: 0 all delivered, 1 any failed or none configured, 2 config error\n\n"
        "examples:\n"
        "  SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... probe alert-test",
        _alert_test_options,
    ),
    "history": (
        "print uptime and incidents from the history store (the agent need not run)",
        "exit codes: 0 printed, 1 nothing recorded yet, 2 config error or history off\n\n"
        "examples:\n"
        "  probe history\n"
        "  probe history --check database --window 30d",
        _history_options,
    ),
    "maintenance": (
        "open or close a maintenance window on a running agent",
        "exit codes: 0 done, 1 refused by the agent or unreachable, 2 usage or config error\n"
        "The agent's address and admin token come from the config (agent.listen,\n"
        "agent.admin_token); --url and $PROBE_ADMIN_TOKEN override them.\n\n"
        "examples:\n"
        '  probe maintenance start --for 10m --check app --reason "deploy v1.4"\n'
        "  probe maintenance end 3f9a1c2b7d4e",
        _maintenance_options,
    ),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words and words[0] in _COMMANDS else None)
    # parse_known_args, so stray arguments after a command are reported by that
    # command's parser, with that command's exit code.
    args, extras = parser.parse_known_args(argv)
    if extras:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args
