"""The `system` check against cgroup fixture trees (exact figures) and this machine (real ones)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from probe.checks import cgroup
from probe.checks.system import SystemCheck, SystemConfig, allowed_cores
from probe.contract.config import ConfigError, load_config
from probe.contract.plugin import Report
from probe.core.model import Sample, Status
from probe.engine.factory import build_runner
from tests.support import HandClock

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"
REAL_ROOT = Path("/sys/fs/cgroup")
WriteConfig = Callable[[str], Path]


def tree(name: str, tmp_path: Path) -> Path:
    """A private copy of a fixture tree, so a test can change usage between samples."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


def system_check(
    root: Path, clock: HandClock | None = None, disk_paths: tuple[str, ...] = ()
) -> SystemCheck:
    config = SystemConfig(
        name="system", type="system", cgroup_root=str(root), disk_paths=list(disk_paths)
    )
    return SystemCheck(config, clock=clock) if clock else SystemCheck(config)


def by_key(report: Report) -> dict[tuple[str, str], Sample]:
    return {(s.component, s.measure): s for s in report.samples}


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def cpus() -> int:
    return len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- fixture trees: exact figures


async def test_cgroup_v2_with_limits(tmp_path: Path) -> None:
    root = tree("v2-limited", tmp_path)
    clock = HandClock(100.0)
    check = system_check(root, clock)  # first CPU sample: usage_usec 1000000 at t=100
    replace_line(root / "cpu.stat", "usage_usec 1000000", "usage_usec 1250000")
    clock.now = 101.0

    samples = by_key(await check.run())

    # 0.25 s of CPU in 1 s of wall time, against a quota of 0.5 cores (50000/100000).
    assert samples["cpu", "cpu"].value == pytest.approx(0.5)
    assert samples["cpu", "cpu"].note == "cgroup v2"
    # Working set 220 MiB - 30 MiB inactive file = 190 MiB, of a 512 MiB limit.
    assert samples["memory", "memory_bytes"].value == 199_229_440
    assert samples["memory", "memory_limit_bytes"].value == 536_870_912
    assert samples["memory", "memory"].value == pytest.approx(199_229_440 / 536_870_912)
    assert samples["memory", "memory"].note == "cgroup v2"
    assert samples["memory", "oom_kills"].value == 2


async def test_cgroup_v2_without_limits_uses_cpus_and_host_memory(tmp_path: Path) -> None:
    root = tree("v2-unlimited", tmp_path)
    clock = HandClock(50.0)
    check = system_check(root, clock)
    replace_line(root / "cpu.stat", "usage_usec 5000000", "usage_usec 6000000")
    clock.now = 52.0

    samples = by_key(await check.run())

    # 1 s of CPU over 2 s is half a core; with `cpu.max` = `max` the limit is the CPUs we may use.
    assert samples["cpu", "cpu"].value == pytest.approx(0.5 / cpus())
    host_total = psutil.virtual_memory().total
    assert samples["memory", "memory_bytes"].value == 104_857_600 - 4_194_304
    assert samples["memory", "memory_limit_bytes"].value == host_total
    assert samples["memory", "memory_limit_bytes"].note == "cgroup v2: no limit, host total"
    assert samples["memory", "memory"].value == pytest.approx(100_663_296 / host_total)
    assert samples["memory", "oom_kills"].value == 0


async def test_cgroup_v1_with_limits(tmp_path: Path) -> None:
    root = tree("v1-limited", tmp_path)
    clock = HandClock(10.0)
    check = system_check(root, clock)
    (root / "cpuacct" / "cpuacct.usage").write_text("3250000000\n")
    clock.now = 11.0

    samples = by_key(await check.run())

    # 0.25 s (in ns) over 1 s, against a quota of 25000/50000 = 0.5 cores.
    assert samples["cpu", "cpu"].value == pytest.approx(0.5)
    assert samples["cpu", "cpu"].note == "cgroup v1"
    # total_inactive_file (this cgroup and its children) counts, not the local inactive_file.
    assert samples["memory", "memory_bytes"].value == 805_306_368 - 268_435_456
    assert samples["memory", "memory"].value == pytest.approx(0.5)
    assert samples["memory", "memory"].note == "cgroup v1"
    assert samples["memory", "oom_kills"].value == 0


