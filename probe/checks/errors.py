"""What a check raises for a driver error, in the words of `probe.core.networds`."""

from __future__ import annotations

from probe.contract.plugin import CheckFailed
from probe.core.networds import first_line, is_timeout


def failure(exc: BaseException, words: str | None) -> Exception:
    """What a check raises for a driver error: a TimeoutError (the runner says `timed out
    after 5s` with the configured timeout) or CheckFailed with the given words."""
    if is_timeout(exc):
        return TimeoutError()
    return CheckFailed(words or _last_resort(exc))


def _last_resort(exc: BaseException) -> str:
    # Reached only for errors no mapping knows; the text is the driver's own (never the
    # class name) and the runner's redactor still scrubs any secret out of it.
    return first_line(exc, "unexpected error from the driver")
