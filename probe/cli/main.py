"""Dispatch (docs/cli.md); the parser and exit codes are `probe.cli.parsing`.

Imports are lazy: each command loads only what it needs, so `probe ping` stays on the
standard library and `probe check` loads only the drivers its config uses. `probe ping`
with its usual arguments does not even load the parser (see `_fast_ping`).
"""

from __future__ import annotations

import os
import sys

# typing.TYPE_CHECKING without importing typing (with re and enum, 10 ms), which
# `probe ping` would otherwise pay for names that only annotations use; mypy knows it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import NoReturn


def _fast_ping(argv: Sequence[str]) -> tuple[str | None, float] | None:
    """(url, timeout) of `probe ping [URL] [--timeout DURATION]`, read without argparse.

    Docker runs the HEALTHCHECK every 30 s, and the parser (argparse, gettext, re) cost
    more than the ping. Anything else (help, an unknown option, an abbreviation, a bad
    value, a second URL) returns None and goes to the parser, which words it as before.
    """
    from probe.cli.ping import DEFAULT_TIMEOUT, parse_timeout

    if not argv or argv[0] != "ping":
        return None
    url: str | None = None
    timeout: float | None = None
    rest = list(argv[1:])
    while rest:
        word = rest.pop(0)
        if word.startswith("--timeout=") or word == "--timeout":
            value = word.partition("=")[2] if "=" in word else (rest.pop(0) if rest else "")
            if timeout is not None or not value or value.startswith("-"):
                return None
            try:
                timeout = parse_timeout(value)
            except ValueError:
                return None
        elif word.startswith("-") or url is not None:
            return None
        else:
            url = word
    return url, DEFAULT_TIMEOUT if timeout is None else timeout


def _ping(url: str | None, timeout: float) -> int:
    from probe.cli import ping

    return ping.main(url, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. With `argv` None it owns the process (see `_exit_now`)."""
    ping_args = _fast_ping(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    if ping_args is None:
        # pydantic looks for plugins in every installed package's entry points on its
        # first model (a scan of site-packages, 3-5 ms per command); probe uses none.
        # Its documented switch, set for this process only (probe starts no children)
        # and left alone when the environment sets it.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        from probe.cli.parsing import parse_args

        args = parse_args(argv)
    command: str = "ping" if args is None else args.command
    try:
        code = _ping(*ping_args) if ping_args is not None else _dispatch(args)
    except KeyboardInterrupt:
        print("probe: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, never a traceback
        from probe.cli.parsing import ERROR_CODES

        print(f"probe: internal error: {exc or type(exc).__name__}", file=sys.stderr)
        return ERROR_CODES[command]
    if argv is None and command == "check":
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """End `probe check` without tearing down the interpreter.

    By now every check is closed and the output is written; what is left is freeing
    aiohttp, asyncpg, redis and pydantic module by module, which measured at a quarter
    of the command's wall time. Cron jobs and HEALTHCHECKs only wait for the exit code.
    """
    import logging
    import os

    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # stdout closed early (`probe check | head -1`): the code still counts
        pass
    os._exit(code)


def _dispatch(args: argparse.Namespace | None) -> int:
    assert args is not None  # parsed: only `probe ping` skips the parser
    command: str = args.command
    if command == "ping":
        return _ping(args.url, args.timeout)
    if command == "run":
        from probe.agent import run_agent
        from probe.contract.config import resolve_path

        return run_agent(resolve_path(args.config), args.log_format)
    if command == "check":
        from probe.cli import oneshot

        return oneshot.main(args.config, args.format, args.only, args.timeout)
    if command == "validate":
        return _validate(args.config, args.verbose)
    if command == "history":
        return _history(args.config, args.check, args.window)
    if command == "maintenance":
        from probe.cli import maintenance as admin_client

        return admin_client.main(
            args.config,
            args.url,
            args.action,
            duration=getattr(args, "duration", 0.0),
            checks=getattr(args, "checks", []),
            reason=getattr(args, "reason", ""),
            window_id=getattr(args, "window_id", ""),
        )
    return _alert_test(args.config)


def _history(config_arg: str | None, check: str, window: str) -> int:
    import time
    from argparse import ArgumentTypeError

    from probe.cli import history as report
    from probe.cli.parsing import ERROR_CODES, duration
    from probe.contract.config import load_or_report, resolve_path

    path = resolve_path(config_arg)
    config = load_or_report(path)
    if config is None:
        return ERROR_CODES["history"]
    try:
        seconds = duration(window)
    except ArgumentTypeError as exc:
        print(f"probe history: --window: {exc}", file=sys.stderr)
        return ERROR_CODES["history"]
    if seconds > report.MAX_WINDOW:
        print(f"probe history: --window: at most 400d (history keeps no more), got {window}",
              file=sys.stderr)  # fmt: skip
        return ERROR_CODES["history"]
    return report.main(config, str(path), check, seconds, window, time.time())


def _validate(config_arg: str | None, verbose: bool = False) -> int:
    from probe.cli.output import format_validate
    from probe.cli.parsing import ERROR_CODES
    from probe.contract.config import load_or_report, resolve_path

    path = resolve_path(config_arg)
    config = load_or_report(path)
    if config is None:
        return ERROR_CODES["validate"]
    print(format_validate(config, path, verbose))
    return 0


def _alert_test(config_arg: str | None) -> int:
    import asyncio

    from probe.cli.parsing import ERROR_CODES
    from probe.contract.config import load_or_report, resolve_path

    path = resolve_path(config_arg)
    config = load_or_report(path)
    if config is None:
        return ERROR_CODES["alert-test"]
    active = [n for n in config.alerts.notifiers if n.enabled and not n.unconfigured()]
    if not active:
        # A test that sent nothing must not look like a success in a deploy script.
        print(f"no notifiers configured in {path}: nothing was sent", file=sys.stderr)
        return 1

    from probe.engine.alerts.alert_test import send_test

    outcomes = asyncio.run(send_test(config))
    if not outcomes:
        print("no notifier reported a result: nothing was sent", file=sys.stderr)
        return 1
    for notifier, delivered, detail in outcomes:
        verdict = "delivered" if delivered else "FAILED"
        print(f"{notifier}: {verdict}" + (f": {detail}" if detail else ""))
    return 0 if all(delivered for _, delivered, _ in outcomes) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
