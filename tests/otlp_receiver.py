"""A local OTLP/HTTP metrics receiver (`POST /v1/metrics`), as a collector or vendor runs it.

Requests are checked as the OTLP specification has servers check them: a protobuf
`Content-Type` (else 415), a body that decodes as the protocol's own
`ExportMetricsServiceRequest` from the `opentelemetry-proto` package (else 400), and,
when `api_key` is set, the `Authorization` header (else 401). Answers are the protocol's
too: `ExportMetricsServiceResponse` on success, a `google.rpc.Status` body on errors.
`plan(...)` queues other answers (503, 429 with Retry-After, no answer at all);
`refuse()` / `accept()` close and reopen the port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from tests.support import LocalSite

PROTOBUF = "application/x-protobuf"
# HTTP status -> the google.rpc.Code an OTLP server puts in the Status body.
RPC_CODES = {400: 3, 401: 16, 415: 3, 429: 8, 502: 14, 503: 14, 504: 14}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    hang: bool = False  # accept the request and never answer it


@dataclass(slots=True)
class Received:
    headers: dict[str, str]
    request: ExportMetricsServiceRequest
    status: int  # what the receiver answered

    def metrics(self) -> dict[str, Metric]:
        return {
            metric.name: metric
            for resource in self.request.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def resource(self) -> dict[str, str]:
        [resource] = self.request.resource_metrics
        return {kv.key: kv.value.string_value for kv in resource.resource.attributes}


@dataclass
class OtlpReceiver(LocalSite):
    port: int = 0
    api_key: str | None = None  # the whole Authorization header value it accepts
    received: list[Received] = field(default_factory=list)
    _plan: list[Answer] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status == 200]

    def plan(self, *answers: Answer) -> None:
        self._plan.extend(answers)

    async def start(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/metrics", self._metrics)
        await self.serve(app)
        return self

    async def close(self) -> None:
        self._release.set()  # hung requests end, so the runner can stop
        await self.stop_serving()

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != PROTOBUF:
            return _status(415, f"unsupported content type {request.content_type}")
        body = await request.read()  # aiohttp undoes Content-Encoding: gzip
        try:
            decoded = ExportMetricsServiceRequest.FromString(body)
        except Exception as exc:
            return _status(400, f"cannot decode ExportMetricsServiceRequest: {exc}")
        answer = self._plan.pop(0) if self._plan else Answer()
        headers = dict(request.headers)
        got = request.headers.get("Authorization", "")
        if answer.status == 200 and self.api_key is not None and got != self.api_key:
            # Some vendors quote the key they got back: the agent must not log it.
            self.received.append(Received(headers, decoded, 401))
            return _status(401, f"invalid API key {got}")
        self.received.append(Received(headers, decoded, answer.status))
        if answer.hang:
            await self._release.wait()
        if answer.status != 200:
            extra = {"Retry-After": answer.retry_after} if answer.retry_after else {}
            return _status(answer.status, "try again later", extra)
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(), content_type=PROTOBUF
        )


def _status(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = status_pb2.Status(code=RPC_CODES.get(code, 2), message=message).SerializeToString()
    return web.Response(status=code, body=body, content_type=PROTOBUF, headers=headers)


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    server = await OtlpReceiver().start()
    yield server
    await server.close()
