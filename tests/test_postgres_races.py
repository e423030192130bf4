"""The seed's two PostgreSQL races and their fixes, each forced 20 times on a real server."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import psycopg2
import pytest

from _examples import load_example, run_example
from frontrun.common import Step
from frontrun.trace_markers import ScheduleDeadlockError

races = load_example("postgres_races")
RUNS = 20
SEED_RUNS = 50


def test_seed_four_step_schedule_verbatim_gives_1200_every_time(pg_dsn: str) -> None:
    assert races.SEED_SCHEDULE == [
        Step("txn_a", "pg_select"),
        Step("txn_b", "pg_select"),
        Step("txn_a", "pg_update"),
        Step("txn_b", "pg_update"),
    ]
    for _ in range(SEED_RUNS):
        out = races.run_lost_update(pg_dsn)
        assert (out.read_a, out.read_b) == (1000, 1000)
        assert out.b_after_update == 1200
        assert out.final == 1200, "Txn B's UPDATE must overwrite Txn A's"
        assert out.as_expected


def test_seed_schedule_with_psycopg3_gives_1200(pg_dsn: str) -> None:
    for _ in range(RUNS):
        out = races.run_lost_update(pg_dsn, driver=psycopg)
        assert (out.read_a, out.read_b, out.final) == (1000, 1000, 1200)


@pytest.mark.parametrize("driver", [psycopg2, psycopg], ids=["psycopg2", "psycopg3"])
def test_for_update_fix_gives_1300_every_time(pg_dsn: str, driver: Any) -> None:
    # The seed's schedule again: Txn B's SELECT ... FOR UPDATE blocks on the
    # row lock of the paused Txn A; the server says so, and the turn passes.
    for _ in range(RUNS):
        out = races.run_lost_update(pg_dsn, for_update=True, driver=driver)
        assert out.read_a == 1000
        assert out.read_b == 1100, "Txn B must wait for Txn A's lock and read its commit"
        assert out.final == 1300
        assert out.as_expected


def test_row_lock_wait_on_a_paused_thread_is_reported_at_once(pg_dsn: str) -> None:
    # Txn B's SELECT ... FOR UPDATE blocks on the paused Txn A, and no step is
    # left that Txn A could take: no thread can run. wait() says so at once,
    # naming the statement, the lock holder and where each thread stands.
    threads_before = threading.active_count()
    schedule = [Step("txn_a", "pg_select"), Step("txn_b", "pg_select"), Step("txn_b", "pg_update")]
    started = time.monotonic()
    with pytest.raises(ScheduleDeadlockError) as info:
        races.run_lost_update(pg_dsn, for_update=True, schedule=schedule, timeout=30.0)
    assert time.monotonic() - started < 10.0, "raised long before the wait timeout"
    msg = str(info.value)
    assert 'pending step 3 Step("txn_b", "pg_update")' in msg
    assert "txn_b: blocked in psycopg2 execute()" in msg
    assert "FOR UPDATE" in msg
    assert 'waiting for the row lock of "txn_a" (backend ' in msg
    assert 'txn_a: paused before marker "pg_update" at ' in msg
    assert "postgres_races.py:" in msg
    deadline = time.monotonic() + 10.0
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads_before, "executor threads outlived the run"
    # Nothing is left holding the row: a normal run works right after.
    assert races.run_lost_update(pg_dsn, for_update=True).final == 1300


def test_deadlock_with_markers_alone_every_time(pg_dsn: str) -> None:
    for _ in range(SEED_RUNS):
        started = time.monotonic()
        out = races.run_deadlock_with_markers(pg_dsn)
        # The server's deadlock_timeout (50 ms here) is all that is waited.
        assert time.monotonic() - started < 5.0
        assert len(out.deadlocks) == 1, out
        assert len(out.committed) == 1 and set(out.committed) != set(out.deadlocks)
        victim = out.deadlocks[0]
        assert out.errors[victim].startswith("deadlock detected\nDETAIL:  Process ")
        assert "while locking tuple" in out.errors[victim]
        expected = {"txn1": {"alice": 900, "bob": 1100}, "txn2": {"alice": 1050, "bob": 950}}
        assert out.balances == expected[out.committed[0]]
        assert out.as_expected


def test_deadlock_reproduces_every_time(pg_dsn: str) -> None:
    for _ in range(RUNS):
        out = races.run_deadlock(pg_dsn)
        assert out.victim_pinned, "the throwaway server's user is a superuser"
        assert out.deadlocks == ["txn2"]
        assert out.committed == ["txn1"]
        assert out.errors["txn2"].startswith("deadlock detected\nDETAIL:  Process ")
        assert "while locking tuple" in out.errors["txn2"]
        # Only Txn1's transfer of 100 happened.
        assert out.balances == {"alice": 900, "bob": 1100}
        assert out.as_expected


def test_consistent_lock_order_never_deadlocks(pg_dsn: str) -> None:
    for _ in range(RUNS):
        out = races.run_lock_order_fix(pg_dsn)
        assert out.errors == {} and out.deadlocks == []
        assert sorted(out.committed) == ["txn1", "txn2"]
        assert out.balances == {"alice": 950, "bob": 1050}
        assert out.as_expected


def test_script_prints_the_seed_trace_and_exits_0(pg_dsn: str) -> None:
    res = run_example("postgres_races", dsn=pg_dsn)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for line in [
        "=" * 70,
        "Race 1: Lost Update  (TraceExecutor + psycopg2 + Postgres)",
        "  SQL pattern (READ COMMITTED, no FOR UPDATE):",
        "  Expected result : 1000 + 100 + 200 = 1300",
        "  Txn B's read (after its own UPDATE)      : 1200",
        "  Actual final balance in DB               : 1200  (expected 1300)",
        "  LOST UPDATE confirmed: balance is 1200, not 1300.",
        "  Both transactions read 1000 before either wrote back.",
        "Race 2: Deadlock  (threading.Event coordination + psycopg2 + Postgres)",
        "Race 2, again: Deadlock  (Schedule only, no Events + psycopg2 + Postgres)",
        "  DEADLOCK confirmed with markers alone: Postgres aborted one transaction;",
        "  txn2 received Postgres error:",
        "    deadlock detected",
        "    HINT:  See server log for query details.",
        "  DEADLOCK confirmed: Postgres aborted one transaction and rolled",
        "  FIX confirmed: balance is 1300; Txn B read Txn A's committed write.",
        "  FIX confirmed: no deadlock; both transfers committed.",
        "5 of 5 outcomes as expected",
    ]:
        assert line in out.splitlines(), f"missing line {line!r} in:\n{out}"
    assert "UNEXPECTED" not in out


@pytest.mark.parametrize("broken", ["lost", "deadlock"])
def test_outcome_checks_reject_wrong_results(broken: str) -> None:
    # The exit code is only as honest as `as_expected`: it must refuse other results.
    if broken == "lost":
        out = races.LostUpdateOutcome(
            for_update=False, read_a=1000, read_b=1100, b_after_update=1300, final=1300
        )
    else:
        out = races.DeadlockOutcome(fixed=False, committed=["txn1", "txn2"], victim_pinned=True)
    assert not out.as_expected
