"""The default history file is used only where its directory already exists (the
image's /var/lib/probe): elsewhere history is off with one line, and nothing is created."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from probe.contract.config.schema import DEFAULT_HISTORY
from probe.engine.history.service import build_writer
from tests.history_helpers import config_for


def test_the_default_path_is_left_alone_where_its_directory_does_not_exist(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, ["api"])
    agent = config.agent.model_copy(
        update={"history": config.agent.history.__class__(DEFAULT_HISTORY)}
    )
    config = config.model_copy(update={"agent": agent})
    folder = Path(DEFAULT_HISTORY.removeprefix("sqlite://")).parent
    if folder.exists():
        pytest.skip(f"{folder} exists on this machine: the default would be used")
    with caplog.at_level(logging.INFO, logger="probe.history"):
        assert build_writer(config, lambda: 0.0) is None
    assert not folder.exists()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"history off: {folder} does not exist or is not writable")


async def test_a_chosen_path_gets_its_directory_made(tmp_path: Path) -> None:
    config = config_for(tmp_path, ["api"])
    chosen = tmp_path / "deep" / "er" / "history.db"
    agent = config.agent.model_copy(
        update={"history": config.agent.history.__class__(f"sqlite://{chosen}")}
    )
    writer = build_writer(config.model_copy(update={"agent": agent}), lambda: 0.0)
    assert writer is not None and writer.backend.description == f"sqlite://{chosen}"
    await writer.flush()
    await writer.stop()
    assert writer.available and chosen.is_file()
