"""Scripted interleavings of several PostgreSQL sessions, with blocking detection.

``Interleaving`` runs statements in a fixed order, each on its session's own
thread and connection. After every step it waits until each statement in
flight has either finished or is waiting for a lock of another session (asked
with ``pg_blocking_pids`` on a side connection, as PostgreSQL's isolation
tester does), so the outcome never depends on timing. A lock-wait cycle is
left to the server's deadlock detector, whose ``40P01`` error is recorded.

Every wait is bounded by ``timeout`` and its error names the statement.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frontrun.db._drivers import error_sqlstate

__all__ = ["Interleaving", "ScriptTimeout", "Step"]

DEADLOCK = "40P01"
SERIALIZATION_FAILURE = "40001"

_POLL = 0.001


class ScriptTimeout(TimeoutError):
    """A scripted statement neither finished nor blocked in time."""


@dataclass
class Step:
    """One statement of the script and, once known, what it did."""

    session: str
    sql: str
    params: Any = None
    rows: list[tuple[Any, ...]] | None = None
    status: str | None = None
    error: str | None = None
    sqlstate: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    #: Sessions it waited for when it was seen blocked (empty if it never was).
    blocked_by: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def value(self) -> Any:
        """The single value of a one-row, one-column result."""
        if not self.rows or len(self.rows) != 1 or len(self.rows[0]) != 1:
            raise ValueError(f"{self.sql!r} returned {self.rows!r}, not a single value")
        return self.rows[0][0]

    def describe(self) -> str:
        if not self.done.is_set():
            return f"{self.session} | {self.sql} → (blocked by {', '.join(self.blocked_by)})"
        if self.error is not None:
            return f"{self.session} | {self.sql} → error {self.sqlstate}: {self.error}"
        shown = self.rows if self.rows is not None else self.status
        waited = f" (waited for {', '.join(self.blocked_by)})" if self.blocked_by else ""
        return f"{self.session} | {self.sql} → {shown}{waited}"


class _Session:
    def __init__(self, name: str, conn: Any) -> None:
        self.name = name
        self.conn = conn
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.pid = int(cur.fetchone()[0])
        self.jobs: queue.Queue[Step | None] = queue.Queue()
        self.current: Step | None = None
        self.thread = threading.Thread(
            target=self._work, name=f"frontrun-script-{name}", daemon=True
        )
        self.thread.start()

    def _work(self) -> None:
        while True:
            step = self.jobs.get()
            if step is None:
                return
            try:
                with self.conn.cursor() as cur:
                    cur.execute(step.sql, step.params)
                    step.status = cur.statusmessage
                    if cur.description is not None:
                        step.rows = [tuple(r) for r in cur.fetchall()]
            except Exception as exc:
                step.error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                step.sqlstate = error_sqlstate(exc)
            finally:
                step.done.set()


class Interleaving:
    """Run statements of several sessions in a fixed order.

    ``connect()`` must return a new psycopg2 (or psycopg 3) connection; one is
    opened per session plus a side connection for lock queries. Use it as a
    context manager: every thread and connection is closed on exit.
    """

    def __init__(
        self, connect: Callable[[], Any], sessions: Sequence[str], *, timeout: float = 10.0
    ) -> None:
        self.timeout = timeout
        self.steps: list[Step] = []
        self._side = connect()
        self._side.autocommit = True
        self._sessions: dict[str, _Session] = {}
        try:
            for name in sessions:
                self._sessions[name] = _Session(name, connect())
        except BaseException:
            self.close()
            raise
        self._by_pid = {s.pid: s.name for s in self._sessions.values()}

    def __enter__(self) -> Interleaving:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(self, session: str, sql: str, params: Any = None) -> Step:
        """Start ``sql`` on ``session`` and settle: return once every statement
        in flight has finished or waits for a lock."""
        s = self._sessions.get(session)
        if s is None:
            raise KeyError(f"unknown session {session!r}; sessions: {sorted(self._sessions)}")
        if s.current is not None and not s.current.done.is_set():
            raise RuntimeError(
                f"session {session!r} is still blocked in {s.current.sql!r}; "
                "a session runs one statement at a time"
            )
        step = Step(session, sql, params)
        self.steps.append(step)
        s.current = step
        s.jobs.put(step)
        self.settle()
        return step

    def blockers(self, session: str) -> list[str]:
        """Sessions (of this interleaving) that ``session`` waits for now."""
        with self._side.cursor() as cur:
            cur.execute("SELECT pg_blocking_pids(%s)", (self._sessions[session].pid,))
            row = cur.fetchone()
        pids = row[0] or []
        return sorted(self._by_pid.get(int(p), f"pid {p}") for p in pids)

    def settle(self) -> None:
        """Wait until each statement in flight has finished or is blocked.

        Blocked statements that form a wait-for cycle are waited on too: the
        server's deadlock detector will fail one of them.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            waits: dict[str, list[str]] = {}
            pending = False
            for s in self._sessions.values():
                step = s.current
                if step is None or step.done.is_set():
                    continue
                blockers = self.blockers(s.name)
                # Finished while we asked: look again next round.
                if step.done.is_set():
                    pending = True
                    continue
                if blockers:
                    step.blocked_by = blockers
                    waits[s.name] = blockers
                else:
                    pending = True
            if not pending and not _has_cycle(waits):
                return
            if time.monotonic() >= deadline:
                running = [
                    f"{s.name}: {s.current.sql!r}"
                    for s in self._sessions.values()
                    if s.current is not None and not s.current.done.is_set()
                ]
                raise ScriptTimeout(
                    f"after {self.timeout:.1f}s these statements neither finished nor waited "
                    f"for a lock: {'; '.join(running)}"
                )
            time.sleep(_POLL)

    def finish(self, step: Step) -> Step:
        """Wait (bounded) for a blocked ``step`` to complete."""
        if not step.done.wait(self.timeout):
            raise ScriptTimeout(
                f"{step.session}: {step.sql!r} still blocked by "
                f"{self.blockers(step.session)} after {self.timeout:.1f}s"
            )
        return step

    def trace(self) -> str:
        """The script so far, one line per statement, with values and errors."""
        return "\n".join(s.describe() for s in self.steps)

    def close(self) -> None:
        """Cancel anything still running, stop the threads, close connections."""
        for s in self._sessions.values():
            if s.current is not None and not s.current.done.is_set():
                with self._side.cursor() as cur:
                    cur.execute("SELECT pg_cancel_backend(%s)", (s.pid,))
            s.jobs.put(None)
        for s in self._sessions.values():
            s.thread.join(self.timeout)
            if s.thread.is_alive():
                raise ScriptTimeout(f"session {s.name!r} did not stop in {self.timeout:.1f}s")
            s.conn.close()
        self._sessions.clear()
        self._side.close()


def _has_cycle(waits: dict[str, list[str]]) -> bool:
    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        state[n] = 1
        for m in waits.get(n, []):
            if state.get(m) == 1 or (m not in state and visit(m)):
                return True
        state[n] = 2
        return False

    return any(n not in state and visit(n) for n in waits)
