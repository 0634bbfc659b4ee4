"""Pushes the agent's /metrics families to `agent.otlp.endpoint` every `agent.otlp.every`.

On the loop: a timer, and a copy of the registry taken at one moment (what a /metrics
scrape formats). On a thread of the push's own: collecting, translating, and the SDK
exporter's request with its retries, bounded by `OtlpConfig.timeout`. A dead or slow
endpoint therefore never delays a check, /live or /metrics: while a push is still out,
the next tick is skipped (and counted) rather than queued. An outage is logged once when
it starts and once when it ends, whatever `every` is; `probe_otlp_exports_total{result}`
counts every push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from probe.contract.config.otlp import OtlpConfig
from probe.contract.config.schema import AgentConfig
from probe.core.networds import first_line
from probe.core.redact import redact_url
from probe.core.tasks import cancel_and_wait
from probe.core.times import Clock
from probe.core.units import format_duration
from probe.engine.metrics import ProbeRegistry

if TYPE_CHECKING:
    from probe.engine.otlp.sender import Sender

log = logging.getLogger("probe.otlp")

RESULTS = ("ok", "failed", "skipped")


@dataclass(slots=True)
class _Outage:
    since: float
    failed: int = 1


class OtlpPush:
    def __init__(self, registry: ProbeRegistry, agent: AgentConfig, clock: Clock = time.time):
        self.registry = registry
        self.clock = clock
        self.counts = dict.fromkeys(RESULTS, 0)
        self.config: OtlpConfig | None = None
        self._agent = agent
        self._sender: Sender | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[str | None] | None = None
        self._outage: _Outage | None = None
        self._running = False
        self._start_ns = int(clock() * 1e9)
        registry.register(_ExportsCollector(self))
        self._use(agent)

    def start(self) -> None:
        self._running = True
        self._follow_config()

    async def reconfigure(self, agent: AgentConfig) -> None:
        """On reload: a changed `agent.otlp` gets a new exporter; none stops the push."""
        if agent.otlp == self.config and agent.name == self._agent.name:
            return
        self._use(agent)
        if self.config is None:
            await cancel_and_wait(self._task)
            self._task = None
        self._follow_config()

    async def stop(self) -> None:
        self._running = False
        await cancel_and_wait(self._task)
        self._task = None
        self._use(None)

    def _use(self, agent: AgentConfig | None) -> None:
        old = self._sender
        self.config = None if agent is None else agent.otlp
        self._sender = None
        if agent is not None:
            self._agent = agent
            if agent.otlp is not None:
                # Imported only when configured: the extra is optional.
                from probe.engine.otlp.sender import Sender

                self._sender = Sender(agent.otlp, agent, self._start_ns)
        self._outage = None
        if old is not None:
            old.close()

    def _follow_config(self) -> None:
        if self._running and self.config is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="otlp push")

    async def _run(self) -> None:
        while self.config is not None:
            every = self.config.every
            await asyncio.sleep(every)
            try:
                self.tick()
            except Exception:  # a bug here must not end the pushes for good
                log.exception("OTLP push could not start; trying again in %gs", every)

    def tick(self) -> None:
        """One push, started on a thread; returns at once."""
        sender = self._sender
        if sender is None:
            return
        if self._inflight is not None and not self._inflight.done():
            self.counts["skipped"] += 1
            return
        frozen = self.registry.frozen()  # on the loop: a consistent copy, cheap
        self._inflight = _on_thread(lambda: sender.push(frozen))
        self._inflight.add_done_callback(lambda done: self._report(sender, done))

    def _report(self, sender: Sender, done: asyncio.Future[str | None]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        reason = done.result() if error is None else f"not sent: {first_line(error)}"
        self.counts["ok" if reason is None else "failed"] += 1
        if sender is not self._sender:
            return  # an endpoint a reload replaced meanwhile
        where = redact_url(sender.config.url)
        if reason is None:
            if self._outage is not None:
                lasted = format_duration(self.clock() - self._outage.since)
                log.info(
                    "OTLP push to %s recovered after %s (%d failed pushes)",
                    where,
                    lasted,
                    self._outage.failed,
                )
                self._outage = None
        elif self._outage is None:
            self._outage = _Outage(self.clock())
            log.warning(
                "OTLP push to %s failed: %s; retrying every %s, logging again once it recovers",
                where,
                reason,
                format_duration(sender.config.every),
            )
        else:
            self._outage.failed += 1


def _on_thread(work: Callable[[], str | None]) -> asyncio.Future[str | None]:
    """`work` on a daemon thread of its own: one that hangs in a request until its timeout
    holds no executor slot /metrics needs, and cannot hold up the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def settle(result: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def run() -> None:
        result: str | None = None
        error: BaseException | None = None
        try:
            result = work()
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while the push was out
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="otlp-push", daemon=True).start()
    return future


class _ExportsCollector(Collector):
    def __init__(self, push: OtlpPush) -> None:
        self.push = push

    def collect(self) -> Iterable[Metric]:
        counts = dict(self.push.counts)
        if self.push.config is None and not any(counts.values()):
            return []
        exports = CounterMetricFamily(
            "probe_otlp_exports",
            "Pushes of these metrics to agent.otlp.endpoint since the agent started, by "
            "result (ok, failed, skipped: the previous push was still out).",
            labels=["result"],
        )
        for result in RESULTS:
            exports.add_metric([result], float(counts[result]))
        return [exports]
