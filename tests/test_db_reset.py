"""Fresh state between executions: snapshot restore and template copies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg2
import pytest

from frontrun.db.reset import SnapshotReset, TemplateReset
from frontrun.testing import PostgresServer


def _prepare(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (id serial PRIMARY KEY, name text, balance int)")
        cur.execute("INSERT INTO accounts (name, balance) VALUES ('alice', 1000), ('bob', 5)")
        cur.execute("CREATE TABLE log (msg text)")
    conn.close()


def _dirty(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("UPDATE accounts SET balance = 0")
        cur.execute("INSERT INTO accounts (name, balance) VALUES ('mallory', 1)")
        cur.execute("INSERT INTO log VALUES ('x')")
    conn.close()


def _state(dsn: str) -> tuple[list[tuple[object, ...]], int, int]:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT id, name, balance FROM accounts ORDER BY id")
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM log")
        logs = cur.fetchone()[0]
        cur.execute("SELECT nextval('accounts_id_seq')")
        nxt = cur.fetchone()[0]
    conn.rollback()
    conn.close()
    return rows, logs, nxt


@pytest.mark.parametrize("method", ["delete", "truncate"])
def test_snapshot_reset_restores_rows_and_sequences(pg_dsn: str, method: str) -> None:
    _prepare(pg_dsn)
    with SnapshotReset(lambda: psycopg2.connect(pg_dsn), ["accounts", "log"], method=method) as r:
        for _ in range(3):
            _dirty(pg_dsn)
            assert _state(pg_dsn)[0][0][2] == 0
            r.reset()
            rows, logs, nxt = _state(pg_dsn)
            assert rows == [(1, "alice", 1000), (2, "bob", 5)]
            assert logs == 0
            assert nxt == 3, "the serial sequence is restored too"
            r.reset()


def test_snapshot_reset_rejects_bad_arguments(pg_dsn: str) -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        SnapshotReset(lambda: psycopg2.connect(pg_dsn), ["accounts; DROP TABLE x"])
    with pytest.raises(ValueError, match="'delete' or 'truncate'"):
        SnapshotReset(lambda: psycopg2.connect(pg_dsn), ["accounts"], method="vacuum")


def test_template_reset_gives_fresh_copies(pg_server: PostgresServer) -> None:
    with pg_server.fresh_database("tmpl") as template_dsn:
        _prepare(template_dsn)
        template = template_dsn.rsplit("/", 1)[1]
        with TemplateReset(lambda: pg_server.connect(), template) as r:
            first = r.fresh()
            _dirty(pg_server.dsn_for(first))
            second = r.fresh()
            assert second != first
            rows, logs, _ = _state(pg_server.dsn_for(second))
            assert rows == [(1, "alice", 1000), (2, "bob", 5)] and logs == 0
            conn = pg_server.connect()
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (first,))
                assert cur.fetchone()[0] == 0, "the previous copy is dropped"
            conn.close()


def test_snapshot_reset_with_psycopg3(pg_dsn: str) -> None:
    import psycopg

    _prepare(pg_dsn)
    with SnapshotReset(lambda: psycopg.connect(pg_dsn), ["accounts", "log"]) as r:
        for _ in range(2):
            _dirty(pg_dsn)
            r.reset()
            rows, logs, nxt = _state(pg_dsn)
            assert rows == [(1, "alice", 1000), (2, "bob", 5)]
            assert (logs, nxt) == (0, 3)


def test_snapshot_reset_with_sqlite3(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, name text, balance int);"
        "INSERT INTO accounts (name, balance) VALUES ('alice', 1000), ('bob', 5);"
    )
    conn.commit()
    with SnapshotReset(lambda: sqlite3.connect(path), ["accounts"]) as r:
        for _ in range(2):
            conn.execute("UPDATE accounts SET balance = 0")
            conn.execute("INSERT INTO accounts (name, balance) VALUES ('mallory', 1)")
            conn.commit()
            r.reset()
            assert conn.execute("SELECT * FROM accounts ORDER BY id").fetchall() == [
                (1, "alice", 1000),
                (2, "bob", 5),
            ]
            conn.execute("INSERT INTO accounts (name, balance) VALUES ('carol', 7)")
            assert conn.execute("SELECT max(id) FROM accounts").fetchone() == (3,)
            conn.rollback()
    conn.close()
