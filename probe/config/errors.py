"""Error wording: pydantic's errors as `key.path: what is wrong` lines, in our words.

A value in a secret-bearing field is never printed back, even when it is wrong: each
model declares its `secret_fields`, and the caller passes them in.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import ValidationError


class ConfigError(Exception):
    """One or more problems, each already a complete line for the user."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def join_key(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


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
        got = "***" if secret else error.get("input")
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
    "model_attributes_type": "expected a map of key: value, got {got!r}",
    "dict_type": "expected a map of key: value, got {got!r}",
    "model_type": "expected a map of key: value, got {got!r}",
    "list_type": "expected a list, got {got!r}",
    "bool_parsing": "expected true or false, got {got!r}",
    "bool_type": "expected true or false, got {got!r}",
    "int_parsing": "expected a whole number, got {got!r}",
    "int_type": "expected a whole number, got {got!r}",
    "int_from_float": "expected a whole number, got {got!r}",
    "float_parsing": "expected a number, got {got!r}",
    "float_type": "expected a number, got {got!r}",
    "string_type": "expected text, got {got!r} (quote it)",
    "greater_than_equal": "must be at least {ge}, got {got!r}",
    "greater_than": "must be greater than {gt}, got {got!r}",
    "less_than_equal": "must be at most {le}, got {got!r}",
    "too_short": "needs at least {min_length} item(s)",
    "datetime_from_date_parsing": "expected a time like 2026-12-01T02:00:00Z, got {got!r}",
    "datetime_parsing": "expected a time like 2026-12-01T02:00:00Z, got {got!r}",
}