async def test_cgroup_v1_sentinels_mean_no_limit(tmp_path: Path) -> None:
    # Co-mounted `cpu,cpuacct` directory, quota -1, limit 9223372036854771712, older kernel
    # without oom_kill in memory.oom_control.
    root = tree("v1-unlimited", tmp_path)
    clock = HandClock(0.0)
    check = system_check(root, clock)
    (root / "cpu,cpuacct" / "cpuacct.usage").write_text("8500000000\n")
    clock.now = 3.0

    samples = by_key(await check.run())

    assert samples["cpu", "cpu"].value == pytest.approx(1.5 / 3.0 / cpus())
    host_total = psutil.virtual_memory().total
    assert samples["memory", "memory_limit_bytes"].value == host_total
    assert samples["memory", "memory"].value == pytest.approx(
        (460_324_864 - 114_745_344) / host_total
    )
    assert ("memory", "oom_kills") not in samples


async def test_cgroup_v1_limit_set_on_a_parent_counts(tmp_path: Path) -> None:
    """A pod-level limit shows in the container as hierarchical_memory_limit."""
    root = tree("v1-unlimited", tmp_path)
    stat = root / "memory" / "memory.stat"
    replace_line(
        stat,
        "hierarchical_memory_limit 9223372036854771712",
        "hierarchical_memory_limit 1073741824",
    )

    samples = by_key(await system_check(root).run())

    assert samples["memory", "memory_limit_bytes"].value == 1_073_741_824
    assert samples["memory", "memory"].value == pytest.approx(345_579_520 / 1_073_741_824)


@pytest.mark.parametrize("name", ["v2-limited", "v1-limited"])
async def test_memory_stat_key_order_does_not_matter(name: str, tmp_path: Path) -> None:
    root = tree(name, tmp_path)
    stat = root / "memory.stat" if name.startswith("v2") else root / "memory" / "memory.stat"
    before = by_key(await system_check(root).run())["memory", "memory_bytes"].value

    stat.write_text("\n".join(reversed(stat.read_text().splitlines())) + "\n")
    after = by_key(await system_check(root).run())["memory", "memory_bytes"].value

    assert after == before


async def test_no_cgroup_files_falls_back_to_the_host(tmp_path: Path) -> None:
    samples = by_key(await system_check(tmp_path).run())

    for measure in ("cpu", "host_cpu"):
        assert samples["cpu", measure].note == "host"
    assert samples["cpu", "cpu"].value == samples["cpu", "host_cpu"].value
    assert samples["memory", "memory"].note == "host"
    assert samples["memory", "memory"].value == samples["memory", "host_memory"].value
    assert samples["memory", "memory_limit_bytes"].value == psutil.virtual_memory().total
    assert ("memory", "oom_kills") not in samples


async def test_unreadable_file_falls_through_to_the_next_source(tmp_path: Path) -> None:
    root = tree("v2-limited", tmp_path)
    (root / "memory.current").write_text("garbage\n")
    (root / "cpu.max").unlink()

    samples = by_key(await system_check(root).run())

    assert samples["memory", "memory"].note == "host"
    # cpu.stat is still there; only the quota is gone, so the limit is the CPUs we may use.
    assert samples["cpu", "cpu"].note == "cgroup v2"
    assert cgroup.read_cpu(root) == cgroup.CpuReading("cgroup v2", 1.0, None)


async def test_cpu_counter_going_backwards_is_unknown_not_negative(tmp_path: Path) -> None:
    root = tree("v2-limited", tmp_path)
    clock = HandClock(100.0)
    check = system_check(root, clock)
    replace_line(root / "cpu.stat", "usage_usec 1000000", "usage_usec 10")
    clock.now = 101.0

    cpu = by_key(await check.run())["cpu", "cpu"]

    assert cpu.value is None
    assert cpu.note == "cgroup v2: usage counter went backwards"


