"""The seed's two PostgreSQL races and their fixes, each forced 20 times on a real server."""

from __future__ import annotations

import threading
import time

import pytest

from _examples import load_example, run_example

races = load_example("postgres_races")
RUNS = 20


def test_lost_update_reproduces_every_time(pg_dsn: str) -> None:
    for _ in range(RUNS):
        out = races.run_lost_update(pg_dsn)
        assert (out.read_a, out.read_b) == (1000, 1000)
        assert out.b_after_update == 1200
        assert out.final == 1200, "Txn B's UPDATE must overwrite Txn A's"
        assert out.as_expected


def test_seed_four_step_schedule_verbatim_always_loses_an_update(pg_dsn: str) -> None:
    # Without the 5th step the two UPDATEs race for the row lock: either may win,
    # but both transactions read 1000 first, so 1300 is never reached.
    for _ in range(RUNS):
        out = races.run_lost_update(pg_dsn, schedule=races.SEED_SCHEDULE)
        assert (out.read_a, out.read_b) == (1000, 1000)
        assert out.final in (1100, 1200)


def test_for_update_fix_gives_1300_every_time(pg_dsn: str) -> None:
    for _ in range(RUNS):
        out = races.run_lost_update(pg_dsn, for_update=True)
        assert out.read_a == 1000
        assert out.read_b == 1100, "Txn B must wait for Txn A's lock and read its commit"
        assert out.final == 1300
        assert out.as_expected


def test_seed_schedule_with_for_update_reports_the_stuck_turn(pg_dsn: str) -> None:
    # Step 4 asks Txn B to reach its UPDATE, but B blocks in SELECT ... FOR UPDATE
    # on the row lock of Txn A, which is paused: a clear error, never a hang.
    threads_before = threading.active_count()
    with pytest.raises(TimeoutError) as info:
        races.run_lost_update(pg_dsn, for_update=True, schedule=races.SEED_SCHEDULE, timeout=2.0)
    msg = str(info.value)
    assert 'Step("txn_b", "pg_update")' in msg
    assert "postgres_races.py:" in msg
    deadline = time.monotonic() + 10.0
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads_before, "executor threads outlived the run"
    # Nothing is left holding the row: a normal run works right after.
    assert races.run_lost_update(pg_dsn, for_update=True).final == 1300


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
        "  txn2 received Postgres error:",
        "    deadlock detected",
        "    HINT:  See server log for query details.",
        "  DEADLOCK confirmed: Postgres aborted one transaction and rolled",
        "  FIX confirmed: balance is 1300; Txn B read Txn A's committed write.",
        "  FIX confirmed: no deadlock; both transfers committed.",
        "4 of 4 outcomes as expected",
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
