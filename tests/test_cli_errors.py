"""No traceback on any bad input: each command answers with words and its own exit code."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

# command -> exit code for a config error (docs/cli.md)
COMMANDS = {"check": 3, "validate": 2, "alert-test": 2}

MakePath = Callable[[Path], Path]


def _missing(tmp: Path) -> Path:
    return tmp / "nope.yaml"


def _directory(tmp: Path) -> Path:
    return tmp


def _empty(tmp: Path) -> Path:
    (tmp / "empty.yaml").write_text("")
    return tmp / "empty.yaml"


def _a_list(tmp: Path) -> Path:
    (tmp / "list.yaml").write_text("- name: database\n  type: postgres\n")
    return tmp / "list.yaml"


def _binary(tmp: Path) -> Path:
    (tmp / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    return tmp / "bin.yaml"


def _unknown_keys(tmp: Path) -> Path:
    (tmp / "typo.yaml").write_text("chekcs: []\n")
    return tmp / "typo.yaml"


def _broken_symlink(tmp: Path) -> Path:
    (tmp / "link.yaml").symlink_to(tmp / "gone.yaml")
    return tmp / "link.yaml"


def _unreadable_device(tmp: Path) -> Path:
    return Path("/proc/self/mem")  # opens, but reading offset 0 fails (EIO)


CORPUS: dict[str, tuple[MakePath, str]] = {
    "missing-file": (_missing, "file not found"),
    "directory": (_directory, "is a directory, expected a YAML file"),
    "empty-file": (_empty, "the file is empty"),
    "yaml-list": (_a_list, "expected a map at the top level, got a list"),
    "binary-garbage": (_binary, "not a UTF-8 text file"),
    "unknown-key": (_unknown_keys, "chekcs: unknown key"),
    "broken-symlink": (_broken_symlink, "file not found"),
    "unreadable-device": (_unreadable_device, "cannot read: input/output error"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_config_file(command: str, case: str, tmp_path: Path) -> None:
    make, words = CORPUS[case]
    path = make(tmp_path)
    out = run_cli(command, "-c", str(path))
    assert out.code == COMMANDS[command], out
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: ")
    assert words.lower() in lines[0].lower()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("checks: []\n")
    path.chmod(0)
    for command, code in COMMANDS.items():
        out = run_cli(command, "-c", str(path))
        assert out.code == code
        assert out.stderr == f"{path}: permission denied\n"


def test_run_with_a_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    for path in (_missing(tmp_path), _a_list(tmp_path), _binary(tmp_path)):
        out = run_cli("run", "-c", str(path))
        assert out.code == 2, out
        assert "Traceback" not in out.stderr
        assert str(path) in out.stderr


def test_probe_config_env_pointing_nowhere(tmp_path: Path) -> None:
    out = run_cli("validate", cwd=tmp_path, env={"PROBE_CONFIG": str(tmp_path / "x.yaml")})
    assert out.code == 2
    assert out.stderr == f"{tmp_path / 'x.yaml'}: file not found\n"


def test_alert_test_without_notifiers_says_so_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "quiet.yaml"
    path.write_text(
        "checks: []\nalerts:\n  notifiers:\n    - { type: slack, webhook_url: '' }\n"
        "    - { type: alertmanager, urls: ['http://127.0.0.1:1'], enabled: false }\n"
    )
    out = run_cli("alert-test", "-c", str(path))
    assert out.code == 1
    assert out.stderr == f"no notifiers configured in {path}: nothing was sent\n"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ([], 2),
        (["bogus-command"], 2),
        (["--bogus"], 2),
        (["validate", "--bogus"], 2),
        (["alert-test", "extra"], 2),
        (["run", "--log-format", "xml"], 2),
        (["check", "--format"], 3),
        (["ping", "--timeout"], 1),
    ],
)
def test_usage_errors(args: list[str], code: int) -> None:
    out = run_cli(*args)
    assert out.code == code, out
    assert out.stderr.startswith("usage: probe")
    assert "error: " in out.stderr
    assert "Traceback" not in out.stderr


def test_version_and_help() -> None:
    from probe import __version__

    out = run_cli("--version")
    assert (out.code, out.stdout) == (0, f"probe {__version__}\n")
    out = run_cli("--help")
    assert out.code == 0
    for command in ("run", "check", "validate", "ping", "alert-test"):
        assert command in out.stdout
        sub = run_cli(command, "--help")
        assert sub.code == 0
        assert "examples:" in sub.stdout
        assert "exit codes:" in sub.stdout
