"""Asks PostgreSQL whether a traced thread's statement waits for a row lock.

A statement blocked on a row lock looks, from the client, like a slow one.
Only the server knows the difference, so while the thread holding the turn
is inside a psycopg2/psycopg call, this probe polls ``pg_blocking_pids`` on a
side connection of its own and tells the gate as soon as the backend waits:
the gate then passes the turn. No timing guess is involved: a statement is
treated as blocked only once the server says so.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from frontrun._native import MarkerGate

__all__ = ["LockWaitProbe"]

_POLL_INTERVAL = 0.001
"""Seconds between two questions to the server about one running statement."""

_IDLE_WAIT = 0.05
"""Seconds the probe waits for a statement to probe before checking whether
the run is over."""

_QUERY = "SELECT pg_blocking_pids(%s), (SELECT query FROM pg_stat_activity WHERE pid = %s)"


def _side_connection(conn: Any) -> Any:
    """A new autocommit connection to the server of ``conn``, same driver."""
    password = getattr(getattr(conn, "info", None), "password", None)
    extra = {"password": password} if password else {}
    if type(conn).__module__.startswith("psycopg2"):
        import psycopg2

        side = psycopg2.connect(conn.dsn, **extra)
        side.autocommit = True
        return side
    import psycopg

    return psycopg.connect(conn.info.dsn, autocommit=True, **extra)


class LockWaitProbe:
    """Polls the server for the statement of the thread holding the turn."""

    def __init__(self) -> None:
        self.gate: MarkerGate | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, conn: Any) -> None:
        """Start probing (called by the gate at the run's first database call)."""
        if self._thread is not None or self.gate is None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="frontrun-lock-probe", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop probing and wait up to ``timeout`` seconds for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, conn: Any) -> None:
        gate = self.gate
        assert gate is not None
        try:
            side = _side_connection(conn)
        except Exception as exc:  # reported by the run's timeout message
            self.error = exc
            return
        try:
            cur = side.cursor()
            while not self._stop.is_set() and not gate.all_finished():
                call = gate.db_call_to_probe(_IDLE_WAIT)
                if call is None:
                    continue
                call_id, pid, _ = call
                cur.execute(_QUERY, (pid, pid))
                row = cur.fetchone()
                blockers = list(row[0] or []) if row else []
                if blockers:
                    gate.db_call_blocked(call_id, [int(p) for p in blockers], row[1])
                else:
                    time.sleep(_POLL_INTERVAL)
        except Exception as exc:
            self.error = exc
        finally:
            side.close()
