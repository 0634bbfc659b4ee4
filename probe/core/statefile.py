"""Reading a state file the agent wrote earlier (alert state, heartbeat state), hardened.

A state file is worth less than a running agent: whatever is wrong with it (a FIFO or a
device at its path, a hung network volume, a huge or deeply nested file, NaN, a value
from the future) costs one log line and the agent starts without it. The read runs in a
daemon thread with a deadline: a read stuck in the kernel on a dead NFS mount can be
neither cancelled nor joined, and must hold up neither start nor stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MAX_STATE_BYTES = 64 * 1024 * 1024  # far above any real state; stops `/dev/zero`-like files
READ_TIMEOUT = 5.0  # seconds a start waits for a state file before going on without it
FUTURE_SLACK = 300.0  # a saved time this far ahead of now is not a clock's rounding


class StateFileError(Exception):
    """Why a state file was not used: `str()` is one line for people."""


def _refuse_constant(name: str) -> float:
    raise StateFileError(f"{name} is not a number a state file may hold")


def check_finite(data: object) -> None:
    """Every number is finite: `1e999` parses as infinity without any constant, and an
    infinite time makes a heartbeat pass forever or an alert never age out."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise StateFileError("a number in it is not finite")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def check_not_future(when: float | None, now: float, what: str) -> None:
    if when is not None and when > now + FUTURE_SLACK:
        raise StateFileError(f"{what} is in the future")


def read_text(path: Path) -> str | None:
    """The file's text; None when there is no file. Only a regular file is read: a FIFO
    or a device would block the reader until someone writes to it."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read it: {exc.strerror or exc}") from None
    if not stat.S_ISREG(found.st_mode):
        raise StateFileError("not a regular file")
    try:
        # O_NONBLOCK: a FIFO put there since the stat above must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read it: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StateFileError("not a regular file")
        data = handle.read(MAX_STATE_BYTES + 1)
    if len(data) > MAX_STATE_BYTES:
        raise StateFileError(f"larger than {MAX_STATE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(f"not UTF-8 text (byte {exc.start})") from None


def parse_json(text: str) -> Any:
    """JSON without NaN or Infinity, every number finite."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise StateFileError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise StateFileError(f"not JSON: {exc.msg} (line {exc.lineno})") from None
    check_finite(data)
    return data


def load(path: str | Path, what: str, build: Callable[[Any], T], without: str) -> T | None:
    """`build(parsed JSON)`, or None when there is no file or it cannot be used; then one
    warning says `ignoring <what> <path>: <why>; <without>`. Never raises."""
    try:
        text = read_text(Path(path))
        if text is None:
            return None
        return build(parse_json(text))
    except RecursionError:
        reason = "nested too deeply"
    except Exception as exc:  # whatever a corrupt file makes a parser or builder raise
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    _warn(path, what, reason, without)
    return None


async def load_off_loop(
    path: str | Path,
    what: str,
    build: Callable[[Any], T],
    without: str,
    timeout: float = READ_TIMEOUT,
) -> T | None:
    """`load` in a daemon thread; after `timeout` the agent goes on without the file."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T | None] = loop.create_future()

    def deliver(value: T | None) -> None:
        if not done.done():
            done.set_result(value)

    def work() -> None:
        value = load(path, what, build, without)
        with contextlib.suppress(RuntimeError):  # the loop closed while the read hung
            loop.call_soon_threadsafe(deliver, value)

    threading.Thread(target=work, name=f"read {what}", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        _warn(path, what, f"not read within {timeout:g}s (a hung volume?)", without)
        return None


def _warn(path: str | Path, what: str, reason: str, without: str) -> None:
    logging.getLogger("probe.state").warning(
        "ignoring %s %s: %s; %s", what, path, reason, without, extra={"path": str(path)}
    )
