"""Headless Chromium for the status page tests: install it, run it, drive it over the
DevTools protocol (a websocket, with aiohttp) or dump its DOM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def find_or_install() -> str | None:
    """The chromium binary, installing Debian's package when missing; None if impossible."""
    found = shutil.which("chromium")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            subprocess.run(command, env=env, capture_output=True, timeout=600, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
    return shutil.which("chromium")


class Page:
    """One tab over the DevTools protocol: navigate, evaluate, screenshot, console."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: str) -> None:
        self.ws = ws
        self.session = session
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
                continue
            method = data.get("method", "")
            params = data.get("params", {})
            if method == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(params["exceptionDetails"])[:300])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                self.errors.append(json.dumps(params.get("args"))[:300])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                self.errors.append(params["entry"].get("text", "")[:300])
            if method in self._events:
                self._events[method].set()

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        message = {"id": ident, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def open(
        self, url: str, width: int, height: int, mobile: bool, javascript: bool = True
    ) -> None:
        for domain in ("Runtime", "Log", "Page"):
            await self.send(f"{domain}.enable")
        await self.send("Emulation.setScriptExecutionDisabled", {"value": not javascript})
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        loaded = self._events["Page.loadEventFired"] = asyncio.Event()
        await self.send("Page.navigate", {"url": url})
        await asyncio.wait_for(loaded.wait(), 15)

    async def evaluate(self, expression: str) -> Any:
        found = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return found["result"].get("value")

    async def html(self) -> str:
        """The DOM as it stands, read by DevTools: works with the page's scripts off."""
        root = await self.send("DOM.getDocument", {"depth": -1})
        found = await self.send("DOM.getOuterHTML", {"nodeId": root["root"]["nodeId"]})
        html: str = found["outerHTML"]
        return html

    async def screenshot(self, path: Path) -> None:
        shot = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def browser(binary: str, profile: Path) -> AsyncIterator[Page]:
    proc = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        ws_url = ""
        async with asyncio.timeout(20):
            while not ws_url:
                line = (await proc.stderr.readline()).decode()
                if not line:
                    raise RuntimeError("chromium exited before it listened")
                match = re.search(r"DevTools listening on (ws://\S+)", line)
                ws_url = match.group(1) if match else ""
        # Keep reading stderr so Chromium never blocks on a full pipe.
        drain = asyncio.create_task(_drain(proc.stderr))
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(ws_url, max_msg_size=0) as ws,
        ):
            root = Page(ws, "")
            target = await root.send("Target.createTarget", {"url": "about:blank"})
            attached = await root.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            await root.close()
            page = Page(ws, attached["sessionId"])
            try:
                yield page
            finally:
                await page.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
