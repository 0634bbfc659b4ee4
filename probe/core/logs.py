"""One JSON object per line on stderr (`ts`, `level`, `msg`, plus fields), or text for people."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from probe.core.redact import STANDARD_RECORD_KEYS, RedactingFilter, Redactor
from probe.core.times import rfc3339_millis


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in STANDARD_RECORD_KEYS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": rfc3339_millis(record.created),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{rfc3339_millis(record.created)} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


class PlainFormatter(logging.Formatter):
    """`probe: message` on one line, no traceback: for one-shot commands, whose user
    wants to know what went wrong, not where in probe's code."""

    def format(self, record: logging.LogRecord) -> str:
        return f"probe: {record.getMessage()}".replace("\n", " ")


_FORMATTERS: dict[str, type[logging.Formatter]] = {
    "json": JsonFormatter,
    "text": TextFormatter,
    "plain": PlainFormatter,
}


def setup_logging(log_format: str, redactor: Redactor, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATTERS[log_format]())
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiohttp logs every malformed request (a 9 kB header, a port scan) with a traceback;
    # the client gets its 400, and nobody should be able to fill our log that way.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
