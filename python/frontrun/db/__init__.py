"""Database statements as scheduling points.

- :func:`instrument` — while active, connections opened with
  ``psycopg2.connect``, ``psycopg.connect`` or ``sqlite3.connect`` are
  wrapped.
- :func:`wrap` — wrap an existing connection.

On a wrapped connection every ``execute``, ``executemany``, ``commit`` and
``rollback`` (and the commit of ``with conn:``) is a scheduling point whose
footprint (tables, rows, read/write, locks) is computed in Rust; rows
fetched are recorded for explanations.
"""

from frontrun.db._patch import instrument
from frontrun.db._proxy import ConnectionProxy, CursorProxy, wrap
from frontrun.db._session import DbSession, UnparsedSqlWarning, current_session

__all__ = [
    "ConnectionProxy",
    "CursorProxy",
    "DbSession",
    "UnparsedSqlWarning",
    "current_session",
    "instrument",
    "wrap",
]
