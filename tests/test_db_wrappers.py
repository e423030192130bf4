"""Driver interception: wrapped psycopg2, psycopg 3 and sqlite3 connections emit
one event per statement, before it runs, with a site the explanation can show."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg2
import pytest

import frontrun.db
from frontrun import _native as n
from frontrun.db import ConnectionProxy, DbSession, UnparsedSqlWarning, _typed

Events = list[tuple[int, list[tuple[int, int | None, str]]]]


class Capture:
    """Record the events the current thread emits."""

    def __enter__(self) -> Capture:
        n._db_capture_start()
        self.events: Events = []
        return self

    def __exit__(self, *exc: Any) -> None:
        self.events = n._db_capture_stop()

    def texts(self) -> list[str]:
        return [n.db_site_text(site) or "" for site, _ in self.events]


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "bank.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER)")
    conn.execute("INSERT INTO accounts VALUES ('alice', 1000), ('bob', 50)")
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def pg_bank(pg_dsn: str) -> Iterator[str]:
    conn = psycopg2.connect(pg_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER)")
        cur.execute("INSERT INTO accounts VALUES ('alice', 1000), ('bob', 50)")
    conn.close()
    yield pg_dsn


def test_instrument_wraps_connect_and_restores_it(sqlite_path: Path) -> None:
    originals = (sqlite3.connect, psycopg2.connect, psycopg.connect)
    with pytest.raises(KeyError), frontrun.db.instrument() as session:
        assert sqlite3.connect is not originals[0]
        conn = sqlite3.connect(sqlite_path)
        assert isinstance(conn, ConnectionProxy) and conn.label == "Txn A"
        assert frontrun.db.current_session() is session
        conn.close()
        raise KeyError("restored even on error")
    assert (sqlite3.connect, psycopg2.connect, psycopg.connect) == originals
    assert frontrun.db.current_session() is not session


def test_sqlite_statements_are_events_with_values(sqlite_path: Path) -> None:
    n.db_sites_clear()
    conn = frontrun.db.wrap(sqlite3.connect(sqlite_path), session=DbSession())
    assert frontrun.db.wrap(conn) is conn
    assert conn.isolation == "serializable"
    with Capture() as cap:
        cur = conn.cursor()
        cur.execute("SELECT balance FROM accounts WHERE name=?", ("alice",))
        assert cur.fetchone() == (1000,)
        cur.execute("UPDATE accounts SET balance=? WHERE name=?", (1100, "alice"))
        conn.commit()
    texts = cap.texts()
    assert texts == [
        "Txn A | SELECT balance FROM accounts WHERE name=?  -- ('alice',) → 1000",
        "Txn A | UPDATE accounts SET balance=? WHERE name=?  -- (1100, 'alice') → 1 row(s)",
        "Txn A | COMMIT",
    ]
    select, update, commit = (acc for _, acc in cap.events)
    assert {k for _, _, k in select} == {"read"}
    assert "acquire" in {k for _, _, k in update}
    assert commit, "the commit of a transaction that wrote is not a pure yield"
    assert conn.execute("SELECT balance FROM accounts WHERE name='alice'").fetchone() == (1100,)
    conn.close()


def test_event_comes_before_the_statement_and_errors_are_recorded(sqlite_path: Path) -> None:
    conn = frontrun.db.wrap(sqlite3.connect(sqlite_path), session=DbSession())
    with Capture() as cap, pytest.raises(sqlite3.OperationalError):
        conn.execute("SELECT nope FROM accounts WHERE name='x'")
    assert len(cap.events) == 1
    assert cap.texts()[0].endswith("→ error: no such column: nope")
    conn.close()


def test_executemany_is_one_event_and_with_block_commits(sqlite_path: Path) -> None:
    conn = frontrun.db.wrap(sqlite3.connect(sqlite_path), session=DbSession())
    with Capture() as cap, conn:
        conn.executemany("INSERT INTO accounts VALUES (?, ?)", [("carol", 1), ("dave", 2)])
    assert [t.split(" | ")[1].split()[0] for t in cap.texts()] == ["INSERT", "COMMIT"]
    assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (4,)
    conn.close()


def test_unparseable_statement_warns_once_per_database(sqlite_path: Path) -> None:
    conn = frontrun.db.wrap(sqlite3.connect(sqlite_path), session=DbSession())
    with (
        pytest.warns(UnparsedSqlWarning, match="conflicting with every statement"),
        pytest.raises(sqlite3.OperationalError),
    ):
        conn.execute("FROBNICATE accounts")
    with warnings.catch_warnings(), pytest.raises(sqlite3.OperationalError):
        warnings.simplefilter("error")
        conn.execute("FROBNICATE accounts AGAIN")
    conn.close()


def test_unsupported_connection_is_refused() -> None:
    with pytest.raises(TypeError, match="only psycopg2, psycopg"):
        frontrun.db.wrap(object())


def test_psycopg2_isolation_locks_and_commit(pg_bank: str) -> None:
    session = DbSession()
    a = frontrun.db.wrap(psycopg2.connect(pg_bank), session=session)
    b = frontrun.db.wrap(psycopg2.connect(pg_bank), session=session)
    try:
        assert (a.label, b.label) == ("Txn A", "Txn B")
        assert a.isolation == "read committed"
        a.set_session(isolation_level="SERIALIZABLE")
        assert a.isolation == "serializable"
        a.set_session(isolation_level="READ COMMITTED")
        with Capture() as cap:
            with a.cursor() as cur:
                cur.execute("UPDATE accounts SET balance=balance+1 WHERE name=%s", ("alice",))
            model = session.model(a._database)
            upd = n.sql_footprint("UPDATE accounts SET balance=1 WHERE name='alice'")
            assert model.predict(b._txn, upd) == ("blocks", [a._txn])
            a.commit()
            assert model.predict(b._txn, upd) == ("proceeds", [])
        assert cap.texts()[-1] == "Txn A | COMMIT"
        update_acc, commit_acc = cap.events[0][1], cap.events[1][1]
        # The commit releases the row lock the update took, and publishes the row.
        assert {(o, "release") for o, _, k in update_acc if k == "acquire"} <= {
            (o, k) for o, _, k in commit_acc
        }
        assert any(k == "acquire" for _, _, k in update_acc)
        assert any(k == "write" for _, _, k in commit_acc)
        with Capture() as cap2:
            cur = b.cursor()
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            assert b.isolation == "repeatable read"
            cur.execute("SELECT balance FROM accounts WHERE name=%(n)s", {"n": "alice"})
            assert cur.fetchall() == [(1001,)]
            b.rollback()
            assert b.isolation == "read committed"
        assert cap2.texts()[1].endswith("→ [1001]")
    finally:
        a.close()
        b.close()


def test_psycopg3_execute_transaction_and_isolation(pg_bank: str) -> None:
    session = DbSession()
    with frontrun.db.instrument(session):
        conn = psycopg.connect(pg_bank)
    # The driver's own type (TypeInfo.fetch and adapters accept it), with
    # the interception state on the side.
    assert isinstance(conn, psycopg.Connection) and not isinstance(conn, ConnectionProxy)
    tracker = _typed.tracker_of(conn)
    assert tracker is not None
    try:
        assert psycopg.types.TypeInfo.fetch(conn, "int4") is not None
        conn.rollback()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        assert tracker.isolation == "repeatable read"
        with Capture() as cap:
            with conn.transaction():
                cur = conn.execute("SELECT balance FROM accounts WHERE name=%s", ("bob",))
                assert cur.fetchone() == (50,)
                conn.execute("UPDATE accounts SET balance=%s WHERE name=%s", (60, "bob"))
            assert session.model(tracker._database).holders() == []
        assert [t.split(" → ")[0] for t in cap.texts()] == [
            "Txn A | SELECT balance FROM accounts WHERE name=%s  -- ('bob',)",
            "Txn A | UPDATE accounts SET balance=%s WHERE name=%s  -- (60, 'bob')",
            "Txn A | COMMIT",
        ]
        assert cap.texts()[0].endswith("→ 50")
    finally:
        conn.close()


def test_with_block_commit_failure_is_raised(pg_bank: str) -> None:
    session = DbSession()
    a = frontrun.db.wrap(psycopg2.connect(pg_bank), session=session)
    b = frontrun.db.wrap(psycopg2.connect(pg_bank), session=session)
    try:
        for c in (a, b):
            c.set_session(isolation_level="SERIALIZABLE")
        with a.cursor() as cur:
            cur.execute("SELECT sum(balance) FROM accounts")
            cur.execute("UPDATE accounts SET balance = 0 WHERE name = 'alice'")
        with b.cursor() as cur:
            cur.execute("SELECT sum(balance) FROM accounts")
            cur.execute("UPDATE accounts SET balance = 0 WHERE name = 'bob'")
        a.commit()
        with pytest.raises(psycopg2.errors.SerializationFailure), b:
            pass
        assert session.model(b._database).holders() == []
        assert b.info.transaction_status == 0, "the failed transaction is over"
    finally:
        a.close()
        b.close()


def test_psycopg3_transaction_block_error_rolls_back(pg_bank: str) -> None:
    session = DbSession()
    conn = frontrun.db.wrap(psycopg.connect(pg_bank), session=session)
    try:
        with Capture() as cap, pytest.raises(KeyError), conn.transaction():
            conn.execute("UPDATE accounts SET balance = 1 WHERE name = 'bob'")
            raise KeyError("boom")
        assert cap.texts()[-1] == "Txn A | ROLLBACK"
        assert session.model(conn._database).holders() == []
        assert conn.execute("SELECT balance FROM accounts WHERE name='bob'").fetchone() == (50,)
    finally:
        conn.close()
