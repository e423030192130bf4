"""Database statements as scheduling points.

- :func:`instrument` — while active, connections opened with
  ``psycopg2.connect``, ``psycopg.connect`` or ``sqlite3.connect`` are
  wrapped. ``frontrun.explore`` does this by itself for every exploration
  (for drivers already imported), and keeps closed connections for the next
  execution, reset to a new connection's state.
- :func:`wrap` — wrap an existing connection.
- :mod:`frontrun.db.reset` — fresh tables per execution;
  :mod:`frontrun.db.script` — scripted multi-session interleavings.

On a wrapped connection every ``execute``, ``executemany``, ``commit`` and
``rollback`` (and the commit of ``with conn:``) is a scheduling point whose
footprint (tables, rows, read/write, locks) is computed in Rust; rows
fetched are recorded for explanations. Under exploration a statement that
would wait for a row lock held by a paused transaction is not scheduled
(the lock model predicts it) or, when the model cannot tell, is tried under
a 1 ms ``lock_timeout`` in a savepoint, undone and retried once some
transaction has ended. SQLite's database write lock is modelled too.
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
