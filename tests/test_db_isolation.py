"""isolation_report: the same workload explored at each isolation level, with
each failure named as an anomaly, and the weakest safe level."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from _pg import query_one
from frontrun import _native as n
from frontrun.db.reset import SnapshotReset
from frontrun.sql import isolation_report


def _log(*steps: tuple[int, str]) -> n.DbModel:
    m = n.DbModel("db")
    for txn, sql in steps:
        m.apply(txn, n.sql_footprint(sql))
    return m


X = "SELECT v FROM t WHERE id = 1"
Y = "SELECT v FROM t WHERE id = 2"
WX = "UPDATE t SET v = 5 WHERE id = 1"
WY = "UPDATE t SET v = 5 WHERE id = 2"


def test_anomalies_are_named_from_the_statement_log() -> None:
    lost = _log((1, X), (2, X), (1, WX), (1, "COMMIT"), (2, WX), (2, "COMMIT"))
    assert lost.anomaly() == ("lost update", 1, 2, "t[id=1]")
    skew = _log((1, X), (2, WX), (2, WY), (2, "COMMIT"), (1, Y), (1, "COMMIT"))
    assert skew.anomaly() == ("read skew", 1, 2, "t[id=1] then t[id=2]")
    write_skew = _log(
        (1, X), (1, Y), (2, X), (2, Y), (1, WX), (2, WY), (1, "COMMIT"), (2, "COMMIT")
    )
    assert write_skew.anomaly() == ("write skew", 1, 2, "t[id=2] / t[id=1]")
    serial = _log((1, X), (1, WX), (1, "COMMIT"), (2, X), (2, WX), (2, "COMMIT"))
    assert serial.anomaly() is None
    rolled_back = _log((1, X), (2, X), (1, WX), (1, "COMMIT"), (2, WX), (2, "ROLLBACK"))
    assert rolled_back.anomaly() is None
    serial.reset_locks()
    lost_then_reset = _log((1, X), (2, X), (1, WX), (1, "COMMIT"), (2, WX), (2, "COMMIT"))
    lost_then_reset.reset_locks()
    assert lost_then_reset.anomaly() is None, "the log is per execution"


@dataclass
class Conns:
    a: Any
    b: Any


@pytest.fixture
def db(pg_dsn: str) -> Iterator[tuple[str, SnapshotReset]]:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (name text PRIMARY KEY, balance int NOT NULL)")
        cur.execute("INSERT INTO accounts VALUES ('alice', 1000)")
        cur.execute("CREATE TABLE doctors (name text PRIMARY KEY, on_call bool NOT NULL)")
        cur.execute("INSERT INTO doctors VALUES ('alice', true), ('bob', true)")
    conn.close()
    with SnapshotReset(lambda: psycopg2.connect(pg_dsn), ["accounts", "doctors"]) as reset:
        yield pg_dsn, reset


def _retrying(body: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Run ``body(conn, cur)`` and commit, again after a serialization failure."""

    def run(conn: Any, arg: Any) -> None:
        for _ in range(5):
            try:
                with conn.cursor() as cur:
                    body(cur, arg)
                conn.commit()
                return
            except psycopg2.errors.SerializationFailure:
                conn.rollback()
        raise AssertionError("still failing after 5 attempts")

    return run


def _setup(dsn: str, reset: SnapshotReset) -> Callable[[], Conns]:
    def setup() -> Conns:
        reset.reset()
        return Conns(psycopg2.connect(dsn), psycopg2.connect(dsn))

    return setup


def _teardown(c: Conns) -> None:
    c.a.close()
    c.b.close()


def test_lost_update_needs_repeatable_read(db: tuple[str, SnapshotReset]) -> None:
    dsn, reset = db

    def body(cur: Any, amount: int) -> None:
        cur.execute("SELECT balance FROM accounts WHERE name = 'alice'")
        (old,) = cur.fetchone()
        cur.execute("UPDATE accounts SET balance = %s WHERE name = 'alice'", (old + amount,))

    deposit = _retrying(body)
    report = isolation_report(
        _setup(dsn, reset),
        [lambda s: deposit(s.a, 100), lambda s: deposit(s.b, 200)],
        lambda _: query_one(dsn, "SELECT balance FROM accounts WHERE name = 'alice'") == 1300,
        teardown=_teardown,
        max_executions=400,
    )
    rc = report.outcome("read committed")
    assert rc.holds is False and rc.anomaly is not None, str(report)
    assert rc.anomaly.startswith("lost update (Txn A, Txn B: accounts[name='alice'])"), str(report)
    assert report.outcome("repeatable read").holds is True, str(report)
    assert report.outcome("serializable").holds is True, str(report)
    assert report.weakest_safe == "repeatable read"
    assert "weakest safe level: repeatable read" in str(report)


def test_write_skew_needs_serializable(db: tuple[str, SnapshotReset]) -> None:
    dsn, reset = db

    def body(cur: Any, me: str) -> None:
        cur.execute("SELECT count(*) FROM doctors WHERE on_call")
        (on_call,) = cur.fetchone()
        if on_call >= 2:
            cur.execute("UPDATE doctors SET on_call = false WHERE name = %s", (me,))

    go_home = _retrying(body)
    report = isolation_report(
        _setup(dsn, reset),
        [lambda s: go_home(s.a, "alice"), lambda s: go_home(s.b, "bob")],
        lambda _: query_one(dsn, "SELECT count(*) FROM doctors WHERE on_call") >= 1,
        teardown=_teardown,
        max_executions=400,
    )
    for level in ("read committed", "repeatable read"):
        o = report.outcome(level)
        assert o.holds is False and o.anomaly is not None, str(report)
        assert o.anomaly.startswith("predicate write skew"), str(report)
    assert report.outcome("serializable").holds is True, str(report)
    assert report.weakest_safe == "serializable"


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown isolation level 'snapshot'"):
        isolation_report(lambda: None, [lambda s: None], lambda s: True, levels=["snapshot"])


def test_serialization_failure_is_an_outcome_with_its_statements(
    db: tuple[str, SnapshotReset],
) -> None:
    dsn, reset = db

    def deposit(conn: Any, amount: int) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT balance FROM accounts WHERE name = 'alice'")
            (old,) = cur.fetchone()
            cur.execute("UPDATE accounts SET balance = %s WHERE name = 'alice'", (old + amount,))
        conn.commit()

    report = isolation_report(
        _setup(dsn, reset),
        [lambda s: deposit(s.a, 100), lambda s: deposit(s.b, 200)],
        lambda _: True,
        teardown=_teardown,
        levels=["repeatable read"],
        max_executions=20,
    )
    o = report.outcome("repeatable read")
    assert o.holds is False and o.anomaly == "serialization failure", str(report)
    assert o.result.failure_kind == "exception"
    text = o.result.explanation
    assert "UPDATE accounts SET balance = %s WHERE name = 'alice'" in text
    assert "→ error 40001: could not serialize access due to concurrent update" in text, text
    assert report.weakest_safe is None
