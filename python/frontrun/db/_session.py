"""One interception session: the lock models, connection numbering and warnings."""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from frontrun import _native


class TrackedConnection(Protocol):
    """A connection the session tracks: a `frontrun.db._proxy.ConnectionProxy`,
    named by role here because the proxies import this module (the session
    reads their transaction, model and label; it must not import them)."""

    def __getattr__(self, name: str) -> Any: ...


#: Called when a statement found a row locked by a paused transaction:
#: ``(connection, footprint, site, min_epoch)``; it returns once the
#: statement may be tried again (some transaction ended: ``model.epoch >=
#: min_epoch``).
BlockedHandler = Callable[["TrackedConnection", _native.SqlFootprint, int, int], None]

__all__ = ["DbSession", "UnparsedSqlWarning", "current_session"]


class UnparsedSqlWarning(UserWarning):
    """A statement could not be analysed: it is treated as touching everything."""


def _label(index: int) -> str:
    """``Txn A``, ``Txn B``, … ``Txn Z``, ``Txn AA``…"""
    letters = ""
    n = index
    while True:
        letters = chr(ord("A") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            return f"Txn {letters}"


class DbSession:
    """State shared by the wrapped connections of one exploration.

    It keeps one lock model per database for the whole exploration (so that
    statements map to the same engine objects in every execution); call
    :meth:`new_execution` between executions.
    """

    def __init__(
        self,
        *,
        probe_locks: bool | None = None,
        on_blocked: BlockedHandler | None = None,
        pooling: bool = False,
        isolation: str | None = None,
    ) -> None:
        """``probe_locks``: run PostgreSQL statements whose lock waits the
        model cannot predict with a short ``lock_timeout`` inside a savepoint,
        so that waiting for a paused transaction is seen, undone and retried
        (default: only on explored threads). ``on_blocked`` decides how to
        wait before retrying (default: an exploration scheduling point).
        ``pooling``: a connection opened through :func:`instrument` and closed
        is reset and kept for the next identical ``connect()`` call, since
        opening a PostgreSQL connection costs several milliseconds per
        execution."""
        self.probe_locks = probe_locks
        self.pooling = pooling
        self.isolation = isolation
        self._labels: dict[tuple[str, int], str] = {}
        self._pool: dict[tuple[Any, ...], list[Any]] = {}
        self.on_blocked = on_blocked
        self._lock = threading.Lock()
        self._models: dict[str, _native.DbModel] = {}
        self._keys: dict[str, str] = {}
        self._next = 0
        self._warned: set[str] = set()
        self._conns: list[weakref.ref[TrackedConnection]] = []
        self._catalog_read: set[str] = set()
        # Statements a lock probe found waiting and undid, until retried:
        # (database, txn) -> (statement, label, model).
        self._undone: dict[tuple[str, int], tuple[_native.SqlFootprint, str, _native.DbModel]] = {}
        # Announced statements that may hold rows when they wait, until run:
        # (database, txn) -> (statement, label, model).
        self._pending: dict[tuple[str, int], tuple[_native.SqlFootprint, str, _native.DbModel]] = {}
        self.caveat: str | None = None
        """Why a passing exploration is not a proof (``None``: it is)."""

    def declare_key(self, table: str, column: str) -> None:
        """Fix the column that identifies rows of ``table`` (its primary key)."""
        with self._lock:
            self._keys[table] = column
            for model in self._models.values():
                model.declare_key(table, column)

    def models(self) -> dict[str, _native.DbModel]:
        with self._lock:
            return dict(self._models)

    def note_label(self, database: str, txn: int, label: str) -> None:
        with self._lock:
            self._labels[(database, txn)] = label

    def label_of(self, database: str, txn: int) -> str:
        with self._lock:
            return self._labels.get((database, txn), f"txn {txn}")

    def model(self, database: str) -> _native.DbModel:
        with self._lock:
            model = self._models.get(database)
            if model is None:
                model = _native.DbModel(database)
                for table, column in self._keys.items():
                    model.declare_key(table, column)
                self._models[database] = model
            return model

    def learn_catalog(self, database: str, driver: str, conn: Any) -> None:
        """Read ``database``'s unique columns through ``conn`` (a new
        connection, still idle), once per execution (PostgreSQL only)."""
        if driver not in ("psycopg2", "psycopg"):
            return
        with self._lock:
            if database in self._catalog_read:
                return
            model = self._models.get(database)
        if model is None:
            return
        from frontrun.db._catalog import learn_unique_columns

        if _native._db_call(learn_unique_columns, model, conn):
            with self._lock:
                self._catalog_read.add(database)

    def note_undone(self, conn: TrackedConnection, fp: _native.SqlFootprint) -> None:
        """``conn``'s statement ``fp`` waits for a lock: the model holds it
        back, or a probe undid it, and it is (re)tried later (see
        ``ConnectionProxy._probed``). Noted
        when it may have held something before it waited (see
        ``DbModel.may_wait_holding``): an INSERT or UPDATE waits in a unique
        check after it wrote (and locked) its row version, and a statement
        locking several rows locks some before it waits for another; others
        may wait for those."""
        if not conn._model.may_wait_holding(fp):
            return
        with self._lock:
            self._undone[(conn._database, conn._txn)] = (fp, conn.label, conn._model)

    def note_pending(self, conn: TrackedConnection, fp: _native.SqlFootprint) -> None:
        """``conn``'s statement ``fp`` is announced and not yet run: the
        model may hold it back while another transaction holds its rows.
        It waits from scratch then, where the server may have let it lock
        some rows first (see ``check_undone``)."""
        if fp.inert or fp.ends_transaction or not conn._model.may_wait_holding(fp):
            return
        with self._lock:
            self._pending[(conn._database, conn._txn)] = (fp, conn.label, conn._model)

    def clear_pending(self, conn: TrackedConnection) -> None:
        with self._lock:
            self._pending.pop((conn._database, conn._txn), None)

    def clear_undone(self, conn: TrackedConnection) -> None:
        with self._lock:
            self._undone.pop((conn._database, conn._txn), None)

    def check_undone(self, conn: TrackedConnection, fp: _native.SqlFootprint) -> None:
        """``fp`` is about to run on ``conn`` while another transaction's
        statement is undone. On the server that statement would still wait,
        holding what it did before the wait (rows it locked, a row version
        it wrote that a unique check waits for): if ``fp`` might wait for
        those (``DbModel.may_wait_for_undone``: the same rows, or a unique
        column both change), ``fp`` might have waited too, e.g. in a deadlock
        the search cannot see. Then a passing exploration is no proof."""
        if fp.inert or fp.ends_transaction or not (self._undone or self._pending):
            return
        with self._lock:
            if self.caveat is not None:
                return
            # Only while they would still wait on the server: once their
            # blockers ended, they would have run whole (an order the search
            # covers on its own).
            held_back = [
                (key, (pending, who))
                for key, (pending, who, model) in self._pending.items()
                if model.predict(key[1], pending)[0] == "blocks"
            ]
            still_undone = [
                (key, (undone, who))
                for key, (undone, who, model) in self._undone.items()
                if model.predict(key[1], undone)[0] != "proceeds"
            ]
            for (database, txn), (undone, who) in [*still_undone, *held_back]:
                if database == conn._database and txn != conn._txn:
                    if conn._model.may_wait_for_undone(txn, undone, fp):
                        what = undone.describe()
                        self.caveat = (
                            f"{who}'s statement ({what}) waited for a lock and frontrun "
                            f"ran it only once the lock was free, from scratch; meanwhile "
                            f"{conn.label} ran {fp.describe()}, which on the server could "
                            f"have waited for what the first had already done (a deadlock "
                            f"this search does not see)"
                        )
                        return

    def next_connection(self) -> tuple[int, str]:
        """A transaction id and an explanation label for a new connection."""
        with self._lock:
            index = self._next
            self._next += 1
        return index + 1, _label(index)

    def probing(self) -> bool:
        """Whether statements of the current thread are probed for lock waits."""
        if self.probe_locks is not None:
            return self.probe_locks
        scheduled = getattr(_native, "_coop_scheduled", None)
        return bool(scheduled is not None and scheduled())

    def wait_for_release(
        self, conn: TrackedConnection, fp: _native.SqlFootprint, site: int, min_epoch: int
    ) -> None:
        """Return once ``fp`` may be tried again on ``conn``."""
        if self.on_blocked is not None:
            self.on_blocked(conn, fp, site, min_epoch)
            return
        wait = getattr(_native, "db_wait", None)
        if wait is None:
            raise RuntimeError(
                f"{conn.label}: a statement waits for a row lock of a paused transaction "
                "and this build of frontrun has no exploration driver to schedule others"
            )
        wait(
            conn._model,
            conn._txn,
            fp,
            site,
            min_epoch,
            conn.isolation == "serializable",
            None,
            conn._snapshot_isolation(),
        )

    def track(self, conn: TrackedConnection) -> None:
        """Remember ``conn`` so that :meth:`close_connections` can close it."""
        with self._lock:
            self._conns.append(weakref.ref(conn))

    def close_connections(self, *, pooled: bool = False, carry: bool = False) -> list[Any]:
        """Close every tracked connection still open (back to the pool if
        pooling); with ``pooled``, also really close the pooled ones.

        With ``carry``, connections of the driver's own type are rolled back
        and returned instead of closed: whoever holds them (a module-level
        engine's pool, a thread's Django connection) keeps a connection that
        is its own, rather than one the next ``connect()`` may be given too.
        """
        with self._lock:
            conns, self._conns = self._conns, []
        carried: list[Any] = []
        for ref in conns:
            conn = ref()
            if conn is None:
                continue
            typed = conn._st().get("_typed") if carry else None
            if typed is not None and not conn._released and _native._db_call(_rolled_back, conn):
                carried.append(typed)
                continue
            # Best effort: a broken connection is closed all the same.
            with contextlib.suppress(Exception):
                conn.close()
        if pooled:
            with self._lock:
                pool, self._pool = self._pool, {}
            for reals in pool.values():
                for real in reals:
                    # An instrumented connection's own close() would only
                    # give it back: close it as its driver does.
                    base = getattr(type(real), "_frontrun_base", None)
                    with contextlib.suppress(Exception):
                        base.close(real) if base is not None else real.close()
        return carried

    def take_pooled(self, key: tuple[Any, ...]) -> Any:
        """A kept connection opened with the same arguments, or ``None``."""
        with self._lock:
            reals = self._pool.get(key)
            return reals.pop(0) if reals else None

    def give_back(self, key: tuple[Any, ...], driver: str, real: Any, kept: Any = None) -> bool:
        """Reset ``real`` to a new connection's state and keep it; ``False``
        (caller closes it) if pooling is off or the reset failed."""
        if not self.pooling or driver == "sqlite3":
            return False
        try:
            if real.closed:
                return False
            _native._db_call(_reset, driver, real)
        except Exception:
            return False
        with self._lock:
            self._pool.setdefault(key, []).append(real if kept is None else kept)
        return True

    def new_execution(self) -> None:
        """Close the previous execution's connections; forget open
        transactions, connection numbers and statement sites."""
        carried = self.close_connections(carry=True)
        with self._lock:
            self._next = 0
            self._undone.clear()
            self._pending.clear()
            for model in self._models.values():
                model.reset_locks()
            # Read the catalog again: setup() or the last execution may have
            # added a unique constraint (DDL the model saw is handled there).
            self._catalog_read.clear()
        _native.db_sites_clear()
        if not carried:
            return
        # Imported only when needed: an import statement costs a few
        # microseconds even when the module is loaded, on every execution.
        from frontrun.db import _typed

        for conn in carried:
            # Numbered first, in the order they were opened: deterministic.
            _typed.reuse(conn, self, _typed.tracker_of(conn)._pool_key)  # type: ignore[union-attr]

    def warn_unparsed(self, database: str, sql: str, error: str | None) -> None:
        """Warn once per database that a statement conflicts with everything."""
        with self._lock:
            if database in self._warned:
                return
            self._warned.add(database)
        warnings.warn(
            f"frontrun could not analyse this SQL ({error or 'unknown error'}); it is treated "
            f"as conflicting with every statement on {database}, which makes exploration "
            f"slower but stays correct: {sql[:200]!r}",
            UnparsedSqlWarning,
            stacklevel=4,
        )


def _rolled_back(tracker: Any) -> bool:
    """End ``tracker``'s open transaction; whether its connection is usable."""
    raw = tracker._conn
    try:
        if raw.closed:
            return False
        tracker._model.end(tracker._txn)
        raw.rollback()
    except Exception:
        return False
    return True


_RESET_SQL = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES"
)


def _reset(driver: str, real: Any) -> None:
    """Give ``real`` the state of a new connection."""
    real.rollback()
    real.autocommit = True
    with real.cursor() as cur:
        # DISCARD ALL minus DEALLOCATE ALL: psycopg 3 keeps track of the
        # statements it prepared and would not know they were dropped.
        cur.execute(_RESET_SQL)
    if driver == "psycopg2":
        real.reset()
    else:
        real.autocommit = False
        real.isolation_level = None
        real.read_only = None
        real.deferrable = None


_default = DbSession()
_stack: list[DbSession] = []
_stack_lock = threading.Lock()


def current_session() -> DbSession:
    """The innermost :func:`frontrun.db.instrument` session, else a process-wide one."""
    with _stack_lock:
        return _stack[-1] if _stack else _default


def push_session(session: DbSession) -> None:
    with _stack_lock:
        _stack.append(session)


def pop_session(session: DbSession) -> None:
    with _stack_lock:
        if session in _stack:
            _stack.remove(session)


def describe_params(params: Any) -> str | None:
    if params is None:
        return None
    text = repr(params)
    return text if len(text) <= 120 else text[:119] + "…"
