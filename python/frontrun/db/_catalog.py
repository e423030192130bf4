"""What the PostgreSQL catalog says about unique columns.

Two writers of different rows still wait for each other (and one may fail)
when they write the same value of a unique column. The model orders writes
of unique columns; it reads which columns those are here, once per database
and execution (DDL seen within an execution makes its tables count every
column as unique until the next read). A table not listed (created later, or
with a unique index on an expression) counts every column as unique.
"""

from __future__ import annotations

from typing import Any

from frontrun import _native

# Every user table with the columns its unique (or exclusion) indexes cover;
# `expr` is true for an index on an expression, whose columns are unknown.
_UNIQUE_COLUMNS = """
SELECT c.relname, a.attname, (i.indexprs IS NOT NULL OR i.indisexclusion) AS expr
FROM pg_class c
JOIN pg_namespace s ON s.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indrelid = c.oid AND (i.indisunique OR i.indisexclusion)
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND a.attnum = ANY(i.indkey)
WHERE c.relkind IN ('r', 'p')
  AND s.nspname NOT IN ('pg_catalog', 'information_schema')
  AND s.nspname NOT LIKE 'pg_toast%'
"""


def _idle(conn: Any) -> bool:
    # libpq's PQTRANS_IDLE is 0, in psycopg2 and psycopg 3 alike.
    return not conn.closed and int(conn.info.transaction_status) == 0


def _query(conn: Any) -> list[tuple[str, str | None, bool | None]]:
    """Run the catalog query on an idle connection and leave it idle."""
    cur = conn.cursor()
    try:
        cur.execute(_UNIQUE_COLUMNS)
        rows = list(cur.fetchall())
    finally:
        cur.close()
        if not _idle(conn):
            conn.rollback()
    return rows


def learn_unique_columns(model: _native.DbModel, conn: Any) -> bool:
    """Declare the unique columns of every table of ``conn``'s database to
    ``model``. Returns ``False`` (nothing declared) if ``conn`` is inside a
    transaction, where a query would take its snapshot early."""
    if not _idle(conn):
        return False
    tables: dict[str, set[str]] = {}
    unknown: set[str] = set()
    for table, column, expr in _query(conn):
        cols = tables.setdefault(table, set())
        if expr:
            unknown.add(table)
        elif column is not None:
            cols.add(column)
    for table, cols in tables.items():
        if table not in unknown:
            model.declare_unique(table, sorted(cols))
    return True
