"""The seed's two PostgreSQL races, reproduced on purpose, and their fixes.

    python examples/postgres_races.py
    python examples/postgres_races.py --explore   # found automatically, no markers

Race 1 (lost update) is forced by the seed's 4-step ``TraceExecutor``
schedule over ``# frontrun:`` markers. Race 2 (deadlock) is forced twice: by
the seed's two ``threading.Event``s, and by a ``Schedule`` alone (the
blocked transaction passes the turn; PostgreSQL breaks the cycle). Then
``SELECT ... FOR UPDATE`` and a consistent lock order are shown to fix them
under the same forced interleavings. A throwaway PostgreSQL is started unless
``DATABASE_URL`` (or ``FRONTRUN_DATABASE_URL``) names a server. Exits 0 only if
all four outcomes came out as expected.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors

from frontrun.common import Schedule, Step
from frontrun.testing import postgres_server
from frontrun.trace_markers import TraceExecutor

RULE = "=" * 70
INITIAL = 1000
THREAD_TIMEOUT = 10.0
UPDATE_SQL = "UPDATE accounts SET balance=%s WHERE name='alice'"

# The seed's schedule, verbatim. One thread runs at a time; each step runs
# its thread's marked line and on, alone, to its next marker or its end.
SEED_SCHEDULE = [
    Step("txn_a", "pg_select"),  # pause Txn A just before its SELECT
    Step("txn_b", "pg_select"),  # pause Txn B just before its SELECT
    Step("txn_a", "pg_update"),  # Txn A runs SELECT (reads 1000), pause before UPDATE
    Step("txn_b", "pg_update"),  # Txn B runs SELECT (reads 1000), pause before UPDATE
    # (schedule exhausted) → both run UPDATE + COMMIT freely
]
# With FOR UPDATE the same schedule shows the fix: Txn B's SELECT blocks on
# Txn A's row lock (the server says so), the turn passes to Txn A's UPDATE
# and COMMIT, and Txn B then reads 1100.
FOR_UPDATE_SCHEDULE = SEED_SCHEDULE
# Race 2 with markers only: each transaction locks its first row, then asks
# for the other's. Txn1's second lock blocks (held by the paused Txn2), so the
# turn passes to Txn2, whose second lock closes the cycle.
DEADLOCK_SCHEDULE = [
    Step("txn1", "lock_first"),  # Txn1 locks alice, pauses before locking bob
    Step("txn2", "lock_first"),  # Txn2 locks bob, pauses before locking alice
    Step("txn1", "lock_second"),  # Txn1 asks for bob: blocks, the turn passes
    Step("txn2", "lock_second"),  # Txn2 asks for alice: deadlock
]


def reset_accounts(dsn: str) -> None:
    """(Re)create ``accounts`` with alice and bob at 1000 each."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS accounts (name text PRIMARY KEY, balance integer NOT NULL)"
            )
            cur.execute("TRUNCATE accounts")
            cur.execute(
                "INSERT INTO accounts VALUES ('alice', %s), ('bob', %s)", (INITIAL, INITIAL)
            )
    finally:
        conn.close()


def read_balances(dsn: str) -> dict[str, int]:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT name, balance FROM accounts ORDER BY name")
            return {name: balance for name, balance in cur.fetchall()}
    finally:
        conn.close()


# --------------------------------------------------------------------------- race 1


@dataclass
class LostUpdateOutcome:
    """What one run of the read-modify-write pair observed."""

    for_update: bool
    read_a: int
    read_b: int
    b_after_update: int
    final: int
    initial: int = INITIAL

    @property
    def expected(self) -> int:
        return self.initial + 100 + 200

    @property
    def as_expected(self) -> bool:
        """Without the lock both read 1000 and B's 1200 wins; with it, 1300."""
        if self.for_update:
            return self.final == self.expected and self.read_b == self.initial + 100
        return (
            self.read_a == self.initial
            and self.read_b == self.initial
            and self.b_after_update == self.initial + 200
            and self.final == self.initial + 200
        )


