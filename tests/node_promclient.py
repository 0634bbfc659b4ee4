"""A real prom-client (npm `prom-client@15`, what a Next.js app exports metrics with)
app for the prometheus check's tests: `http_requests_total{method, route, status}` on
`/metrics`, driven to known counts through `/hit?status=500&n=10`.

    with PromApp() as app:            # a node process on a free port
        app.hit(200, 90); app.hit(503, 10)
        app.restart()                 # the same port, counters back to zero
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.conftest import free_port
from tests.node_bullmq import ensure_node_package

APP = r"""
const http = require("http");
const client = require("prom-client");
const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });
const requests = new client.Counter({
  name: "http_requests_total", help: "HTTP requests by status",
  labelNames: ["method", "route", "status"], registers: [registry],
});
http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/metrics") {
    res.setHeader("Content-Type", registry.contentType);
    res.end(await registry.metrics());
  } else if (url.pathname === "/hit") {
    const status = url.searchParams.get("status") || "200";
    const n = Number(url.searchParams.get("n") || "1");
    const route = url.searchParams.get("route") || "/api/orders";
    requests.inc({ method: "GET", route, status }, n);
    res.end("ok");
  } else { res.statusCode = 404; res.end(); }
}).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
"""


def ensure_prom_client() -> Path:
    return ensure_node_package("prom-client")


class PromApp:
    def __init__(self) -> None:
        self.cwd = ensure_prom_client()
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["node", "-e", APP],
            cwd=self.cwd,
            env={"PATH": os.environ.get("PATH", ""), "PORT": str(self.port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    died = self.process.stderr.read() if self.process.stderr else ""
                    raise AssertionError(f"prom-client app died: {died}") from None
                time.sleep(0.05)
        raise AssertionError("prom-client app did not start listening in 15s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
            self.process = None

    def restart(self) -> None:
        """A process restart: every counter starts again from zero."""
        self.stop()
        self.start()

    def hit(self, status: int, n: int, route: str = "/api/orders") -> None:
        url = f"http://127.0.0.1:{self.port}/hit?status={status}&n={n}&route={route}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200

    def __enter__(self) -> PromApp:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
