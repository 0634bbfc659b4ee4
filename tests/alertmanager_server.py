"""A real Alertmanager on a free port for a test module, and what it holds."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port, wait_for_port

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
MINIMAL_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(BINARY).exists():
        pytest.skip("prometheus-alertmanager is not installed (.ci/run installs it)")
    workdir = tmp_path_factory.mktemp("alertmanager")
    (workdir / "alertmanager.yml").write_text(MINIMAL_CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def am_alerts(url: str, check: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v2/alerts", params={"filter": f'check="{check}"'}) as response,
    ):
        assert response.status == 200
        found: list[dict[str, Any]] = await response.json()
        return found


async def wait_for_alerts(url: str, check: str, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        found = await am_alerts(url, check)
        if len(found) == count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} alerts for {check}, Alertmanager has {found}")
