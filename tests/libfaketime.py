"""The `libfaketime` fixture: the preload library that lets a test step an agent's wall
clock (a child process started with LD_PRELOAD and FAKETIME_TIMESTAMP_FILE), installed
with apt-get on first use when missing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

LIBFAKETIME_GLOB = "/usr/lib/*/faketime/libfaketimeMT.so.1"


def _installed() -> str | None:
    found = glob.glob(LIBFAKETIME_GLOB)
    return found[0] if found else None


def _apt_install() -> str:
    """'' when `faketime` got installed, else the last words apt-get said."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "faketime"]
    last = ""
    # Straight away when the package lists are fresh enough; else once more after an update.
    for command in (install, ["apt-get", "update", "-q"], install):
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} timed out"
        last = (done.stderr or done.stdout).strip()
        if command is install and done.returncode == 0:
            return ""
    return last.splitlines()[-1] if last else "no output"


@pytest.fixture(scope="session")
def libfaketime() -> str:
    """The preload library; installed with apt-get when missing and we may."""
    found = _installed()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("needs libfaketime: `apt-get install faketime` (as root)")
    why = _apt_install()
    found = _installed()
    if not found:
        pytest.skip(f"needs libfaketime, and `apt-get install faketime` failed: {why}")
    return found


def faked_env(library: str, spec_file: str) -> dict[str, str]:
    """The environment of an agent whose wall clock reads `spec_file` (`+0`, `+400d`) once a
    second; its monotonic clock stays real, as when the kernel's wall clock is stepped."""
    return {
        "LD_PRELOAD": library,
        "FAKETIME_TIMESTAMP_FILE": spec_file,
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
