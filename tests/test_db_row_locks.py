"""Writes order transactions through the row locks they take (issue 9):
two UPDATEs of one row from different transactions are dependent, so the
opposite-order transfer deadlock and the last-writer-wins race are found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest

import frontrun
from _pg import query_one
from frontrun.db.reset import SnapshotReset


@pytest.fixture
def accounts(pg_dsn: str) -> Iterator[tuple[str, SnapshotReset]]:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
        cur.execute("INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100)")
    conn.close()
    with SnapshotReset(lambda: psycopg2.connect(pg_dsn), ["accounts"]) as reset:
        yield pg_dsn, reset


def _setup(dsn: str, reset: SnapshotReset) -> Callable[[], list[Any]]:
    def setup() -> list[Any]:
        reset.reset()
        return [psycopg2.connect(dsn) for _ in range(2)]

    return setup


def _teardown(conns: list[Any]) -> None:
    for c in conns:
        c.close()


def _transfer(src: int, dst: int, lock_first: str = "") -> Callable[[Any], None]:
    def f(conn: Any) -> None:
        with conn.cursor() as cur:
            if lock_first:
                cur.execute(lock_first)
            cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (src,))
            cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (dst,))
        conn.commit()

    return f


def _total(dsn: str) -> Callable[[Any], bool]:
    return lambda _: bool(query_one(dsn, "SELECT sum(balance) FROM accounts") == 300)


def test_opposite_order_transfers_deadlock(accounts: tuple[str, SnapshotReset]) -> None:
    dsn, reset = accounts
    t12, t21 = _transfer(1, 2), _transfer(2, 1)
    result = frontrun.explore(
        _setup(dsn, reset),
        [lambda s: t12(s[0]), lambda s: t21(s[1])],
        _total(dsn),
        teardown=_teardown,
        max_executions=50,
    )
    assert result.property_holds is False, result.explanation
    assert result.failure_kind == "deadlock", result.explanation


def test_ordered_transfers_hold(accounts: tuple[str, SnapshotReset]) -> None:
    dsn, reset = accounts
    # Lower id first: both lock row 1 before row 2.
    t12 = _transfer(1, 2)

    def t21(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (1,))
            cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (2,))
        conn.commit()

    result = frontrun.explore(
        _setup(dsn, reset),
        [lambda s: t12(s[0]), lambda s: t21(s[1])],
        _total(dsn),
        teardown=_teardown,
        max_executions=50,
        stop_on_first=False,
    )
    assert result.property_holds is True, result.explanation
    assert result.exhausted is True
    assert result.executions_explored >= 2


def test_for_update_in_one_order_holds(accounts: tuple[str, SnapshotReset]) -> None:
    dsn, reset = accounts
    lock = "SELECT balance FROM accounts WHERE id IN (1, 2) ORDER BY id FOR UPDATE"
    t12, t21 = _transfer(1, 2, lock), _transfer(2, 1, lock)
    result = frontrun.explore(
        _setup(dsn, reset),
        [lambda s: t12(s[0]), lambda s: t21(s[1])],
        _total(dsn),
        teardown=_teardown,
        max_executions=50,
        stop_on_first=False,
    )
    assert result.property_holds is True, result.explanation
    assert result.exhausted is True
    assert result.executions_explored >= 2


def test_blind_writes_reach_both_final_values(accounts: tuple[str, SnapshotReset]) -> None:
    dsn, reset = accounts
    finals: set[int] = set()

    def write(value: int) -> Callable[[list[Any]], None]:
        def f(conns: list[Any]) -> None:
            conn = conns[0] if value == 7 else conns[1]
            with conn.cursor() as cur:
                cur.execute("UPDATE accounts SET balance = %s WHERE id = 1", (value,))
            conn.commit()

        return f

    def invariant(_: Any) -> bool:
        finals.add(query_one(dsn, "SELECT balance FROM accounts WHERE id = 1"))
        return True

    result = frontrun.explore(
        _setup(dsn, reset),
        [write(7), write(9)],
        invariant,
        teardown=_teardown,
        max_executions=50,
        stop_on_first=False,
    )
    assert result.exhausted is True, result.explanation
    assert finals == {7, 9}


def test_for_update_counter_takes_one_execution_per_lock_order(
    accounts: tuple[str, SnapshotReset],
) -> None:
    # Three workers increment row 1 under FOR UPDATE: only the order in
    # which they take the row lock matters, so plain DPOR runs 3! = 6
    # executions; the rows 2, 3 and 4 (absent), each written by one worker
    # only, add none.
    dsn, reset = accounts

    def setup() -> list[Any]:
        reset.reset()
        return [psycopg2.connect(dsn) for _ in range(3)]

    def worker(i: int) -> Callable[[list[Any]], None]:
        def f(conns: list[Any]) -> None:
            conn = conns[i]
            with conn.cursor() as cur:
                cur.execute("SELECT balance FROM accounts WHERE id = 1 FOR UPDATE")
                (n,) = cur.fetchone()
                cur.execute("UPDATE accounts SET balance = %s WHERE id = 1", (n + 1,))
                cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (i + 2,))
            conn.commit()

        return f

    def invariant(_: Any) -> bool:
        return bool(query_one(dsn, "SELECT balance FROM accounts WHERE id = 1") == 103)

    result = frontrun.explore(
        setup,
        [worker(0), worker(1), worker(2)],
        invariant,
        teardown=_teardown,
        strategy="dpor",
        stop_on_first=False,
        max_executions=100,
    )
    assert result.property_holds is True and result.exhausted is True, result.explanation
    assert result.executions_explored == 6
