"""Fresh database state for every execution of an exploration.

Two ways, both measured by ``bench/bench_db.py``:

- :class:`SnapshotReset` records the rows of named tables (and their serial
  sequences) once, then each ``reset()`` empties the tables and re-inserts
  the rows in one round trip.
- :class:`TemplateReset` makes the prepared database a template and gives
  each execution a new database copied from it (``CREATE DATABASE …
  TEMPLATE``); slower, but it resets everything, schema included.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SnapshotReset", "TemplateReset"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _ident(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(
            f"table name {name!r} must be a plain identifier (optionally schema-qualified)"
        )
    return name


def _is_sqlite(conn: Any) -> bool:
    return type(conn).__module__.startswith("sqlite3")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SnapshotReset:
    """Restore named tables to the rows they hold now.

    ``connect()`` opens a connection to the database: psycopg2, psycopg 3 or
    sqlite3. The rows are copied, on the server, into temporary tables of
    that connection (so no value is ever rendered as SQL text by a driver),
    and each ``reset()`` puts them back in one round trip. ``method`` is
    ``"delete"`` (default; cheap for small tables and needs no exclusive
    lock) or ``"truncate"`` (PostgreSQL). ``lock_timeout`` bounds the wait
    for a lock a leftover session still holds (PostgreSQL).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        tables: Sequence[str],
        *,
        method: str = "delete",
        lock_timeout: float = 5.0,
    ) -> None:
        if method not in ("delete", "truncate"):
            raise ValueError(f"method must be 'delete' or 'truncate', not {method!r}")
        if not tables:
            raise ValueError("SnapshotReset needs at least one table name")
        self.tables = [_ident(t) for t in tables]
        self._conn = connect()
        self._sqlite = _is_sqlite(self._conn)
        if self._sqlite:
            if method == "truncate":
                raise ValueError("SQLite has no TRUNCATE: use method='delete'")
            self._conn.isolation_level = None  # autocommit: the script says BEGIN
        else:
            self._conn.autocommit = True
        self._script = self._record(method, lock_timeout)

    def _copy_name(self, index: int) -> str:
        return f"frontrun_snapshot_{index}"

    def _record(self, method: str, lock_timeout: float) -> str:
        parts = [] if self._sqlite else [f"SET lock_timeout = '{int(lock_timeout * 1000)}ms'"]
        parts.append("BEGIN")
        if method == "truncate":
            parts.append(f"TRUNCATE {', '.join(self.tables)}")
        else:
            # Children first would matter only with foreign keys between
            # them; deferring checks is not possible for all FKs, so delete
            # in reverse of the order given (give parents first).
            parts += [f"DELETE FROM {t}" for t in reversed(self.tables)]
        cur = self._conn.cursor()
        try:
            for i, t in enumerate(self.tables):
                copy = self._copy_name(i)
                cur.execute(
                    f"DROP TABLE IF EXISTS temp.{copy}"
                    if self._sqlite
                    else f"DROP TABLE IF EXISTS pg_temp.{copy}"
                )
                cur.execute(f"CREATE TEMP TABLE {copy} AS SELECT * FROM {t}")
                parts.append(
                    f"INSERT INTO {t} SELECT * FROM {'temp' if self._sqlite else 'pg_temp'}.{copy}"
                )
                parts += self._sequences(cur, t)
        finally:
            cur.close()
        parts.append("COMMIT")
        return ";\n".join(parts)

    def _sequences(self, cur: Any, table: str) -> list[str]:
        """Statements that put ``table``'s id counters back."""
        if self._sqlite:
            cur.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
            if cur.fetchone() is None:
                return []
            cur.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
            row = cur.fetchone()
            out = [f"DELETE FROM sqlite_sequence WHERE name = {_quote(table)}"]
            if row is not None:
                out.append(
                    f"INSERT INTO sqlite_sequence (name, seq) VALUES ({_quote(table)}, {int(row[0])})"
                )
            return out
        cur.execute(
            "SELECT s FROM (SELECT pg_get_serial_sequence(%s, attname) AS s "
            "FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped) q WHERE s IS NOT NULL",
            (table, table),
        )
        out = []
        for (seq,) in cur.fetchall():
            cur.execute(f"SELECT last_value, is_called FROM {seq}")
            last, called = cur.fetchone()
            out.append(
                f"SELECT setval({_quote(seq)}, {int(last)}, {'true' if called else 'false'})"
            )
        return out

    def reset(self) -> None:
        """Put the tables back as recorded (one round trip)."""
        if self._sqlite:
            self._conn.executescript(self._script)
            return
        cur = self._conn.cursor()
        try:
            cur.execute(self._script)
        finally:
            cur.close()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SnapshotReset:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TemplateReset:
    """A new database per execution, copied from a prepared template.

    ``admin_connect()`` opens a connection to a maintenance database of the
    same server; ``template`` is the prepared database (no session may be
    connected to it while copies are made). ``fresh()`` returns the name of a
    new copy and drops the previous one.
    """

    def __init__(self, admin_connect: Callable[[], Any], template: str) -> None:
        self.template = _ident(template)
        self._admin = admin_connect()
        self._admin.autocommit = True
        self._current: str | None = None

    def fresh(self) -> str:
        """Drop the previous copy and create a new one; return its name."""
        self.drop()
        name = f"{self.template}_x{uuid.uuid4().hex[:10]}"
        with self._admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self._current = name
        return name

    def drop(self) -> None:
        if self._current is not None:
            with self._admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self._current}" WITH (FORCE)')
            self._current = None

    def close(self) -> None:
        try:
            self.drop()
        finally:
            self._admin.close()

    def __enter__(self) -> TemplateReset:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
