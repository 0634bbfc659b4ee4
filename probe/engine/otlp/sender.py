"""The thread side of the OTLP push: the SDK's exporter, and words for why a push failed.

Everything here blocks (collecting, encoding, the HTTP request and its retries) and runs
on the push's own thread, never on the event loop.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry

from probe import __version__
from probe.contract.config.otlp import OtlpConfig
from probe.contract.config.schema import AgentConfig
from probe.core.networds import address, first_line, is_timeout, network_words
from probe.engine.otlp.translate import metrics_data

# The exporter logs each failed attempt and each retry; probe says it once per outage
# (probe.engine.otlp.push), so the exporter's own lines would only repeat it every `every`.
logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)

MAX_DETAIL = 200  # characters of an error body quoted in the log line


class RecordingSession(requests.Session):
    """Keeps what the exporter's last request got: the exporter itself reports only
    success or failure, and the log line must say why."""

    outcome: requests.Response | BaseException | None = None

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            response = super().request(*args, **kwargs)
        except BaseException as exc:
            self.outcome = exc
            raise
        self.outcome = response
        return response


def resource_for(agent: AgentConfig) -> Resource:
    """Who sent the metrics. A backend that maps OTLP to Prometheus labels makes
    `service.name` the job and `service.instance.id` the instance: job="probe" and one
    instance per agent and host, as a scrape of /metrics gives. OTEL_RESOURCE_ATTRIBUTES
    and OTEL_SERVICE_NAME, when set, win."""
    host = socket.gethostname()
    ours = Resource(
        {
            "service.name": "probe",
            "service.instance.id": f"{agent.name}@{host}",
            "service.version": __version__,
            "host.name": host,
        }
    )
    return ours.merge(OTELResourceDetector().detect())


class Sender:
    def __init__(self, config: OtlpConfig, agent: AgentConfig, start_ns: int) -> None:
        self.config = config
        self.start_ns = start_ns  # counters count from the agent's start
        self.session = RecordingSession()
        self.exporter = OTLPMetricExporter(
            endpoint=config.url,
            headers=config.header_values(),
            timeout=config.timeout,
            compression=Compression.Gzip,
            session=self.session,
        )
        self.resource = resource_for(agent)
        self.scope = InstrumentationScope("probe", __version__)
        parts = urlsplit(config.url)
        self.host = parts.hostname or ""
        self.where = address(self.host, parts.port or (443 if parts.scheme == "https" else 80))

    def push(self, registry: CollectorRegistry) -> str | None:
        """Collects and sends one request; None when it was accepted, else why not."""
        data = metrics_data(
            registry.collect(), self.resource, self.scope, self.start_ns, time.time_ns()
        )
        self.session.outcome = None
        if self.exporter.export(data) is MetricExportResult.SUCCESS:
            return None
        return self._why()

    def close(self) -> None:
        # Stops retries under way and closes the connection pool; does not wait.
        self.exporter.shutdown()

    def _why(self) -> str:
        outcome = self.session.outcome
        if isinstance(outcome, requests.Response):
            return _http_words(outcome)
        if isinstance(outcome, BaseException):
            words = network_words(outcome, self.host, self.where)
            if words:
                return words
            if is_timeout(outcome):
                return f"no answer within {self.config.timeout:g}s ({self.where})"
            return first_line(outcome)
        return "the request was not sent (larger than the exporter allows?)"


def _http_words(response: requests.Response) -> str:
    """`HTTP 401 Unauthorized: invalid API key`: the status, and the message OTLP servers
    put in a google.rpc.Status body (or the first line of a text body)."""
    words = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    detail = ""
    kind = response.headers.get("Content-Type", "")
    if kind.startswith("application/x-protobuf"):
        try:
            detail = status_pb2.Status.FromString(response.content).message
        except DecodeError:
            detail = ""
    elif kind.startswith(("text/", "application/json")):
        detail = response.text.strip()
    detail = detail.splitlines()[0][:MAX_DETAIL] if detail.strip() else ""
    return f"{words}: {detail}" if detail else words
