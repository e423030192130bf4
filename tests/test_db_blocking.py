"""Lock waits on paused transactions: predicted by the model, or probed with a
short lock_timeout in a savepoint, undone and retried when a transaction ends."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg2
import pytest

import frontrun.db
from frontrun import _native as n
from frontrun.db import DbSession


@pytest.fixture
def bank(pg_dsn: str) -> str:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (name text PRIMARY KEY, balance int)")
        cur.execute("INSERT INTO accounts VALUES ('alice', 1000), ('bob', 1000)")
        cur.execute("CREATE TABLE log (msg text)")
    conn.close()
    return pg_dsn


class Releaser:
    """on_blocked handler: records the wait and commits the holder."""

    def __init__(self) -> None:
        self.holder: Any = None
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, conn: Any, fp: n.SqlFootprint, site: int, min_epoch: int) -> None:
        self.calls.append((conn.label, fp.kind, min_epoch))
        assert conn._model.epoch < min_epoch, "retry only after some transaction ends"
        self.holder.commit()
        assert conn._model.epoch >= min_epoch


def _balance(dsn: str, name: str) -> int:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT balance FROM accounts WHERE name = %s", (name,))
        value = int(cur.fetchone()[0])
    conn.close()
    return value


@pytest.mark.parametrize("driver", [psycopg2, psycopg])
def test_unpredictable_wait_is_probed_undone_and_retried(bank: str, driver: Any) -> None:
    releaser = Releaser()
    session = DbSession(probe_locks=True, on_blocked=releaser)
    a = frontrun.db.wrap(driver.connect(bank), session=session)
    b = frontrun.db.wrap(driver.connect(bank), session=session)
    releaser.holder = a
    try:
        # Rows not pinned by the WHERE clause: the model cannot tell.
        a.cursor().execute("UPDATE accounts SET balance = balance + 100 WHERE balance > 0")
        cur = b.cursor()
        cur.execute("INSERT INTO log VALUES ('before')")
        upd = "UPDATE accounts SET balance = balance + 1 WHERE name = %s"
        assert a._model.predict(b._txn, n.sql_footprint(upd, ("alice",)))[0] == "unknown"
        cur.execute(upd, ("alice",))
        assert releaser.calls == [("Txn B", "update", releaser.calls[0][2])]
        with b.cursor() as c2:
            c2.execute("SHOW lock_timeout")
            assert c2.fetchone()[0] == "0", "the probe's lock_timeout is undone"
        b.commit()
    finally:
        a.close()
        b.close()
    assert _balance(bank, "alice") == 1101, "the retried update ran once, after A's commit"
    conn = psycopg2.connect(bank)
    with conn.cursor() as c:
        c.execute("SELECT msg FROM log")
        assert c.fetchall() == [("before",)], "work before the savepoint survives"
    conn.close()


def test_probe_that_does_not_wait_runs_once(bank: str) -> None:
    releaser = Releaser()
    session = DbSession(probe_locks=True, on_blocked=releaser)
    a = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    b = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    try:
        a.cursor().execute("UPDATE accounts SET balance = 0 WHERE name = 'alice' AND balance > 0")
        # Pinned on name on both sides, different rows: proceeds, no probe.
        b.cursor().execute("UPDATE accounts SET balance = 7 WHERE name = 'bob'")
        b.commit()
        a.commit()
    finally:
        a.close()
        b.close()
    assert releaser.calls == []
    assert (_balance(bank, "alice"), _balance(bank, "bob")) == (0, 7)


def test_autocommit_statement_is_probed_too(bank: str) -> None:
    releaser = Releaser()
    session = DbSession(probe_locks=True, on_blocked=releaser)
    a = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    b = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    releaser.holder = a
    b.autocommit = True
    try:
        a.cursor().execute("SELECT * FROM accounts WHERE name = 'bob' FOR UPDATE")
        b.cursor().execute("DELETE FROM accounts WHERE balance >= 1000")
        assert [c[0] for c in releaser.calls] == ["Txn B"]
        with b.cursor() as c2:
            c2.execute("SHOW lock_timeout")
            assert c2.fetchone()[0] == "0"
    finally:
        a.close()
        b.close()
    conn = psycopg2.connect(bank)
    with conn.cursor() as c:
        c.execute("SELECT count(*) FROM accounts")
        assert c.fetchone()[0] == 0
    conn.close()


def test_other_errors_pass_through_the_probe(bank: str) -> None:
    session = DbSession(probe_locks=True, on_blocked=Releaser())
    a = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    b = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    try:
        a.cursor().execute("UPDATE accounts SET balance = 1 WHERE balance > 0")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            b.cursor().execute("UPDATE accounts SET balance = 1 / 0 WHERE name = 'zed'")
        b.rollback()
        a.rollback()
    finally:
        a.close()
        b.close()


def test_waiting_outside_an_exploration_is_a_clear_error(bank: str) -> None:
    session = DbSession(probe_locks=True)
    a = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    b = frontrun.db.wrap(psycopg2.connect(bank), session=session)
    try:
        a.cursor().execute("UPDATE accounts SET balance = 1 WHERE balance > 0")
        with pytest.raises(RuntimeError, match="outside an explored thread"):
            b.cursor().execute("UPDATE accounts SET balance = 2 WHERE name = 'bob'")
    finally:
        a.close()
        b.close()
