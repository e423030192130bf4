"""Small PostgreSQL helpers shared by the database tests."""

from __future__ import annotations

from typing import Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]


def query_one(dsn: str, sql: str) -> Any:
    """The first column of the first row of `sql`, on a connection of its own."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()
