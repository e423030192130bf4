"""Connections are reused, never leaked: 500 executions of an ORM program
whose Engine is created in setup() (a new pool every execution) run on the
threads' own backends, under a role limited to 20 connections (as a server
with max_connections=20 would be; a role limit also binds the test server's
superuser-free clients)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]
import pytest

import frontrun

sqlalchemy = pytest.importorskip("sqlalchemy")
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

_LIMIT = 20
_EXECUTIONS = 500


@pytest.fixture
def limited_role(pg_dsn: str) -> Iterator[tuple[str, Any]]:
    """(admin DSN, SQLAlchemy URL of a login role allowed `_LIMIT` connections)."""
    role = f"frontrun_app_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {_LIMIT}")
        cur.execute("CREATE TABLE account (id integer PRIMARY KEY, balance integer NOT NULL)")
        cur.execute("INSERT INTO account VALUES (1, 0)")
        cur.execute(f"GRANT ALL ON account TO {role}")
    params = admin.get_dsn_parameters()
    url = sqlalchemy.engine.URL.create(
        "postgresql+psycopg2",
        username=role,
        host=params.get("host"),
        port=int(params["port"]) if params.get("port") else None,
        database=params.get("dbname"),
    )
    try:
        yield pg_dsn, url
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            cur.execute("DROP TABLE account")
            cur.execute(f"DROP ROLE {role}")
        admin.close()


def _deposit_twice(engine: Any) -> None:
    for _ in range(2):
        with Session(engine) as session:
            session.execute(text("SELECT balance FROM account WHERE id = 1 FOR UPDATE"))
            session.execute(text("UPDATE account SET balance = balance + 1 WHERE id = 1"))
            session.commit()


@pytest.mark.timeout(600)
def test_an_engine_made_in_setup_reuses_the_threads_backends(
    limited_role: tuple[str, Any],
) -> None:
    admin_dsn, url = limited_role
    role = url.username
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    seen: set[int] = set()
    most = 0

    def backends() -> list[int]:
        with admin.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s", (role,))
            return [r[0] for r in cur.fetchall()]

    def setup() -> Any:
        return sqlalchemy.create_engine(url)

    def invariant(engine: Any) -> bool:
        nonlocal most
        pids = backends()
        seen.update(pids)
        most = max(most, len(pids))
        return True

    # The program has fewer interleavings than that: explore it again until
    # 500 executions (each with its own engine and pool) have run.
    total = 0
    try:
        while total < _EXECUTIONS:
            seen.clear()
            r = frontrun.explore(
                setup,
                [_deposit_twice, _deposit_twice],
                invariant,
                teardown=lambda engine: engine.dispose(),
                max_executions=_EXECUTIONS - total,
                total_timeout=500,
            )
            assert r.property_holds is not False, r.explanation
            assert r.executions_explored > 0, r.explanation
            total += r.executions_explored
            # Two threads, one connection each: the same two backends served
            # every execution of this exploration (a leak would add two per
            # execution and hit the limit by the tenth).
            assert len(seen) <= 2, sorted(seen)
    finally:
        admin.close()
    assert total == _EXECUTIONS
    assert most <= 2, most
