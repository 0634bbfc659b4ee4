"""Pure readers of the cgroup files a container's CPU and memory figures come from.

Each reader returns None when its files are missing or unreadable, so the caller can
fall through to the next source (cgroup v2, then v1, then the host). File formats:
Linux Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/{memory,cpuacct}.rst.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_V2 = "cgroup v2"
CGROUP_V1 = "cgroup v1"

# v1 says "no limit" with LONG_MAX rounded down to a page (9223372036854771712 on x86-64);
# no real limit comes anywhere near 2**62 bytes.
V1_UNLIMITED_FROM = 2**62

# v1 controllers may be mounted alone or co-mounted under a combined directory name.
_V1_CPUACCT_DIRS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


@dataclass(frozen=True, slots=True)
class CpuReading:
    source: str
    usage_seconds: float  # CPU time the cgroup has used since it was created
    limit_cores: float | None  # quota / period; None when there is no quota


@dataclass(frozen=True, slots=True)
class MemoryReading:
    source: str
    usage_bytes: int  # includes page cache
    inactive_file_bytes: int
    limit_bytes: int | None  # None when there is no limit
    oom_kills: int | None  # None when the kernel does not report it

    @property
    def working_set_bytes(self) -> int:
        """Usage without the cache the kernel can drop at once (inactive file pages), as
        cAdvisor and `docker stats` report it."""
        return max(0, self.usage_bytes - self.inactive_file_bytes)


def read_cpu(root: Path) -> CpuReading | None:
    return read_cpu_v2(root) or read_cpu_v1(root)


def read_memory(root: Path) -> MemoryReading | None:
    return read_memory_v2(root) or read_memory_v1(root)


def is_v2(root: Path) -> bool:
    return (root / "cgroup.controllers").is_file()


# ---------------------------------------------------------------- cgroup v2


def read_cpu_v2(root: Path) -> CpuReading | None:
    if not is_v2(root):
        return None
    usage_usec = (read_keyed(root / "cpu.stat") or {}).get("usage_usec")
    if usage_usec is None:
        return None
    return CpuReading(CGROUP_V2, usage_usec / 1e6, _cpu_max_cores(root / "cpu.max"))


def read_memory_v2(root: Path) -> MemoryReading | None:
    if not is_v2(root):
        return None
    # The root cgroup of a v2 host has no memory.current; the host source covers that case.
    usage = read_int(root / "memory.current")
    if usage is None:
        return None
    stat = read_keyed(root / "memory.stat") or {}
    events = read_keyed(root / "memory.events") or {}
    return MemoryReading(
        source=CGROUP_V2,
        usage_bytes=usage,
        inactive_file_bytes=stat.get("inactive_file", 0),
        limit_bytes=_memory_max(root / "memory.max"),
        oom_kills=events.get("oom_kill"),
    )


def _cpu_max_cores(path: Path) -> float | None:
    """`cpu.max` is `$MAX $PERIOD`; `max` means no quota."""
    fields = (read_text(path) or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _memory_max(path: Path) -> int | None:
    limit = read_int(path)  # `max` (no limit) does not parse as an int
    return limit if limit is not None and limit > 0 else None


# ---------------------------------------------------------------- cgroup v1


def read_cpu_v1(root: Path) -> CpuReading | None:
    usage_ns = _first_int(root, _V1_CPUACCT_DIRS, "cpuacct.usage")
    if usage_ns is None:
        return None
    quota = _first_int(root, _V1_CPU_DIRS, "cpu.cfs_quota_us")
    period = _first_int(root, _V1_CPU_DIRS, "cpu.cfs_period_us")
    cores = quota / period if quota and period and quota > 0 and period > 0 else None
    return CpuReading(CGROUP_V1, usage_ns / 1e9, cores)


def read_memory_v1(root: Path) -> MemoryReading | None:
    memory = root / "memory"
    usage = read_int(memory / "memory.usage_in_bytes")
    if usage is None:
        return None
    stat = read_keyed(memory / "memory.stat") or {}
    # total_* includes child cgroups, like usage_in_bytes does.
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    # A limit set on a parent (a pod-level limit) shows as hierarchical_memory_limit.
    limits = [read_int(memory / "memory.limit_in_bytes"), stat.get("hierarchical_memory_limit")]
    real_limits = [v for v in limits if v is not None and 0 < v < V1_UNLIMITED_FROM]
    oom = read_keyed(memory / "memory.oom_control") or {}
    return MemoryReading(
        source=CGROUP_V1,
        usage_bytes=usage,
        inactive_file_bytes=inactive,
        limit_bytes=min(real_limits) if real_limits else None,
        oom_kills=oom.get("oom_kill"),
    )


def _first_int(root: Path, dirs: tuple[str, ...], name: str) -> int | None:
    for directory in dirs:
        value = read_int(root / directory / name)
        if value is not None:
            return value
    return None


# ---------------------------------------------------------------- file formats


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: Path) -> int | None:
    """A file holding one integer, like `memory.current`."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int] | None:
    """A flat-keyed file of `key value` lines (`cpu.stat`, `memory.stat`, `memory.events`),
    in whatever order the kernel writes them."""
    text = read_text(path)
    if text is None:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("-").isdigit():
            values[fields[0]] = int(fields[1])
    return values
