"""The seeds' PostgreSQL races found automatically, with no markers.

    python examples/postgres_explore.py            # find, explain, prove the fixes
    python examples/postgres_explore.py --report   # also the isolation-level report

``frontrun.explore`` runs each workload's transactions under its scheduler:
every ``execute``/``commit`` of a psycopg2 connection is a scheduling point
whose footprint (rows read, written and locked) decides which orders matter.
It finds the lost update and the deadlock of the first seed and the counter
race of the second, explains them statement by statement with the values
read, and proves each fix by running every interleaving that matters
(``exhausted=True``). A throwaway PostgreSQL is started unless
``DATABASE_URL`` (or ``FRONTRUN_DATABASE_URL``) names a server. Exits 0 only
if every outcome is the expected one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]

import frontrun
from frontrun.db.reset import SnapshotReset
from frontrun.sql import isolation_report
from frontrun.testing import postgres_server

RULE = "=" * 70


@dataclass
class State:
    conns: list[Any]


def prepare(dsn: str) -> SnapshotReset:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS accounts, counts")
        cur.execute("CREATE TABLE accounts (name text PRIMARY KEY, balance integer NOT NULL)")
        cur.execute("INSERT INTO accounts VALUES ('alice', 1000), ('bob', 1000)")
        cur.execute("CREATE TABLE counts (counter integer NOT NULL)")
        cur.execute("INSERT INTO counts VALUES (0)")
    conn.close()
    return SnapshotReset(lambda: psycopg2.connect(dsn), ["accounts", "counts"])


def query(dsn: str, sql: str) -> Any:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def make_setup(dsn: str, reset: SnapshotReset, n: int) -> Callable[[], State]:
    def setup() -> State:
        reset.reset()
        return State([psycopg2.connect(dsn) for _ in range(n)])

    return setup


def teardown(state: State) -> None:
    for c in state.conns:
        c.close()


def deposit(for_update: bool) -> Callable[[Any, int], None]:
    """The seed's Txn A / Txn B: read alice's balance, write it back plus an amount."""
    lock = " FOR UPDATE" if for_update else ""

    def txn(conn: Any, amount: int) -> None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT balance FROM accounts WHERE name='alice'{lock}")
            old = cur.fetchone()[0]
        with conn.cursor() as cur2:
            cur2.execute("UPDATE accounts SET balance=%s WHERE name='alice'", (old + amount,))
        conn.commit()

    return txn


def transfer(first: str, second: str) -> Callable[[Any], None]:
    """The seed's deadlock: lock two rows, move 100 from the first to the second."""

    def txn(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM accounts WHERE name=%s FOR UPDATE", (first,))
            cur.execute("SELECT * FROM accounts WHERE name=%s FOR UPDATE", (second,))
            cur.execute("UPDATE accounts SET balance = balance - 100 WHERE name=%s", (first,))
            cur.execute("UPDATE accounts SET balance = balance + 100 WHERE name=%s", (second,))
        conn.commit()

    return txn


def increment(for_update: bool) -> Callable[[Any], None]:
    """The second seed's counter: read, add one, write back."""
    lock = " FOR UPDATE" if for_update else ""

    def txn(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT counter FROM counts{lock}")
            current = cur.fetchone()[0]
            cur.execute("UPDATE counts SET counter = %s", (current + 1,))
        conn.commit()

    return txn


def on(txn: Callable[..., None], i: int, *args: Any) -> Callable[[State], None]:
    """Thread body: run ``txn`` on connection ``i`` of the state."""

    def body(s: State) -> None:
        txn(s.conns[i], *args)

    return body


def counter_is(dsn: str, n: int) -> Callable[[State], bool]:
    return lambda _: bool(query(dsn, "SELECT counter FROM counts") == n)


def show(title: str, result: frontrun.ExploreResult, expect_holds: bool) -> bool:
    print(RULE)
    print(title)
    print(RULE)
    print(
        f"  property_holds={result.property_holds}  exhausted={result.exhausted}  "
        f"executions={result.executions_explored}  failure_kind={result.failure_kind}"
    )
    if result.property_holds is False:
        print("\n".join("  " + line for line in result.explanation.splitlines()))
    ok = result.property_holds is expect_holds and (not expect_holds or result.exhausted)
    print(f"  -> {'as expected' if ok else 'UNEXPECTED'}\n")
    return ok


def run_all(dsn: str, report: bool) -> bool:
    reset = prepare(dsn)
    ok = True
    alice = "SELECT balance FROM accounts WHERE name='alice'"
    for fix in (False, True):
        txn = deposit(fix)
        result = frontrun.explore(
            make_setup(dsn, reset, 2),
            [on(txn, 0, 100), on(txn, 1, 200)],
            lambda _: query(dsn, alice) == 1300,
            teardown=teardown,
            max_executions=None if fix else 10,
        )
        name = "fix: SELECT ... FOR UPDATE" if fix else "Race 1: lost update (no markers)"
        ok &= show(name, result, expect_holds=fix)
        if not fix:
            ok &= result.failure_kind == "invariant" and "→ 1000" in result.explanation
    for fix in (False, True):
        a, b = (
            transfer("alice", "bob"),
            transfer("alice" if fix else "bob", "bob" if fix else "alice"),
        )
        result = frontrun.explore(
            make_setup(dsn, reset, 2),
            [on(a, 0), on(b, 1)],
            lambda _: query(dsn, "SELECT sum(balance) FROM accounts") == 2000,
            teardown=teardown,
        )
        name = "fix: same lock order" if fix else "Race 2: deadlock (no markers)"
        ok &= show(name, result, expect_holds=fix)
        if not fix:
            ok &= result.failure_kind == "deadlock"
    for workers in (2, 3):
        for fix in (False, True):
            inc = increment(fix)
            result = frontrun.explore(
                make_setup(dsn, reset, workers),
                [on(inc, i) for i in range(workers)],
                counter_is(dsn, workers),
                teardown=teardown,
            )
            what = "fix: FOR UPDATE" if fix else "counter race"
            ok &= show(f"Seed 2, {workers} workers: {what}", result, expect_holds=fix)
    if report:
        racy = deposit(False)
        rep = isolation_report(
            make_setup(dsn, reset, 2),
            [on(retrying, 0, racy, 100), on(retrying, 1, racy, 200)],
            lambda _: query(dsn, alice) == 1300,
            teardown=teardown,
            max_executions=50,
        )
        print(RULE)
        print("Isolation report for the lost-update workload (with retries)")
        print(RULE)
        print(rep)
        ok &= rep.weakest_safe == "repeatable read"
    reset.close()
    return ok


def retrying(conn: Any, txn: Callable[[Any, int], None], amount: int) -> None:
    for _ in range(5):
        try:
            txn(conn, amount)
            return
        except psycopg2.errors.SerializationFailure:
            conn.rollback()
    raise RuntimeError("still failing after 5 attempts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="print the isolation report")
    args = parser.parse_args(argv)
    with postgres_server() as server, server.fresh_database("explore") as dsn:
        ok = run_all(dsn, args.report)
    print("all outcomes as expected" if ok else "SOME OUTCOMES WERE UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