def run_lost_update(
    dsn: str,
    *,
    for_update: bool = False,
    schedule: list[Step] | None = None,
    timeout: float = THREAD_TIMEOUT,
    driver: Any = psycopg2,
) -> LostUpdateOutcome:
    """Run Txn A (+100) and Txn B (+200) under a schedule; return what each saw.

    ``driver`` is ``psycopg2`` (the seed's) or ``psycopg`` (version 3)."""
    if schedule is None:
        schedule = FOR_UPDATE_SCHEDULE if for_update else SEED_SCHEDULE
    reset_accounts(dsn)
    select_sql = "SELECT balance FROM accounts WHERE name='alice'"
    if for_update:
        select_sql += " FOR UPDATE"
    seen: dict[str, int] = {}
    conn_a = driver.connect(dsn)
    conn_b = driver.connect(dsn)
    try:

        def txn_a() -> None:
            with conn_a.cursor() as cur:
                cur.execute(select_sql)  # frontrun: pg_select
                old = cur.fetchone()[0]
                new = old + 100
            seen["read_a"] = old
            with conn_a.cursor() as cur2:
                cur2.execute(UPDATE_SQL, (new,))  # frontrun: pg_update
            conn_a.commit()

        def txn_b() -> None:  # identical but adds 200, and reads back its own write
            with conn_b.cursor() as cur:
                cur.execute(select_sql)  # frontrun: pg_select
                old = cur.fetchone()[0]
                new = old + 200
            seen["read_b"] = old
            with conn_b.cursor() as cur2:
                cur2.execute(UPDATE_SQL, (new,))  # frontrun: pg_update
                cur2.execute("SELECT balance FROM accounts WHERE name='alice'")
                seen["b_after_update"] = cur2.fetchone()[0]
            conn_b.commit()

        executor = TraceExecutor(Schedule(schedule))
        executor.run("txn_a", txn_a)
        executor.run("txn_b", txn_b)
        executor.wait(timeout=timeout)
    finally:
        conn_a.close()
        conn_b.close()
    return LostUpdateOutcome(
        for_update=for_update,
        read_a=seen["read_a"],
        read_b=seen["read_b"],
        b_after_update=seen["b_after_update"],
        final=read_balances(dsn)["alice"],
    )


def print_lost_update(out: LostUpdateOutcome) -> None:
    print(RULE)
    print("Race 1: Lost Update  (TraceExecutor + psycopg2 + Postgres)")
    print(RULE)
    print()
    print("  SQL pattern (READ COMMITTED, no FOR UPDATE):")
    print("    Txn A: BEGIN; SELECT balance; -- compute 1000+100=1100")
    print("                  UPDATE balance=1100; COMMIT;")
    print("    Txn B: BEGIN; SELECT balance; -- compute 1000+200=1200")
    print("                  UPDATE balance=1200; COMMIT;  ← overwrites Txn A")
    print()
    print(f"  Initial balance : {out.initial}")
    print(f"  Expected result : {out.initial} + 100 + 200 = {out.expected}")
    print()
    print(f"  Initial balance                          : {out.initial}")
    print(f"  Txn B's read (after its own UPDATE)      : {out.b_after_update}")
    print(f"  Actual final balance in DB               : {out.final}  (expected {out.expected})")
    print()
    if out.as_expected:
        print(f"  LOST UPDATE confirmed: balance is {out.final}, not {out.expected}.")
        print("  Txn B overwrote Txn A's update.")
        print(f"  Both transactions read {out.read_a} before either wrote back.")
        print()
        print("  Reproducibility: 100% — the Schedule deterministically forces")
        print("  both SELECTs to run before either UPDATE on every execution.")
    else:
        print(f"  UNEXPECTED: {out}")
    print()


