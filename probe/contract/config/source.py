"""Reading the file: size and encoding, YAML with duplicate keys refused, `${VAR}` expansion.

Every problem is a `ConfigError` line naming the file (and the key path, once known).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from probe.contract.config.errors import ConfigError, join_key

DEFAULT_CONFIG_PATH = Path("config/probe.yaml")
MAX_CONFIG_BYTES = 1024 * 1024  # far above any real config; stops `-c /dev/zero` early


def resolve_path(explicit: str | None) -> Path:
    """`-c FILE`, else `$PROBE_CONFIG`, else ./config/probe.yaml, else the packaged default."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("PROBE_CONFIG")
    if from_env:
        return Path(from_env)
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    return Path(str(resources.files("probe").joinpath("default.yaml")))


def read_text(path: Path) -> str:
    # A FIFO or a device would block the reader (on a reload, the whole agent) until
    # someone writes to it: only regular files are configs.
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ConfigError([f"{path}: not a regular file, expected a YAML file"])
    except OSError:
        pass  # the open below reports it in words
    return _read_regular(path)


def _read_regular(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, expected a YAML file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than 1 MiB; is this the config file?"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file (byte {exc.start})"]) from None


class _UniqueKeys:
    """A loader mixin that rejects a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges are allowed to be overridden
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)  # type: ignore[misc]
        return mapping


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """Pure Python: its error messages are the ones the docs and tests quote."""


# libyaml's parser is about 10x faster (3,000 checks: 4.6 s in Python); files it refuses
# are parsed again by the Python loader, whose error words are the documented ones.
_FastLoader: type[Any] = (
    type("_FastLoader", (_UniqueKeys, yaml.CSafeLoader), {})
    if yaml.__with_libyaml__
    else _UniqueKeyLoader
)

# Timestamps stay strings: pydantic parses them where a datetime is wanted, and
# nowhere else should `2026-12-01` silently become a date object.
_loader: type[Any]
for _loader in (_UniqueKeyLoader, _FastLoader):
    _loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_UniqueKeyLoader)


def parse_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        raw = _load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}: {line}{what}"]) from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = f"unacceptable character #x{char:04x}: {exc.reason}"
        raise ConfigError([f"{where}: character {exc.position + 1}: {what}"]) from None
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise ConfigError([f"{where}: invalid YAML: {first_line}"]) from None
    if raw is None:
        raise ConfigError([f"{where}: the file is empty; expected a map with a `checks:` list"])
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ConfigError([f"{where}: expected a map at the top level, got a {kind}"])
    return raw


_VAR_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\})")


def expand_env(value: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """Expand `${VAR}`, `${VAR:-default}` and `$$`; return the text and missing variables."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name, has_default, default = match.group(2), match.group(3), match.group(4)
        current = env.get(name)
        if current:
            return current
        if has_default is not None:
            return default or ""
        if current is None:
            missing.append(name)
        return ""

    return _VAR_RE.sub(replace, value), missing


# Far above any real config (the default has about 300 values); a YAML alias bomb of 1 KB
# reaches hundreds of millions, which would freeze the loop and then exhaust memory.
MAX_VALUES = 100_000


def expand_tree(node: Any, path: str, env: dict[str, str], problems: list[str]) -> Any:
    """`${VAR}` expanded in every string; a tree of more than MAX_VALUES values is refused."""
    budget = [MAX_VALUES]
    try:
        return _expand(node, path, env, problems, budget)
    except _TooBig:
        problems.append(
            f"more than {MAX_VALUES:,} values once YAML aliases are expanded; is this the config?"
        )
        return {}


class _TooBig(Exception):
    pass


def _expand(
    node: Any, path: str, env: dict[str, str], problems: list[str], budget: list[int]
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig
    if isinstance(node, dict):
        return {k: _expand(v, join_key(path, k), env, problems, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, f"{path}[{i}]", env, problems, budget) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        text, missing = expand_env(node, env)
        for name in missing:
            problems.append(
                f"{path}: environment variable {name} is not set "
                f"(set it, or give a default: ${{{name}:-value}})"
            )
        return text
    return node
