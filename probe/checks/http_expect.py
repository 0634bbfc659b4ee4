"""What an `http` check expects of a response, and the words for what it got instead.

Pure: no I/O. The check reads the response (its body capped) and hands it here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from probe.core.fields import StrictModel

_MISSING = object()
SHOWN = 60  # characters of a value quoted in failure words


# ---------------------------------------------------------------- statuses


@dataclass(frozen=True, slots=True)
class StatusRange:
    low: int
    high: int
    text: str

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.low <= status <= self.high


def _parse_status(item: object) -> StatusRange:
    error = f"expected a status like 200, '2xx' or '200-299', got {item!r}"
    if isinstance(item, bool):
        raise ValueError(error)
    text = str(item).strip().lower()
    if len(text) == 3 and text[0] in "12345" and text.endswith("xx"):
        low = int(text[0]) * 100
        return StatusRange(low, low + 99, text)
    low_text, dash, high_text = text.partition("-")
    try:
        low, high = int(low_text), int(high_text) if dash else int(low_text)
    except ValueError:
        raise ValueError(error) from None
    if not 100 <= low <= high <= 599:
        raise ValueError(error)
    return StatusRange(low, high, text)


def _parse_statuses(raw: object) -> tuple[StatusRange, ...]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    if not items:
        raise ValueError("expected at least one status")
    return tuple(item if isinstance(item, StatusRange) else _parse_status(item) for item in items)


Statuses = Annotated[tuple[StatusRange, ...], BeforeValidator(_parse_statuses)]
DEFAULT_STATUSES = (StatusRange(200, 399, "200-399"),)


# ---------------------------------------------------------------- patterns and paths


def _regex(raw: object) -> re.Pattern[str]:
    if isinstance(raw, re.Pattern):
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"expected a regular expression, got {raw!r}")
    try:
        return re.compile(raw)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression {raw!r}: {exc}") from None


Regex = Annotated[re.Pattern[str], BeforeValidator(_regex)]

# `$.data.items[0].id`, `data.items.0.id` (the older dotted form) or `$["odd.key"]`.
_PATH_PART = re.compile(r"""\.?([^.\[\]"']+)|\[(-?\d+)\]|\[(?:"([^"]*)"|'([^']*)')\]""")


def parse_path(path: str) -> tuple[str, ...]:
    """The keys and indexes of a JSON path; ValueError with words when it is not one."""
    rest = path.strip()
    rest = rest[1:] if rest.startswith("$") else rest
    parts: list[str] = []
    position = 0
    while position < len(rest):
        match = _PATH_PART.match(rest, position)
        if match is None or match.end() == position:
            raise ValueError(f"json path {path!r} is not like $.data.items[0].id")
        parts.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tuple(parts)


def _lookup(document: Any, parts: tuple[str, ...]) -> Any:
    """Keys into objects, indexes (negative from the end) into arrays."""
    node = document
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _is_index(part, len(node)):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _is_index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


# ---------------------------------------------------------------- json conditions

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "matches", "exists"]
_ORDER = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


class JsonCondition(StrictModel):
    """`{path: $.status, op: ==, value: ok}`; `exists` takes no value (or `false`)."""

    path: str
    op: Op = "=="
    value: Any = None

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        parse_path(value)
        return value

    @model_validator(mode="after")
    def _value_fits_op(self) -> JsonCondition:
        value = self.value
        if self.op in _ORDER and not _is_number(value):
            raise ValueError(f"op {self.op} compares numbers; value must be one, got {value!r}")
        if self.op == "in" and not isinstance(value, list):
            raise ValueError(f"op in needs a list of values, got {value!r}")
        if self.op == "matches":
            _regex(value)
        if self.op == "exists" and value is not None and not isinstance(value, bool):
            raise ValueError(f"op exists takes true or false, got {value!r}")
        return self

    @property
    def parts(self) -> tuple[str, ...]:
        return parse_path(self.path)

    def problem(self, document: Any) -> str | None:
        """Words for how `document` breaks this condition, or None when it holds."""
        got = _lookup(document, self.parts)
        said = f"json {self.path} {self.op}"
        if self.op == "exists":
            wanted = self.value is not False
            if (got is not _MISSING) == wanted:
                return None
            return f"{said}: not found" if wanted else f"{said} false: got {_show(got)}"
        said += f" {_show(self.value)}"
        if got is _MISSING:
            return f"{said}: not found"
        return None if self._holds(got) else f"{said}: got {_show(got)}"

    def _holds(self, got: Any) -> bool:
        want = self.value
        if self.op == "==":
            return _same(got, want)
        if self.op == "!=":
            return not _same(got, want)
        if self.op == "in":
            return any(_same(got, item) for item in want)
        if self.op == "matches":
            text = got if isinstance(got, str) else json.dumps(got)
            return _regex(want).search(text) is not None
        return _is_number(got) and _ORDER[self.op](float(got), float(want))


def _conditions(raw: object) -> object:
    """The older `json: {dotted.path: value}` map is a list of `==` conditions."""
    if isinstance(raw, Mapping):
        return [{"path": path, "op": "==", "value": value} for path, value in raw.items()]
    return raw


JsonConditions = Annotated[list[JsonCondition], BeforeValidator(_conditions)]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(got: Any, want: Any) -> bool:
    # JSON true is not 1: Python's True == 1 must not make a wrong value pass.
    return bool(got == want and isinstance(got, bool) == isinstance(want, bool))


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _header_patterns(raw: dict[str, re.Pattern[str]]) -> dict[str, re.Pattern[str]]:
    return {name.lower(): pattern for name, pattern in raw.items()}


# ---------------------------------------------------------------- the expectation


class Expect(StrictModel):
    status: Statuses = DEFAULT_STATUSES
    body_contains: str | None = None
    body_not_contains: str | None = None
    body_matches: Regex | None = None
    # Response header name (any case) -> a regular expression its value must match.
    headers: Annotated[dict[str, Regex], AfterValidator(_header_patterns)] = Field(
        default_factory=dict
    )
    # `json` is a BaseModel method name, hence the alias.
    json_conditions: JsonConditions = Field(default_factory=list, alias="json")


def judge(status: int, headers: Mapping[str, str], body: bytes, expect: Expect) -> str | None:
    """Words for what is wrong with a response, or None when it is as expected."""
    if not any(status in allowed for allowed in expect.status):
        wanted = ", ".join(allowed.text for allowed in expect.status)
        return f"HTTP {status} (expected {wanted})"
    problems = _header_problems(headers, expect)
    text = body.decode("utf-8", errors="replace")
    if expect.body_contains is not None and expect.body_contains not in text:
        problems.append(f"body does not contain {json.dumps(expect.body_contains)}")
    if expect.body_not_contains is not None and expect.body_not_contains in text:
        problems.append(f"body contains {json.dumps(expect.body_not_contains)}")
    if expect.body_matches is not None and not expect.body_matches.search(text):
        problems.append(f"body does not match /{expect.body_matches.pattern}/")
    if expect.json_conditions:
        problems += _json_problems(text, expect.json_conditions)
    return "; ".join(problems) or None


def _header_problems(headers: Mapping[str, str], expect: Expect) -> list[str]:
    problems = []
    for name, pattern in expect.headers.items():
        value = headers.get(name)
        if value is None:
            problems.append(f"header {name} is missing")
        elif not pattern.search(value):
            problems.append(f"header {name} {_show(value)} does not match /{pattern.pattern}/")
    return problems


def _json_problems(text: str, conditions: list[JsonCondition]) -> list[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return ["body is not JSON"]
    return [words for c in conditions if (words := c.problem(document)) is not None]
