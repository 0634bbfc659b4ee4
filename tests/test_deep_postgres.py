"""The postgres check's deep measures (docs/checks/postgres.md) against a throw-away cluster
where each condition is made real: open transactions, lock waiters, deadlocks, rollbacks, a logical
replication slot, a restart, full connection slots, PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from probe.checks.postgres import PostgresConfig
from probe.core.model import CheckResult, Observation, Status
from probe.engine.runner import CheckRunner
from tests.conftest import MakeRunner, Runners
from tests.deep_servers import APP, MONITOR, PLAIN, DeepCluster
from tests.faultproxy import FaultProxy

pytest_plugins = ["tests.deep_servers"]

DURATION = r"(?:\d+ms|\d+(?:\.\d)?s)"  # 80ms, 1.2s, 3s


@pytest.fixture
def make_runner(runners: Runners) -> MakeRunner:
    return runners.maker(PostgresConfig, name="database", type="postgres", timeout=5)


def obs(result: CheckResult, measure: str) -> Observation:
    found = [o for o in result.observations if o.measure == measure]
    assert found, f"no {measure} in {[o.measure for o in result.observations]}"
    return found[0]


def values(result: CheckResult) -> dict[str, float | None]:
    return {o.measure: o.value for o in result.observations}


@pytest.fixture
async def sessions(deep_pg: DeepCluster) -> AsyncIterator[Callable[..., Any]]:
    """`await sessions(role, app_name)`: sessions closed after the test."""
    opened: list[asyncpg.Connection] = []

    async def open_session(role: str = APP, app_name: str = "deep-test") -> asyncpg.Connection:
        conn = await deep_pg.connect(role, app_name)
        opened.append(conn)
        return conn

    yield open_session
    for conn in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 5)


async def run_until(
    runner: CheckRunner, done: Callable[[CheckResult], bool], timeout: float = 15.0
) -> CheckResult:
    """Runs again until `done` (statistics reach pg_stat_database within about a second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    result = await runner.run()
    while not done(result):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {result.output!r} {values(result)}")
        await asyncio.sleep(0.2)
        result = await runner.run()
    return result


# ---------------------------------------------------------------- defaults and a quiet primary


async def test_a_server_first_seen_young_passes(
    make_runner: MakeRunner, deep_pg: DeepCluster
) -> None:
    """The whole stack may just have been deployed: a young server is no news."""
    result = await make_runner(dsn=deep_pg.dsn(MONITOR)).run()

    assert result.status is Status.PASS, result.output
    assert result.output == ""
    uptime = values(result)["uptime"]
    assert uptime is not None and uptime >= 0
    assert values(result)["restarts"] == 0


async def test_replica_less_primary_reports_every_measure_and_no_lag(
    make_runner: MakeRunner, deep_pg: DeepCluster
) -> None:
    result = await make_runner(dsn=deep_pg.dsn(MONITOR)).run()

    assert result.status is Status.PASS
    assert result.output == ""
    found = values(result)
    assert "replication_lag" not in found  # a primary has no replication lag
    assert found["longest_transaction"] == 0
    assert found["idle_in_transaction"] == 0
    assert found["lock_waiters"] == 0
    assert found["inactive_slots"] == 0
    assert found["slot_retained_bytes"] == 0
    assert obs(result, "slot_retained_bytes").note == "no replication slots"
    wraparound = found["wraparound"]
    assert wraparound is not None and 0 < wraparound < 0.001
    assert obs(result, "wraparound").note.startswith('database "')
    # Per-window measures need a second run: no verdict, and never a made-up 0.
    assert found["deadlocks"] is None and found["rollback_ratio"] is None
    assert obs(result, "deadlocks").note == "no earlier run to compare with yet"
    connections = obs(result, "connections")
    assert connections.note.endswith("(max_connections 20 less 3 reserved)")


def test_user_limits_go_over_the_defaults_level_by_level() -> None:
    def limits(**fields: Any) -> tuple[dict[str, str], dict[str, str]]:
        config = PostgresConfig.model_validate(
            {"name": "db", "type": "postgres", "dsn": "postgresql://h/db", **fields}
        )
        warn, fail = config.limits_for("")
        return {m: lim.text for m, lim in warn.items()}, {m: lim.text for m, lim in fail.items()}

    warn, fail = limits()
    assert warn == {
        "restarts": "0",
        "connections": "80%",
        "longest_transaction": "5m",
        "idle_in_transaction": "1m",
        "lock_waiters": "5",
        "deadlocks": "0",
        "wraparound": "50%",
        "inactive_slots": "0",
        "rollback_ratio": "5%",
    }
    assert fail == {
        "connections": "95%",
        "longest_transaction": "30m",
        "idle_in_transaction": "10m",
        "lock_waiters": "20",
        "wraparound": "75%",
    }
    # A user's limit replaces the default of its level; the other level's default stays
    # while it still makes sense beside it.
    warn, fail = limits(warn={"idle_in_transaction": "30s"}, fail={"lock_waiters": 10})
    assert (warn["idle_in_transaction"], fail["idle_in_transaction"]) == ("30s", "10m")
    assert (warn["lock_waiters"], fail["lock_waiters"]) == ("5", "10")
    # `warn: 50` must not fail at the default 20; `fail: 2m` leaves no room for a 5m warn.
    warn, fail = limits(warn={"lock_waiters": 50}, fail={"longest_transaction": "2m"})
    assert warn["lock_waiters"] == "50" and "lock_waiters" not in fail
    assert fail["longest_transaction"] == "2m" and "longest_transaction" not in warn
    # A limit pointing the other way drops both defaults of the measure.
    warn, fail = limits(warn={"wraparound": "<1%"})
    assert warn["wraparound"] == "<1%" and "wraparound" not in fail
    # `response_time`, `error_rate` and `uptime` have no defaults.
    assert "response_time" not in warn and "error_rate" not in fail and "uptime" not in warn
    # `off` switches one default off and keeps every other.
    warn, fail = limits(warn={"deadlocks": "off"}, fail={"connections": False})
    assert "deadlocks" not in warn and warn["connections"] == "80%"
    assert "connections" not in fail and fail["lock_waiters"] == "20"


# ---------------------------------------------------------------- sessions and locks


async def test_pg_monitor_role_sees_another_roles_open_transaction_with_who_it_is(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    worker = await sessions(APP, "botflow-worker")
    await worker.execute("BEGIN; SELECT 1")  # and then nothing: idle in transaction
    await asyncio.sleep(1.2)
    result = await make_runner(
        dsn=deep_pg.dsn(MONITOR),
        warn={"idle_in_transaction": "1s"},
        fail={"longest_transaction": "1s"},
    ).run()

    assert result.status is Status.FAIL
    assert re.fullmatch(
        rf'longest_transaction {DURATION} > 1s \(pid \d+, app "botflow-worker", '
        rf'state "idle in transaction"\); '
        rf'idle_in_transaction {DURATION} > 1s \(pid \d+, app "botflow-worker"\)',
        result.output,
    )
    pid = worker.get_server_pid()
    assert obs(result, "longest_transaction").note == (
        f'pid {pid}, app "botflow-worker", state "idle in transaction"'
    )
    assert obs(result, "idle_in_transaction").note == f'pid {pid}, app "botflow-worker"'


async def test_role_without_pg_monitor_reports_what_it_cannot_see_as_unknown(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    worker = await sessions(APP, "botflow-worker")
    await worker.execute("BEGIN; SELECT 1")
    await asyncio.sleep(1.2)
    by_default = await make_runner(dsn=deep_pg.dsn(PLAIN)).run()
    limited = await make_runner(
        name="limited", dsn=deep_pg.dsn(PLAIN), warn={"idle_in_transaction": "1s"}
    ).run()

    hidden = "1 session of another role is hidden from this role (grant it pg_monitor)"
    for measure in ("longest_transaction", "idle_in_transaction"):
        assert obs(by_default, measure).value is None  # unknown, not 0
        assert obs(by_default, measure).note == hidden
    assert by_default.status is Status.PASS  # a default limit alone does not warn on unknown
    # A limit the user set that cannot be checked warns, and says why.
    assert limited.status is Status.WARN
    assert limited.output == f"idle_in_transaction unknown ({hidden})"


async def test_lock_waiter_is_counted_with_its_blocker_for_any_role(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    holder, waiter = await sessions(APP, "holder"), await sessions(APP, "waiter")
    await holder.execute("BEGIN; UPDATE rows SET id = id WHERE id = 1")
    blocked = asyncio.ensure_future(waiter.execute("UPDATE rows SET id = id WHERE id = 1"))
    try:
        quiet = {"lock_waiters": 0}
        monitor = make_runner(dsn=deep_pg.dsn(MONITOR), warn=quiet)
        plain = make_runner(name="plain", dsn=deep_pg.dsn(PLAIN), warn=quiet)
        seen = await run_until(monitor, lambda r: obs(r, "lock_waiters").value == 1, timeout=5)
        plain_seen = await plain.run()
    finally:
        await holder.execute("ROLLBACK")
        await asyncio.wait_for(blocked, 5)

    assert seen.status is Status.WARN
    blocked_words = f"pid {waiter.get_server_pid()} blocked by pid {holder.get_server_pid()}"
    # The one-line output names the culprit, as the verbose note does.
    assert re.fullmatch(rf"lock_waiters 1 > 0 \(longest \S+: {blocked_words}\)", seen.output)
    assert re.fullmatch(rf"longest \S+: {blocked_words}", obs(seen, "lock_waiters").note)
    # pg_locks is readable by every role: the count is exact without pg_monitor too.
    assert plain_seen.output == f"lock_waiters 1 > 0 ({blocked_words})"
    assert obs(plain_seen, "lock_waiters").note == blocked_words  # no age: hidden


# ---------------------------------------------------------------- per-window counters


async def test_a_real_deadlock_warns_for_the_window_by_default(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    runner = make_runner(dsn=deep_pg.dsn(MONITOR))
    first = await runner.run()
    assert obs(first, "deadlocks").value is None  # the first run has no verdict

    one, two = await sessions(APP, "one"), await sessions(APP, "two")
    await one.execute("BEGIN; UPDATE rows SET id = id WHERE id = 1")
    await two.execute("BEGIN; UPDATE rows SET id = id WHERE id = 2")
    crossing = asyncio.ensure_future(one.execute("UPDATE rows SET id = id WHERE id = 2"))
    await asyncio.sleep(0.2)
    outcomes = await asyncio.gather(
        crossing, two.execute("UPDATE rows SET id = id WHERE id = 1"), return_exceptions=True
    )
    assert any(isinstance(o, asyncpg.DeadlockDetectedError) for o in outcomes)
    for conn in (one, two):
        await conn.execute("ROLLBACK")
        await conn.close()  # an idle backend reports its statistics after 10s; an exiting one now

    result = await run_until(runner, lambda r: obs(r, "deadlocks").value == 1)
    assert result.status is Status.WARN
    # Both transactions rolled back, against a handful of commits: that shows too.
    assert re.fullmatch(r"deadlocks 1 > 0; rollback_ratio \d+% > 5%", result.output)
    assert re.fullmatch(r"in the last \S+", obs(result, "deadlocks").note)


async def test_rollbacks_over_5_percent_warn_by_default(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    runner = make_runner(dsn=deep_pg.dsn(MONITOR))
    await runner.run()
    app = await sessions(APP, "rollbacks")
    for _ in range(40):
        await app.execute("BEGIN; SELECT 1; ROLLBACK")
    await app.close()  # reports its statistics now, not after 10s idle

    def rolled_back(result: CheckResult) -> bool:
        ratio = obs(result, "rollback_ratio").value
        return ratio is not None and ratio > 0.05

    result = await run_until(runner, rolled_back)
    assert result.status is Status.WARN
    assert re.fullmatch(r"rollback_ratio \d+% > 5%", result.output)
    assert re.fullmatch(
        r"\d+ of \d+ transactions in the last \S+", obs(result, "rollback_ratio").note
    )


async def test_a_restart_seen_warns_for_the_restart_window_and_counters_never_go_negative(
    make_runner: MakeRunner, deep_pg: DeepCluster
) -> None:
    runner = make_runner(dsn=deep_pg.dsn(MONITOR), restart_window="2s")
    await runner.run()
    before = await runner.run()
    assert before.status is Status.PASS, before.output
    await asyncio.to_thread(deep_pg.restart)

    after = await runner.run()  # the pooled connection died with the server: one retry
    assert after.status is Status.WARN
    assert re.fullmatch(
        r"restarts 1 > 0 \(restarted at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
        rf"\({DURATION} ago\), 1 in the last 2s\)",
        after.output,
    ), after.output
    uptime_before, uptime_after = values(before)["uptime"], values(after)["uptime"]
    assert uptime_before is not None and uptime_after is not None
    assert uptime_after < uptime_before
    # The statistics restarted from 0: counted as a reset, not as a negative increase.
    for measure in ("deadlocks", "rollback_ratio"):
        value = values(after)[measure]
        assert value is None or value >= 0
    # Once `restart_window` has passed without another restart, it is over.
    await asyncio.sleep(2.1)
    later = await runner.run()
    assert later.status is Status.PASS, later.output
    assert values(later)["restarts"] == 0


# ---------------------------------------------------------------- the cluster


async def test_inactive_logical_slot_warns_and_says_how_much_wal_it_keeps(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    admin = await sessions("postgres", "admin")
    await admin.execute("SELECT pg_create_logical_replication_slot('deep_orphan', 'test_decoding')")
    try:
        # WAL written behind the slot, which nobody consumes.
        await admin.execute("SELECT pg_logical_emit_message(false, 'deep', repeat('x', 2000000))")
        result = await make_runner(dsn=deep_pg.dsn(PLAIN)).run()
    finally:
        await admin.execute("SELECT pg_drop_replication_slot('deep_orphan')")

    assert result.status is Status.WARN
    assert result.output.startswith("inactive_slots 1 > 0 (deep_orphan")
    assert obs(result, "inactive_slots").note == "deep_orphan"
    retained = obs(result, "slot_retained_bytes").value
    assert retained is not None and retained >= 2_000_000


async def test_connections_count_against_the_slots_non_superusers_may_use(
    make_runner: MakeRunner, deep_pg: DeepCluster, sessions: Callable[..., Any]
) -> None:
    # F9: with max_connections 20 the app is refused at 17 connections, 3 being reserved
    # for superusers. probe must say 100% then, not 85%.
    runner = make_runner(dsn=deep_pg.dsn(APP), fail={"connections": "95%"})
    assert (await runner.run()).status is Status.PASS
    refused = ""
    for _ in range(20):
        try:
            await sessions(APP, "filler")
        except asyncpg.TooManyConnectionsError as exc:
            refused = str(exc)
            break
    result = await runner.run()

    assert (
        refused
        == "remaining connection slots are reserved for non-replication superuser connections"
    )
    assert result.status is Status.FAIL
    assert result.output == "connections 100% > 95%"
    assert obs(result, "connections").note.startswith(
        "17 of 17 (max_connections 20 less 3 reserved)"
    )


# ---------------------------------------------------------------- one round trip, poolers


async def test_every_measure_is_read_in_one_round_trip(
    make_runner: MakeRunner,
    deep_pg: DeepCluster,
    round_trips: Callable[[int], asyncio.Future[FaultProxy]],
) -> None:
    proxy = await round_trips(deep_pg.port)
    default = make_runner(dsn=deep_pg.dsn(MONITOR, port=proxy.port))
    await default.run()  # connects: startup and authentication are several round trips
    proxy.reset_counts()
    result = await default.run()
    assert result.status is Status.PASS
    assert proxy.round_trips == 1
    assert len(result.observations) == 12

    custom = make_runner(
        name="custom",
        dsn=deep_pg.dsn(MONITOR, port=proxy.port),
        query="SELECT count(*) FROM pg_class",
    )
    await custom.run()
    proxy.reset_counts()
    assert (await custom.run()).status is Status.PASS
    assert proxy.round_trips == 2  # the user's own query, then the measures


async def test_through_pgbouncer_in_transaction_mode(
    make_runner: MakeRunner, deep_pg: DeepCluster, pgbouncer: int, sessions: Callable[..., Any]
) -> None:
    worker = await sessions(APP, "botflow-worker")
    await worker.execute("BEGIN; SELECT 1")
    dsn = deep_pg.dsn(MONITOR, port=pgbouncer)
    # Two checks at once share PgBouncer's two server connections: nothing may depend on
    # landing on the same one twice.
    plain = make_runner(dsn=dsn, warn={"idle_in_transaction": "1h"})
    custom = make_runner(name="custom", dsn=dsn, query="SELECT 1 + 1")
    for _ in range(3):
        results = await asyncio.gather(plain.run(), custom.run())
        for result in results:
            assert result.status is Status.PASS, result.output
    found = values(results[0])
    idle = found["idle_in_transaction"]
    assert idle is not None and idle > 0  # the app's open transaction, seen through the pooler
    assert obs(results[0], "idle_in_transaction").note.startswith(
        f"pid {worker.get_server_pid()}, "
    )
    assert found["deadlocks"] == 0 and found["inactive_slots"] == 0