def print_for_update_fix(out: LostUpdateOutcome) -> None:
    print(RULE)
    print("Fix 1: SELECT … FOR UPDATE  (the seed's same 4-step schedule)")
    print(RULE)
    print()
    print("  Txn A: SELECT balance … FOR UPDATE (row lock held), paused before UPDATE")
    print("  Txn B: SELECT balance … FOR UPDATE  ← BLOCKED: the turn passes to Txn A,")
    print("         which updates and commits; then Txn B reads Txn A's write")
    print()
    print(f"  Txn A's read                             : {out.read_a}")
    print(f"  Txn B's read (after waiting for the lock): {out.read_b}")
    print(f"  Actual final balance in DB               : {out.final}  (expected {out.expected})")
    print()
    if out.as_expected:
        print(f"  FIX confirmed: balance is {out.final}; Txn B read Txn A's committed write.")
    else:
        print(f"  UNEXPECTED: {out}")
    print()


# --------------------------------------------------------------------------- race 2


@dataclass
class DeadlockOutcome:
    """Which transactions committed, which were aborted, and Postgres's error."""

    fixed: bool
    committed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    deadlocks: list[str] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)
    victim_pinned: bool = False

    @property
    def as_expected(self) -> bool:
        if self.fixed:
            return (
                sorted(self.committed) == ["txn1", "txn2"]
                and not self.errors
                and self.balances == {"alice": INITIAL - 100 + 50, "bob": INITIAL + 100 - 50}
            )
        # One victim aborted with "deadlock detected"; the other one committed.
        return (
            (self.deadlocks == ["txn2"] or not self.victim_pinned)
            and len(self.deadlocks) == 1
            and len(self.committed) == 1
            and set(self.errors) == set(self.deadlocks)
            and sum(self.balances.values()) == 2 * INITIAL
        )


def _format_pg_error(exc: psycopg2.Error) -> str:
    diag = exc.diag
    lines = [diag.message_primary or str(exc).strip()]
    if diag.message_detail:
        lines.append(f"DETAIL:  {diag.message_detail}")
    if diag.message_hint:
        lines.append(f"HINT:  {diag.message_hint}")
    if diag.context:
        lines.append(f"CONTEXT:  {diag.context.strip()}")
    return "\n".join(lines)


def _pin_deadlock_victim(survivor: Any, victim: Any) -> bool:
    """Make Postgres abort ``victim``'s transaction, not ``survivor``'s; False if not allowed.

    The backend whose deadlock check runs first is aborted, and it runs
    ``deadlock_timeout`` after that backend started waiting. Which of the two
    starts waiting first is a race of a few microseconds, so the survivor gets a
    long timeout and the victim a short one. Needs superuser (``SET`` of a
    SUSET setting); elsewhere either transaction may be the victim.
    """
    try:
        for conn, timeout in ((survivor, "5s"), (victim, "200ms")):
            with conn.cursor() as cur:
                cur.execute(f"SET deadlock_timeout = '{timeout}'")
            conn.commit()
    except psycopg2.errors.InsufficientPrivilege:
        survivor.rollback()
        victim.rollback()
        return False
    return True


def _guarded(
    name: str, conn: Any, body: Callable[[], None], out: DeadlockOutcome, finish: Callable[[], None]
) -> Callable[[], None]:
    """Wrap a transaction body: record commit or Postgres error, then call ``finish``."""

    def run() -> None:
        try:
            body()
            out.committed.append(name)
        except (psycopg2.Error, TimeoutError) as exc:
            conn.rollback()
            if isinstance(exc, psycopg2.Error):
                out.errors[name] = _format_pg_error(exc)
            else:
                out.errors[name] = str(exc)
            if isinstance(exc, psycopg2.errors.DeadlockDetected):
                out.deadlocks.append(name)
        finally:
            finish()  # the other thread may be waiting on us: never leave it hanging

    return run


