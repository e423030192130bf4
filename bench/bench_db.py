"""Database interception and fresh-state costs.

- statements/s through raw and wrapped psycopg2, psycopg 3 and sqlite3
  connections (a primary-key SELECT + UPDATE pair), and the wrapper overhead
  per statement;
- footprint analysis alone (cached SQL text);
- resets/s: snapshot restore (DELETE or TRUNCATE + INSERT, one round trip)
  vs a new database copied from a template;
- executions/s of ``frontrun.explore`` on the seed's two-transaction
  workloads (target: >= 50/s), connections pooled across executions.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import psycopg2

import frontrun
import frontrun.db
from frontrun import _native
from frontrun.db.reset import SnapshotReset, TemplateReset
from frontrun.testing import postgres_server

N = 2000


def _per_second(fn: Callable[[], None], n: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def _workload(conn: Any, placeholder: str) -> Callable[[], None]:
    select = f"SELECT balance FROM accounts WHERE name={placeholder}"
    update = f"UPDATE accounts SET balance={placeholder} WHERE name={placeholder}"

    def step() -> None:
        cur = conn.cursor()
        cur.execute(select, ("alice",))
        (b,) = cur.fetchone()
        cur.execute(update, (b + 1, "alice"))
        cur.close()

    return step


def _compare(name: str, raw: Any, wrapped: Any, placeholder: str) -> None:
    r = _per_second(_workload(raw, placeholder), N) * 2
    w = _per_second(_workload(wrapped, placeholder), N) * 2
    overhead_us = (1 / w - 1 / r) * 1e6
    print(
        f"{name:10s} raw {r:9.0f} stmt/s   wrapped {w:9.0f} stmt/s   "
        f"ratio {r / w:4.2f}x   overhead {overhead_us:6.1f} us/stmt"
    )


def _pg_bank(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (name text PRIMARY KEY, balance int)")
        cur.execute("INSERT INTO accounts VALUES ('alice', 1000), ('bob', 1000)")
    conn.close()


def _explore_rate(dsn: str, reset: SnapshotReset, for_update: bool) -> tuple[int, float]:
    lock = " FOR UPDATE" if for_update else ""

    def deposit(conn: Any, amount: int) -> None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT balance FROM accounts WHERE name='alice'{lock}")
            (old,) = cur.fetchone()
            cur.execute("UPDATE accounts SET balance=%s WHERE name='alice'", (old + amount,))
        conn.commit()

    def setup() -> list[Any]:
        reset.reset()
        return [psycopg2.connect(dsn), psycopg2.connect(dsn)]

    def teardown(conns: list[Any]) -> None:
        for c in conns:
            c.close()

    def invariant(conns: list[Any]) -> bool:
        with conns[0].cursor() as cur:
            cur.execute("SELECT balance FROM accounts WHERE name='alice'")
            ok = bool(cur.fetchone()[0] == 2300)
        conns[0].rollback()
        return ok

    t0 = time.perf_counter()
    runs = 0
    for _ in range(5):
        r = frontrun.explore(
            setup,
            [lambda s: deposit(s[0], 100), lambda s: deposit(s[1], 200)],
            invariant,
            teardown=teardown,
            stop_on_first=False,
            reproduce_on_failure=0,
        )
        runs += r.executions_explored
    return runs, runs / (time.perf_counter() - t0)


def _counter_rate(dsn: str) -> tuple[int, float]:
    """Every interleaving of the second seed's counter race with 3 workers."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS counts (counter int NOT NULL)")
        cur.execute("TRUNCATE counts; INSERT INTO counts VALUES (0)")
    conn.close()
    reset = SnapshotReset(lambda: psycopg2.connect(dsn), ["counts"])

    def increment(c: Any) -> None:
        with c.cursor() as cur:
            cur.execute("SELECT counter FROM counts")
            (n,) = cur.fetchone()
            cur.execute("UPDATE counts SET counter = %s", (n + 1,))
        c.commit()

    def setup() -> list[Any]:
        reset.reset()
        return [psycopg2.connect(dsn) for _ in range(3)]

    t0 = time.perf_counter()
    r = frontrun.explore(
        setup,
        [lambda s, i=i: increment(s[i]) for i in range(3)],
        lambda s: True,
        teardown=lambda s: [c.close() for c in s],
    )
    rate = r.executions_explored / (time.perf_counter() - t0)
    reset.close()
    return r.executions_explored, rate


def main() -> None:
    t0 = time.perf_counter()
    for _ in range(N):
        _native.sql_footprint(
            "UPDATE accounts SET balance=%s WHERE name=%s", (1, "alice")
        ).describe()
    print(f"footprint (cached text) + describe: {(time.perf_counter() - t0) / N * 1e6:.1f} us")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.db"
        raw = sqlite3.connect(path, isolation_level=None)
        raw.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER)")
        raw.execute("INSERT INTO accounts VALUES ('alice', 1000)")
        plain = sqlite3.connect(path, isolation_level=None)
        for c in (raw, plain):
            # Measure the wrapper, not the disk.
            c.execute("PRAGMA synchronous = OFF")
            c.execute("PRAGMA journal_mode = MEMORY")
        wrapped = frontrun.db.wrap(plain)
        _compare("sqlite3", raw, wrapped, "?")
        raw.close()
        wrapped.close()

    with postgres_server() as server, server.fresh_database("bench") as dsn:
        _pg_bank(dsn)
        for name, connect in (("psycopg2", psycopg2.connect), ("psycopg3", psycopg.connect)):
            raw = connect(dsn)
            raw.autocommit = True
            wrapped = frontrun.db.wrap(connect(dsn))
            wrapped.autocommit = True
            _compare(name, raw, wrapped, "%s")
            raw.close()
            wrapped.close()

        resets = 300
        rates: dict[str, float] = {}
        for method in ("delete", "truncate"):
            with SnapshotReset(lambda: psycopg2.connect(dsn), ["accounts"], method=method) as r:
                rates[method] = _per_second(r.reset, resets)
        template = dsn.rsplit("/", 1)[1]
        with TemplateReset(server.connect, template) as t:
            rates["template"] = _per_second(lambda: (t.fresh(), None)[1], 20)
        reset = SnapshotReset(lambda: psycopg2.connect(dsn), ["accounts"])
        for fu in (False, True):
            n, rate = _explore_rate(dsn, reset, fu)
            name = "FOR UPDATE fix" if fu else "lost update"
            print(f"explore, seed {name:15s}: {n:3d} executions, {rate:6.0f} executions/s")
        reset.close()
        n, rate = _counter_rate(dsn)
        print(f"explore, seed 2 counter x3, exhaustive: {n} executions, {rate:.0f} executions/s")
        for k, v in rates.items():
            print(f"reset by {k:9s}: {v:8.0f} resets/s")
        print(
            f"snapshot(delete) is {rates['delete'] / rates['template']:.0f}x faster than "
            f"template copies; truncate/delete = {rates['truncate'] / rates['delete']:.2f}"
        )


if __name__ == "__main__":
    main()
