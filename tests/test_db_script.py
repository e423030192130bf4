"""Scripted interleavings: blocking detection, deadlocks, bounded waits."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from frontrun.db.script import DEADLOCK, Interleaving, ScriptTimeout


@pytest.fixture
def bank(pg_dsn: str) -> str:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (name text PRIMARY KEY, balance int)")
        cur.execute("INSERT INTO accounts VALUES ('alice', 1000), ('bob', 1000)")
    conn.close()
    return pg_dsn


def test_blocked_statement_is_detected_and_finishes_after_commit(bank: str) -> None:
    with Interleaving(lambda: psycopg2.connect(bank), ["A", "B"]) as il:
        il.run("A", "BEGIN")
        il.run("B", "BEGIN")
        il.run("A", "UPDATE accounts SET balance = balance + 100 WHERE name = 'alice'")
        b = il.run("B", "UPDATE accounts SET balance = balance + 200 WHERE name = 'alice'")
        assert not b.done.is_set() and b.blocked_by == ["A"]
        with pytest.raises(RuntimeError, match="still blocked"):
            il.run("B", "SELECT 1")
        il.run("A", "COMMIT")
        assert il.finish(b).status == "UPDATE 1"
        il.run("B", "COMMIT")
        total = il.run("A", "SELECT balance FROM accounts WHERE name = 'alice'")
        assert total.value == 1300
        assert "(waited for A)" in il.trace()


def test_deadlock_is_an_outcome_with_its_statements(bank: str) -> None:
    with Interleaving(lambda: psycopg2.connect(bank), ["A", "B"]) as il:
        for s in "AB":
            il.run(s, "BEGIN")
        il.run("A", "SELECT * FROM accounts WHERE name = 'alice' FOR UPDATE")
        il.run("B", "SELECT * FROM accounts WHERE name = 'bob' FOR UPDATE")
        a = il.run("A", "SELECT * FROM accounts WHERE name = 'bob' FOR UPDATE")
        b = il.run("B", "SELECT * FROM accounts WHERE name = 'alice' FOR UPDATE")
        # settle() waited out the cycle: exactly one side was chosen as victim.
        assert a.done.is_set() and b.done.is_set()
        victims = [s for s in (a, b) if s.sqlstate == DEADLOCK]
        assert len(victims) == 1, il.trace()
        assert "deadlock detected" in (victims[0].error or "")


def test_statement_that_neither_finishes_nor_blocks_times_out(bank: str) -> None:
    before = threading.active_count()
    with Interleaving(lambda: psycopg2.connect(bank), ["A"], timeout=0.3) as il:
        with pytest.raises(ScriptTimeout, match=r"A: 'SELECT pg_sleep\(30\)'"):
            il.run("A", "SELECT pg_sleep(30)")
    assert threading.active_count() == before, "close() cancels and joins the session threads"


def test_unknown_session_is_named(bank: str) -> None:
    with (
        Interleaving(lambda: psycopg2.connect(bank), ["A"]) as il,
        pytest.raises(KeyError, match="unknown session 'Z'"),
    ):
        il.run("Z", "SELECT 1")
