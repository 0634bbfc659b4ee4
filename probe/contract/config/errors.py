"""Error wording: pydantic's errors as `key.path: what is wrong` lines, in our words.

A value in a secret-bearing field is never printed back, even when it is wrong: each
model declares its `secret_fields`, and the caller passes them in.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pydantic import ValidationError


class ConfigError(Exception):
    """One or more problems, each already a complete line for the user."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def join_key(path: str, key: object) -> str:
    shown = str(key)
    if not shown.isprintable():
        shown = repr(shown)  # a key with a line break must not split a problem line
    return f"{path}.{shown}" if path else shown


# `scheme://user:pw@host/path?query`: all but the scheme and host may be a credential
# (a Slack webhook's path, a DSN's password, `?auth=`).
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/\s'\"@]*@)?([^/\s'\"?#]*)[^\s'\"]*")
MAX_SHOWN = 80


def shown_value(value: object) -> str:
    """A value from the file as an error may print it: URLs cut to scheme and host (their
    other parts may be secrets), at most MAX_SHOWN characters, always one line."""
    text = _URL.sub(lambda m: f"{m.group(1)}{m.group(2)}/...", repr(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def pydantic_problems(
    exc: ValidationError, prefix: str, secret_fields: Collection[str] = ()
) -> list[str]:
    problems = []
    for error in exc.errors():
        location = prefix
        for part in error["loc"]:
            if isinstance(part, int):
                location += f"[{part}]"
            elif part not in _NOT_KEYS:
                location = join_key(location, part)
        # A value in a secret-bearing field is never printed back, even when it is wrong.
        secret = any(part in secret_fields for part in error["loc"])
        got = "'***'" if secret else shown_value(error.get("input"))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] in _PLAIN_WORDS:
            message = _PLAIN_WORDS[error["type"]].format(got=got, **error.get("ctx", {}))
        problems.append(f"{location}: {message}" if location else message)
    return problems


# Parts of a pydantic error location that are not keys of the file.
_NOT_KEYS = frozenset({"function-after", "function-before", "[key]"})

# pydantic error type -> our words; `got` is the value from the file.
_PLAIN_WORDS = {
    "model_attributes_type": "expected a map of key: value, got {got}",
    "dict_type": "expected a map of key: value, got {got}",
    "model_type": "expected a map of key: value, got {got}",
    "list_type": "expected a list, got {got}",
    "bool_parsing": "expected true or false, got {got}",
    "bool_type": "expected true or false, got {got}",
    "int_parsing": "expected a whole number, got {got}",
    "int_type": "expected a whole number, got {got}",
    "int_from_float": "expected a whole number, got {got}",
    "float_parsing": "expected a number, got {got}",
    "float_type": "expected a number, got {got}",
    "string_type": "expected text, got {got} (quote it)",
    "greater_than_equal": "must be at least {ge}, got {got}",
    "greater_than": "must be greater than {gt}, got {got}",
    "less_than_equal": "must be at most {le}, got {got}",
    "too_short": "needs at least {min_length} item(s)",
    "datetime_from_date_parsing": "expected a time like 2026-12-01T02:00:00Z, got {got}",
    "datetime_parsing": "expected a time like 2026-12-01T02:00:00Z, got {got}",
}