async def test_warn_threshold_from_yaml_reads_well(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    root = tree("v2-limited", tmp_path)
    path = write_config(
        f"checks:\n  - name: system\n    type: system\n    cgroup_root: {root}\n"
        "    warn: {memory: 1%}\n    fail: {memory: 95%}\n"
    )
    runner = build_runner(load_config(path, environ={}).checks[0])

    result = await runner.run()

    assert result.status is Status.WARN
    assert result.output == "memory 37% > 1%"
    judged = {(o.component, o.measure): o for o in result.observations}
    assert judged["memory", "memory"].status is Status.WARN
    assert judged["memory", "host_memory"].status is Status.PASS  # informational only


def test_thresholds_only_on_cpu_memory_and_disk(write_config: WriteConfig) -> None:
    path = write_config(
        "checks:\n  - name: system\n    type: system\n    warn: {host_memory: 50%}\n"
        "    disk_paths: [data]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    problems = "\n".join(caught.value.problems)
    assert (
        "checks[0].warn: unknown measure 'host_memory' (known: cpu, disk, error_rate, memory"
        in problems
    )
    assert "checks[0].disk_paths: expected absolute paths like /data, got 'data'" in problems


# ---------------------------------------------------------------- this machine


def kernel_memory_bytes(source: str) -> int:
    """The working set as the kernel reports it, read here independently of probe."""
    if source == "cgroup v2":
        stat = dict(line.split() for line in (REAL_ROOT / "memory.stat").read_text().splitlines())
        return int((REAL_ROOT / "memory.current").read_text()) - int(stat["inactive_file"])
    if source == "cgroup v1":
        memory = REAL_ROOT / "memory"
        stat = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
        return int((memory / "memory.usage_in_bytes").read_text()) - int(
            stat["total_inactive_file"]
        )
    meminfo = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    kib = {key: int(value.split()[0]) for key, value in meminfo.items()}
    return (kib["MemTotal"] - kib["MemAvailable"]) * 1024


async def test_real_machine_reports_its_source_and_true_memory() -> None:
    samples = by_key(await system_check(REAL_ROOT).run())

    source = samples["memory", "memory"].note.partition(":")[0]
    assert source in ("cgroup v2", "cgroup v1", "host")
    assert samples["cpu", "cpu"].note.partition(":")[0] in ("cgroup v2", "cgroup v1", "host")
    reported = samples["memory", "memory_bytes"].value
    assert reported == pytest.approx(kernel_memory_bytes(source), rel=0.10)
    ratio = samples["memory", "memory"].value
    assert ratio is not None and 0 < ratio < 1


async def test_real_machine_memory_threshold(write_config: WriteConfig) -> None:
    path = write_config("checks:\n  - name: system\n    type: system\n    warn: {memory: 0.1%}\n")
    runner = build_runner(load_config(path, environ={}).checks[0])

    result = await runner.run()

    assert result.status is Status.WARN
    assert re.fullmatch(r"memory \d+(\.\d)?% > 0\.1%", result.output), result.output


async def test_busy_process_raises_the_cpu_ratio() -> None:
    check = system_check(REAL_ROOT)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        await asyncio.sleep(1.5)
        samples = by_key(await check.run())
    finally:
        busy.kill()
        busy.wait(5)

    # One busy process is one core: half of this 2-CPU machine, all of a 1-core quota.
    reading = cgroup.read_cpu(REAL_ROOT)
    cores = allowed_cores(reading) if reading else float(psutil.cpu_count() or 1)
    cpu = samples["cpu", "cpu"].value
    assert cpu is not None and cpu > 0.6 * min(1.0, 1 / cores)
    host_cpu = samples["cpu", "host_cpu"].value
    assert host_cpu is not None and host_cpu > 0.6 / (psutil.cpu_count() or 1)


async def test_disk_ratio_matches_df(tmp_path: Path) -> None:
    samples = by_key(await system_check(REAL_ROOT, disk_paths=(str(tmp_path),)).run())

    df = subprocess.run(
        ["df", "--output=pcent", str(tmp_path)], capture_output=True, text=True, check=True
    )
    df_percent = int(df.stdout.splitlines()[1].strip().rstrip("%"))
    ratio = samples[str(tmp_path), "disk"].value
    assert ratio is not None
    # df rounds up to a whole percent.
    assert df_percent - 1 <= ratio * 100 <= df_percent


async def test_missing_disk_path_fails_and_still_reports_cpu_and_memory(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        "checks:\n  - name: system\n    type: system\n    disk_paths: [/no/such/volume]\n"
        "    warn: {disk: 80%}\n"
    )
    runner = build_runner(load_config(path, environ={}).checks[0])

    result = await runner.run()

    assert result.status is Status.FAIL
    assert result.output == "disk /no/such/volume: no such file or directory"
    measures = {(o.component, o.measure) for o in result.observations}
    assert {("cpu", "cpu"), ("memory", "memory"), ("/no/such/volume", "disk")} <= measures


async def test_run_with_no_time_passed_keeps_the_earlier_baseline(tmp_path: Path) -> None:
    root = tree("v2-limited", tmp_path)
    clock = HandClock(100.0)
    check = system_check(root, clock)

    stalled = by_key(await check.run())["cpu", "cpu"]
    replace_line(root / "cpu.stat", "usage_usec 1000000", "usage_usec 1500000")
    clock.now = 102.0
    later = by_key(await check.run())["cpu", "cpu"]

    assert stalled.value is None
    assert stalled.note == "cgroup v2: no time has passed since the last sample"
    # 0.5 s over the 2 s since the start-up sample, against 0.5 cores.
    assert later.value == pytest.approx(0.5)
