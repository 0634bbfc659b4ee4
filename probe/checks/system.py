"""The `system` check: CPU and memory of the container (its cgroup limits), and disk space.

Reads cgroup v2, else cgroup v1, else the host (psutil), one resource at a time. Every
read is a small file or /proc read (tens of microseconds), so it runs inline on the loop.

Samples (component, measure); only `cpu`, `memory` and `disk` take thresholds:

    cpu     cpu                      container CPU: cores used / cores allowed
    cpu     host_cpu                 host CPU: busy share of all host CPUs
    memory  memory                   container working set / limit (host total if no limit)
    memory  memory_bytes             container working set, bytes
    memory  memory_limit_bytes       container limit, bytes (host total if no limit)
    memory  host_memory              host (total - available) / total
    memory  host_memory_bytes        host total - available, bytes
    memory  host_memory_limit_bytes  host total, bytes
    memory  oom_kills                OOM kills in the cgroup, when the kernel reports them
    <path>  disk                     used / (used + available to non-root), as `df` shows

Each sample's note starts with its source: `cgroup v2`, `cgroup v1` or `host`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import psutil
from pydantic import Field, field_validator

from probe.checks import cgroup
from probe.checks.cgroup import CpuReading, MemoryReading
from probe.contract import limits
from probe.contract.plugin import (
    Check,
    CheckConfig,
    CheckContext,
    MetricFamily,
    MetricPoint,
    Report,
)
from probe.core.model import Sample, Unit
from probe.core.times import Clock

HOST = "host"
# CPU accounting lags up to one scheduler tick (4-10 ms): over 0.2 s that is a few percent.
MIN_CPU_WINDOW = 0.2


CPU_USAGE = MetricFamily(
    "probe_cpu_usage_ratio",
    "CPU used as a share of the CPU limit (container) or of all CPUs (host).",
    ("scope",),
)
MEMORY_USAGE = MetricFamily(
    "probe_memory_usage_bytes",
    "Memory in use: the working set for a container, used memory for the host.",
    ("scope",),
)
MEMORY_LIMIT = MetricFamily(
    "probe_memory_limit_bytes",
    "Memory limit: the container's limit, or the host's total memory.",
    ("scope",),
)
MEMORY_RATIO = MetricFamily(
    "probe_memory_usage_ratio", "Memory in use as a share of the limit.", ("scope",)
)
# (family, scope, component, measure): the samples of this module's docstring that feed
# a series. Outside any cgroup `cpu` and `memory` fall back to host figures, which the
# host scope already carries: they must not pose as the container's.
_SERIES = (
    (CPU_USAGE, "container", "cpu", "cpu"),
    (CPU_USAGE, "host", "cpu", "host_cpu"),
    (MEMORY_RATIO, "container", "memory", "memory"),
    (MEMORY_USAGE, "container", "memory", "memory_bytes"),
    (MEMORY_LIMIT, "container", "memory", "memory_limit_bytes"),
    (MEMORY_RATIO, "host", "memory", "host_memory"),
    (MEMORY_USAGE, "host", "memory", "host_memory_bytes"),
    (MEMORY_LIMIT, "host", "memory", "host_memory_limit_bytes"),
)


# A full disk or a working set at its limit (the OOM killer's line) is bad anywhere; a
# busy CPU is not (a batch job should use it), so `cpu` has no default.
DEFAULT_WARN = limits.defaults({"memory": "90%", "disk": "85%"})
DEFAULT_FAIL = limits.defaults({"memory": "95%", "disk": "95%"})


class SystemConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"cpu", "memory", "disk"}
    default_warn: ClassVar[limits.LimitMap] = DEFAULT_WARN
    default_fail: ClassVar[limits.LimitMap] = DEFAULT_FAIL
    metric_families: ClassVar[tuple[MetricFamily, ...]] = (
        CPU_USAGE,
        MEMORY_USAGE,
        MEMORY_LIMIT,
        MEMORY_RATIO,
    )

    type: Literal["system"]
    disk_paths: list[str] = Field(default_factory=list)
    cgroup_root: str = "/sys/fs/cgroup"

    @field_validator("disk_paths")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not os.path.isabs(path):
                raise ValueError(f"expected absolute paths like /data, got {path!r}")
        return value

    @field_validator("cgroup_root")
    @classmethod
    def _absolute_root(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"expected an absolute path like /sys/fs/cgroup, got {value!r}")
        return value

    def target(self) -> str:
        return ", ".join([self.cgroup_root, *self.disk_paths])

    def metric_points(self) -> Iterator[MetricPoint]:
        for family, scope, component, measure in _SERIES:
            skip = HOST if scope == "container" else ""
            yield MetricPoint(family, (scope,), component, measure, skip_note=skip)


@dataclass(frozen=True, slots=True)
class _CpuMark:
    reading: CpuReading | None
    at: float  # clock() when read


class SystemCheck(Check[SystemConfig]):
    config_model = SystemConfig

    def __init__(
        self,
        config: SystemConfig,
        context: CheckContext | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(config, context)
        self._root = Path(config.cgroup_root)
        self._clock = clock
        # First samples now, so the first scheduled run reports a real ratio, not 0.
        self._last_cpu = _CpuMark(cgroup.read_cpu(self._root), clock())
        # Own cpu_times() baseline rather than psutil.cpu_percent(), whose baseline is
        # module-global and would be reset by any other caller in the process.
        self._last_host_cpu = _host_cpu_times()

    async def run(self) -> Report:
        elapsed = self._clock() - self._last_cpu.at
        if elapsed < MIN_CPU_WINDOW:
            # A window of a few milliseconds (the first run right after start-up, or
            # `probe check`) measures scheduler ticks, not load: let it grow first.
            await asyncio.sleep(MIN_CPU_WINDOW - elapsed)
        disk_samples, failures = self._disk_samples()
        samples = [*self._cpu_samples(), *self._memory_samples(), *disk_samples]
        return Report(samples=samples, failure="; ".join(failures))

    # ------------------------------------------------------------ cpu

    def _cpu_samples(self) -> list[Sample]:
        host_ratio = self._host_cpu_ratio()
        host = Sample("host_cpu", host_ratio, Unit.RATIO, "cpu", HOST)
        previous = self._last_cpu
        current = _CpuMark(cgroup.read_cpu(self._root), self._clock())
        if current.at > previous.at or previous.reading is None:
            self._last_cpu = current
        if current.reading is None:
            return [Sample("cpu", host_ratio, Unit.RATIO, "cpu", HOST), host]
        ratio, why_unknown = _cpu_ratio(previous, current.reading, current.at)
        note = current.reading.source + (f": {why_unknown}" if why_unknown else "")
        return [Sample("cpu", ratio, Unit.RATIO, "cpu", note), host]

    def _host_cpu_ratio(self) -> float | None:
        total_before, idle_before = self._last_host_cpu
        total_now, idle_now = _host_cpu_times()
        total = total_now - total_before
        if total <= 0:  # within one clock tick of the last run: keep the older baseline
            return None
        self._last_host_cpu = (total_now, idle_now)
        busy = total - (idle_now - idle_before)
        return min(1.0, max(0.0, busy / total))

    # ------------------------------------------------------------ memory

    def _memory_samples(self) -> list[Sample]:
        host_total, host_used = _host_memory()
        reading = cgroup.read_memory(self._root)
        samples = _container_memory_samples(reading, host_used, host_total)
        samples += [
            Sample("host_memory", host_used / host_total, Unit.RATIO, "memory", HOST),
            Sample("host_memory_bytes", host_used, Unit.BYTES, "memory", HOST),
            Sample("host_memory_limit_bytes", host_total, Unit.BYTES, "memory", HOST),
        ]
        if reading is not None and reading.oom_kills is not None:
            kills = Sample("oom_kills", reading.oom_kills, Unit.COUNT, "memory", reading.source)
            samples.append(kills)
        return samples

    # ------------------------------------------------------------ disk

    def _disk_samples(self) -> tuple[list[Sample], list[str]]:
        samples: list[Sample] = []
        failures: list[str] = []
        for path in self.config.disk_paths:
            ratio, problem = _disk_ratio(path)
            samples.append(Sample("disk", ratio, Unit.RATIO, path, problem))
            if problem:
                failures.append(f"disk {path}: {problem}")
        return samples, failures


def _cpu_ratio(previous: _CpuMark, reading: CpuReading, now: float) -> tuple[float | None, str]:
    """Cores used since the previous reading over the cores this cgroup may use."""
    before = previous.reading
    if before is None or before.source != reading.source:
        return None, "no earlier sample to compare with"
    elapsed = now - previous.at
    used = reading.usage_seconds - before.usage_seconds
    if elapsed <= 0:
        return None, "no time has passed since the last sample"
    if used < 0:
        return None, "usage counter went backwards"
    # CFS lets a burst overshoot the quota within a period; the ratio stays a ratio.
    return min(used / elapsed / allowed_cores(reading), 1.0), ""


def allowed_cores(reading: CpuReading) -> float:
    """The CPU quota, capped by the CPUs this process may run on (cpuset / affinity)."""
    cpus = float(len(os.sched_getaffinity(0)))
    return min(reading.limit_cores, cpus) if reading.limit_cores else cpus


def _container_memory_samples(
    reading: MemoryReading | None, host_used: int, host_total: int
) -> list[Sample]:
    if reading is None:
        used, limit, source, limit_note = host_used, host_total, HOST, HOST
    else:
        used, source = reading.working_set_bytes, reading.source
        limit = reading.limit_bytes or host_total
        limit_note = source if reading.limit_bytes else f"{source}: no limit, host total"
    return [
        Sample("memory", used / limit, Unit.RATIO, "memory", source),
        Sample("memory_bytes", used, Unit.BYTES, "memory", source),
        Sample("memory_limit_bytes", limit, Unit.BYTES, "memory", limit_note),
    ]


def _host_cpu_times() -> tuple[float, float]:
    """(total, idle) CPU seconds of the whole host, counted the way psutil.cpu_percent does:
    guest time is already inside user/nice, and iowait is idle time."""
    times = psutil.cpu_times()
    guest = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    total = float(sum(times)) - guest
    idle = float(times.idle + getattr(times, "iowait", 0.0))
    return total, idle


def _host_memory() -> tuple[int, int]:
    """(total, used) bytes of host memory. Used is total minus MemAvailable: what the
    kernel cannot hand out without swapping, the host's counterpart of a working set."""
    memory = psutil.virtual_memory()
    total, available = int(memory.total), int(memory.available)
    return total, total - available


def _disk_ratio(path: str) -> tuple[float | None, str]:
    """Share used the way `df` shows it: space reserved for root counts as unavailable."""
    try:
        stat = os.statvfs(path)
    except OSError as exc:
        return None, (exc.strerror or "cannot read").lower()
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    usable = used + stat.f_bavail * stat.f_frsize
    return (used / usable if usable > 0 else 0.0), ""