def _run_threads(targets: dict[str, Callable[[], None]], conns: list[Any]) -> None:
    """Run the transactions to completion, bounded by THREAD_TIMEOUT."""
    threads = [threading.Thread(target=fn, name=name, daemon=True) for name, fn in targets.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + THREAD_TIMEOUT
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        for conn in conns:
            conn.cancel()  # psycopg2 allows cancel() from another thread
        for t in threads:
            t.join(timeout=5.0)
        raise TimeoutError(
            f"{stuck} still running after {THREAD_TIMEOUT}s, waiting for both transactions "
            "to commit or abort; their queries were cancelled"
        )


def run_deadlock(dsn: str) -> DeadlockOutcome:
    """The seed's opposite-order locking, forced by two Events; Postgres aborts one."""
    reset_accounts(dsn)
    out = DeadlockOutcome(fixed=False)
    alice_locked = threading.Event()
    bob_locked = threading.Event()
    conn1 = psycopg2.connect(dsn)
    conn2 = psycopg2.connect(dsn)
    out.victim_pinned = _pin_deadlock_victim(conn1, conn2)

    def release() -> None:
        alice_locked.set()
        bob_locked.set()

    def txn1() -> None:
        with conn1.cursor() as cur:
            cur.execute("SELECT * FROM accounts WHERE name='alice' FOR UPDATE")
        alice_locked.set()  # signal: alice row-lock held by Txn1
        bob_locked.wait(timeout=5)  # wait:   ensure Txn2 holds bob before we try it
        with conn1.cursor() as cur:
            cur.execute("SELECT * FROM accounts WHERE name='bob' FOR UPDATE")  # ← BLOCKED
            cur.execute("UPDATE accounts SET balance = balance - 100 WHERE name='alice'")
            cur.execute("UPDATE accounts SET balance = balance + 100 WHERE name='bob'")
        conn1.commit()

    def txn2() -> None:
        alice_locked.wait(timeout=5)  # wait: ensure Txn1 holds alice before we lock bob
        with conn2.cursor() as cur:
            cur.execute("SELECT * FROM accounts WHERE name='bob' FOR UPDATE")
        bob_locked.set()  # signal: bob row-lock held by Txn2; Txn1 now tries bob → BLOCKED
        with conn2.cursor() as cur:
            cur.execute("SELECT * FROM accounts WHERE name='alice' FOR UPDATE")  # ← DEADLOCK
            cur.execute("UPDATE accounts SET balance = balance - 50 WHERE name='bob'")
            cur.execute("UPDATE accounts SET balance = balance + 50 WHERE name='alice'")
        conn2.commit()

    try:
        _run_threads(
            {
                "txn1": _guarded("txn1", conn1, txn1, out, release),
                "txn2": _guarded("txn2", conn2, txn2, out, release),
            },
            [conn1, conn2],
        )
    finally:
        conn1.close()
        conn2.close()
    out.balances = read_balances(dsn)
    return out


def run_deadlock_with_markers(dsn: str, timeout: float = THREAD_TIMEOUT) -> DeadlockOutcome:
    """The seed's opposite-order locking, forced by a ``Schedule`` alone.

    Txn1 locks alice and Txn2 locks bob; Txn1 then asks for bob and blocks
    (on the paused Txn2), which passes the turn to Txn2; Txn2 asks for alice
    and the cycle is closed. PostgreSQL's deadlock detector aborts one of them.
    """
    reset_accounts(dsn)
    out = DeadlockOutcome(fixed=False)
    conn1 = psycopg2.connect(dsn)
    conn2 = psycopg2.connect(dsn)

    def txn1() -> None:
        with conn1.cursor() as cur:
            cur.execute(
                "SELECT * FROM accounts WHERE name='alice' FOR UPDATE"
            )  # frontrun: lock_first
            cur.execute(
                "SELECT * FROM accounts WHERE name='bob' FOR UPDATE"
            )  # frontrun: lock_second
            cur.execute("UPDATE accounts SET balance = balance - 100 WHERE name='alice'")
            cur.execute("UPDATE accounts SET balance = balance + 100 WHERE name='bob'")
        conn1.commit()

    def txn2() -> None:
        with conn2.cursor() as cur:
            cur.execute(
                "SELECT * FROM accounts WHERE name='bob' FOR UPDATE"
            )  # frontrun: lock_first
            cur.execute(
                "SELECT * FROM accounts WHERE name='alice' FOR UPDATE"
            )  # frontrun: lock_second
            cur.execute("UPDATE accounts SET balance = balance - 50 WHERE name='bob'")
            cur.execute("UPDATE accounts SET balance = balance + 50 WHERE name='alice'")
        conn2.commit()

    def nothing() -> None:
        return None

    try:
        executor = TraceExecutor(Schedule(DEADLOCK_SCHEDULE))
        executor.run("txn1", _guarded("txn1", conn1, txn1, out, nothing))
        executor.run("txn2", _guarded("txn2", conn2, txn2, out, nothing))
        executor.wait(timeout=timeout)
    finally:
        conn1.close()
        conn2.close()
    out.balances = read_balances(dsn)
    return out


ORDERED_LOCK_SQL = (
    "SELECT * FROM accounts WHERE name = ANY(ARRAY['alice','bob']) ORDER BY name FOR UPDATE"
)


def _wait_for_lock_wait(dsn: str, backend_pid: int, timeout: float = 5.0) -> None:
    """Block until backend ``backend_pid`` is waiting on a lock (per pg_stat_activity)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (backend_pid,)
                )
                row = cur.fetchone()
                if row is not None and row[0] == "Lock":
                    return
                time.sleep(0.005)
    finally:
        conn.close()
    raise TimeoutError(
        f"backend {backend_pid} did not start waiting for a row lock within {timeout}s "
        "(waiting for Txn2 to block on Txn1's locks)"
    )


def run_lock_order_fix(dsn: str) -> DeadlockOutcome:
    """Both transactions lock alice then bob; Txn2 asks while Txn1 holds them and just waits."""
    reset_accounts(dsn)
    out = DeadlockOutcome(fixed=True)
    txn1_locked = threading.Event()
    conn1 = psycopg2.connect(dsn)
    conn2 = psycopg2.connect(dsn)
    txn2_pid = conn2.get_backend_pid()

    def txn1() -> None:
        with conn1.cursor() as cur:
            cur.execute(ORDERED_LOCK_SQL)  # alice, then bob
        txn1_locked.set()
        _wait_for_lock_wait(dsn, txn2_pid)  # Txn2 is now queued behind our alice lock
        with conn1.cursor() as cur:
            cur.execute("UPDATE accounts SET balance = balance - 100 WHERE name='alice'")
            cur.execute("UPDATE accounts SET balance = balance + 100 WHERE name='bob'")
        conn1.commit()

    def txn2() -> None:
        if not txn1_locked.wait(timeout=5):
            raise TimeoutError("Txn1 did not take its row locks within 5s")
        with conn2.cursor() as cur:
            cur.execute(ORDERED_LOCK_SQL)  # waits for Txn1, holding nothing meanwhile
            cur.execute("UPDATE accounts SET balance = balance - 50 WHERE name='bob'")
            cur.execute("UPDATE accounts SET balance = balance + 50 WHERE name='alice'")
        conn2.commit()

    try:
        _run_threads(
            {
                "txn1": _guarded("txn1", conn1, txn1, out, txn1_locked.set),
                "txn2": _guarded("txn2", conn2, txn2, out, txn1_locked.set),
            },
            [conn1, conn2],
        )
    finally:
        conn1.close()
        conn2.close()
    out.balances = read_balances(dsn)
    return out


def print_deadlock(out: DeadlockOutcome) -> None:
    print(RULE)
    print("Race 2: Deadlock  (threading.Event coordination + psycopg2 + Postgres)")
    print(RULE)
    print()
    print("  SQL pattern (FOR UPDATE, opposite lock order):")
    print("    Txn1: LOCK alice → LOCK bob   → transfer alice→bob ($100)")
    print("    Txn2: LOCK bob   → LOCK alice → transfer bob→alice ($50)")
    print()
    print("  Interleaving forced by threading.Event coordination:")
    print("    Step 1: Txn1 acquires alice row-lock  (SELECT … FOR UPDATE)")
    print("    Step 2: Txn2 acquires bob   row-lock  (SELECT … FOR UPDATE)")
    print("    Step 3: Txn1 tries bob   row-lock  ← BLOCKED (held by Txn2)")
    print("    Step 4: Txn2 tries alice row-lock  ← BLOCKED (held by Txn1) → DEADLOCK")
    print()
    for name, text in out.errors.items():
        print(f"  {name} received Postgres error:")
        for line in text.splitlines():
            print(f"    {line}")
        print()
    if out.as_expected:
        print("  DEADLOCK confirmed: Postgres aborted one transaction and rolled")
        print("  it back, freeing the other transaction to complete.")
        print()
        print("  Reproducibility: 100% — the threading.Event coordination")
        print("  guarantees the deadlock-causing lock-ordering on every run.")
    else:
        print(f"  UNEXPECTED: {out}")
    print()


def print_deadlock_with_markers(out: DeadlockOutcome) -> None:
    print(RULE)
    print("Race 2, again: Deadlock  (Schedule only, no Events + psycopg2 + Postgres)")
    print(RULE)
    print()
    print("  schedule = Schedule([")
    for step in DEADLOCK_SCHEDULE:
        print(f"      Step({step.thread!r}, {step.marker!r}),")
    print("  ])")
    print()
    print("    Step 1: Txn1 locks alice, pauses before locking bob")
    print("    Step 2: Txn2 locks bob,   pauses before locking alice")
    print("    Step 3: Txn1 asks for bob    ← BLOCKED (held by Txn2): the turn passes")
    print("    Step 4: Txn2 asks for alice  ← BLOCKED (held by Txn1) → DEADLOCK")
    print()
    for name, text in out.errors.items():
        print(f"  {name} received Postgres error:")
        for line in text.splitlines():
            print(f"    {line}")
        print()
    if out.as_expected:
        print("  DEADLOCK confirmed with markers alone: Postgres aborted one transaction;")
        print("  the other committed.")
    else:
        print(f"  UNEXPECTED: {out}")
    print()


def print_lock_order_fix(out: DeadlockOutcome) -> None:
    print(RULE)
    print("Fix 2: consistent lock order  (alice before bob in both transactions)")
    print(RULE)
    print()
    print(f"  Both: {ORDERED_LOCK_SQL}")
    print("  Txn1 holds both row-locks; Txn2 asks for them and waits inside Postgres")
    print("  (seen in pg_stat_activity) holding nothing; then Txn1 transfers and commits.")
    print()
    print(f"  Committed          : {', '.join(sorted(out.committed)) or 'none'}")
    print(f"  Errors             : {out.errors or 'none'}")
    print(
        f"  Final balances     : alice {out.balances.get('alice')}, bob {out.balances.get('bob')}"
        f"  (expected {INITIAL - 100 + 50} / {INITIAL + 100 - 50})"
    )
    print()
    if out.as_expected:
        print("  FIX confirmed: no deadlock; both transfers committed.")
    else:
        print(f"  UNEXPECTED: {out}")
    print()


def run_all(dsn: str) -> bool:
    """Run and print both races (race 2 twice) and both fixes; True if all came out as expected."""
    lost = run_lost_update(dsn)
    print_lost_update(lost)
    deadlock = run_deadlock(dsn)
    print_deadlock(deadlock)
    deadlock_markers = run_deadlock_with_markers(dsn)
    print_deadlock_with_markers(deadlock_markers)
    fixed_lost = run_lost_update(dsn, for_update=True)
    print_for_update_fix(fixed_lost)
    fixed_deadlock = run_lock_order_fix(dsn)
    print_lock_order_fix(fixed_deadlock)
    results = [r.as_expected for r in (lost, fixed_lost)] + [
        r.as_expected for r in (deadlock, deadlock_markers, fixed_deadlock)
    ]
    print(f"{sum(results)} of {len(results)} outcomes as expected")
    return all(results)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--explore" in args:
        # The same races found by frontrun.explore, with no markers.
        import runpy
        from pathlib import Path

        explore = runpy.run_path(str(Path(__file__).with_name("postgres_explore.py")))
        return int(explore["main"]([a for a in args if a != "--explore"]))
    with postgres_server() as pg, pg.fresh_database("postgres_races") as dsn:
        return 0 if run_all(dsn) else 1


if __name__ == "__main__":
    sys.exit(main())
