"""Connection and cursor proxies that turn every statement into a scheduling point.

Each ``execute``/``executemany``/``commit``/``rollback`` computes the
statement's footprint in Rust, emits it as an event of the current thread
(parking it if an exploration says so) and only then runs the real call.
psycopg2's connection and cursor are C types, so these are proxies that
delegate every other attribute to the real object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from frontrun import _native
from frontrun.db import _drivers
from frontrun.db._session import DbSession, current_session, describe_params

__all__ = ["ConnectionProxy", "CursorProxy", "wrap"]

_MAX_ROWS_SHOWN = 5

LOCK_NOT_AVAILABLE = "55P03"
# Long enough to never fire without a conflicting lock (acquiring a free lock
# does not wait at all); a wait means the holder is a paused transaction.
_PROBE_TIMEOUT = "1ms"
_SAVEPOINT = "frontrun_probe"
# Driver calls run as one opaque step: no traced accesses or cooperative
# locks inside them (see crates/frontrun-py/src/db/opaque.rs).
_call = _native._db_call


def _show_row(row: Any) -> str:
    if isinstance(row, tuple | list) and len(row) == 1:
        return repr(row[0])
    if hasattr(row, "keys") and not isinstance(row, tuple | list):
        with contextlib.suppress(Exception):
            return repr(dict(row))
    return repr(tuple(row)) if isinstance(row, list) else repr(row)


def _show_rows(rows: list[Any]) -> str:
    shown = ", ".join(_show_row(r) for r in rows[:_MAX_ROWS_SHOWN])
    if len(rows) > _MAX_ROWS_SHOWN:
        shown += f", … ({len(rows)} rows)"
    return f"[{shown}]"


def _new_fields(proxy: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    # A function is opaque to the exploration's object walk, so the driver
    # objects behind a proxy are not registered as shared state (psycopg 3's
    # internals would otherwise produce events of their own).
    object.__setattr__(proxy, "_st", lambda: fields)
    return fields


def _fields(proxy: Any) -> dict[str, Any]:
    fields: dict[str, Any] = object.__getattribute__(proxy, "_st")()
    return fields


def _field(name: str) -> Any:
    """A read-only view of one hidden field (found without a failed lookup)."""
    return property(lambda self: object.__getattribute__(self, "_st")()[name])


class ConnectionProxy:
    """A wrapped DB-API connection; see :func:`frontrun.db.wrap`."""

    __slots__ = ("__weakref__", "_st")

    _conn = _field("_conn")
    _driver = _field("_driver")
    _dialect = _field("_dialect")
    _session = _field("_session")
    _database = _field("_database")
    _model = _field("_model")
    _txn = _field("_txn")
    label = _field("label")
    _explicit = _field("_explicit")
    _txn_level = _field("_txn_level")
    _session_level = _field("_session_level")
    _pool_key = _field("_pool_key")
    _released = _field("_released")

    def __init__(
        self,
        conn: Any,
        session: DbSession,
        label: str | None = None,
        pool_key: tuple[Any, ...] | None = None,
        driver: str | None = None,
    ) -> None:
        driver = driver or _drivers.driver_of(conn)
        txn, default_label = session.next_connection()
        database = _drivers.connection_database(driver, conn)
        d = _new_fields(self)
        d["_conn"] = conn
        d["_driver"] = driver
        d["_dialect"] = _drivers.dialect_of(driver)
        d["_session"] = session
        d["_database"] = database
        d["_model"] = session.model(database)
        d["_txn"] = txn
        d["label"] = label or default_label
        d["_explicit"] = False
        d["_txn_level"] = None
        d["_session_level"] = None
        d["_pool_key"] = pool_key
        d["_released"] = False
        session.track(self)
        session.note_label(database, txn, d["label"])
        session.learn_catalog(database, driver, conn)
        if session.isolation is not None:
            _drivers.set_isolation(driver, conn, session.isolation)

    # --- delegation -------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        fields = _fields(self)
        if name in fields:
            return fields[name]
        if fields["_released"]:
            raise RuntimeError(
                f"{self.label}: this connection was closed (frontrun keeps the real one "
                "for the next execution); open a new one"
            )
        return _call(getattr, _fields(self)["_conn"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _fields(self):
            _fields(self)[name] = value
        else:
            _call(setattr, self._conn, name, value)

    def __repr__(self) -> str:
        return f"<frontrun {self.label} {_fields(self)['_conn']!r}>"

    @property
    def closed(self) -> Any:
        return True if self._released else self._conn.closed

    @property
    def wrapped(self) -> Any:
        """The real driver connection."""
        return self._conn

    # --- transaction state -------------------------------------------------

    @property
    def isolation(self) -> str:
        """Isolation level of the current (or next) transaction, lower-case."""
        if self._txn_level is not None:
            return str(self._txn_level)
        if self._session_level is not None:
            return str(self._session_level)
        return str(_call(_drivers.isolation_of, self._driver, self._conn))

    def _snapshot_isolation(self) -> bool:
        """Whether the transaction's first statement takes its snapshot
        (REPEATABLE READ and SERIALIZABLE on PostgreSQL)."""
        return self._dialect == "postgresql" and self.isolation in (
            "repeatable read",
            "serializable",
        )

    def _take_snapshot(self) -> None:
        """Start the transaction's snapshot now (see ``db_event``)."""
        self._plain("SELECT 1")

    def _autocommit(self) -> bool:
        return bool(_call(_drivers.is_autocommit, self._driver, self._conn))

    def _before(self, fp: _native.SqlFootprint, sql: str, params: Any) -> int:
        """Announce ``fp`` as the current thread's next event; return its site."""
        if fp.unparsed:
            self._session.warn_unparsed(self._database, sql, fp.parse_error)
        if fp.isolation is not None:
            if fp.isolation_for_session:
                _fields(self)["_session_level"] = fp.isolation
            else:
                _fields(self)["_txn_level"] = fp.isolation
        site = _native.db_site(self.label, sql, describe_params(params), fp.describe())
        # While parked here, the model may hold it back for a lock (see
        # DbSession.check_undone).
        self._session.note_pending(self, fp)
        try:
            _native.db_event(
                self._model,
                self._txn,
                fp,
                site,
                serializable=self.isolation == "serializable",
                lock_model=True,
                snapshot_isolation=self._snapshot_isolation(),
                take_snapshot=self._take_snapshot,
            )
        finally:
            self._session.clear_pending(self)
        # (After the scheduling point: what is undone or held back is what
        # it was when the statement really runs.)
        self._session.check_undone(self, fp)
        return site

    def _after(self, fp: _native.SqlFootprint) -> None:
        """The statement ran: update the lock model and the transaction state."""
        if fp.begins:
            _fields(self)["_explicit"] = True
        # Also for SQLite: the model accumulates what the commit publishes
        # (its lock predictions are used for PostgreSQL only).
        self._model.apply(self._txn, fp)
        if fp.ends_transaction:
            self._ended()
        elif self._autocommit() and not self._explicit:
            self._model.end(self._txn)
            _fields(self)["_txn_level"] = None

    def _ended(self) -> None:
        self._model.end(self._txn)
        _fields(self)["_explicit"] = False
        _fields(self)["_txn_level"] = None

    def _sql_text(self, sql: Any) -> str:
        if isinstance(sql, str):
            return sql
        if isinstance(sql, bytes):
            return sql.decode()
        as_string = getattr(sql, "as_string", None)
        if as_string is not None:  # psycopg's sql.Composed
            return str(as_string(self._conn))
        return str(sql)

    def _end(self, word: str, real: Any) -> None:
        fp = _native.sql_footprint(word, None, self._dialect)
        site = self._before(fp, word, None)
        try:
            _call(real)
        except BaseException as exc:
            _record_error(site, exc)
            # A failed COMMIT (serialization failure…) ended the transaction.
            self._finish("ROLLBACK")
            raise
        self._finish(word)

    # --- DB-API ------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> CursorProxy:
        return CursorProxy(_call(self._conn.cursor, *args, **kwargs), self)

    def execute(self, sql: Any, params: Any = None, *args: Any, **kwargs: Any) -> CursorProxy:
        """``conn.execute`` of sqlite3 and psycopg 3."""
        cur = self.cursor()
        cur.execute(sql, params, *args, **kwargs)
        return cur

    def executemany(self, sql: Any, seq: Any, *args: Any, **kwargs: Any) -> CursorProxy:
        cur = self.cursor()
        cur.executemany(sql, seq, *args, **kwargs)
        return cur

    def commit(self) -> None:
        self._end("COMMIT", self._conn.commit)

    def rollback(self) -> None:
        self._end("ROLLBACK", self._conn.rollback)

    def close(self) -> None:
        if self._released:
            return
        self._model.end(self._txn)
        if self._dialect == "postgresql":
            # A statement still running belongs to a thread the exploration
            # gave up on (run timeout): cancel it, or closing would wait for it.
            with contextlib.suppress(Exception):
                if _call(_busy, self._conn):
                    self._conn.cancel()
        key = self._pool_key
        # An instrumented connection of the driver's type is kept itself
        # (reset through its raw view).
        kept = _fields(self).get("_typed", self._conn)
        if key is not None and self._session.give_back(key, self._driver, self._conn, kept):
            _fields(self)["_released"] = True
            return
        if self._dialect == "postgresql" and not self._conn.closed:
            # Give the locks back at once: closing alone may leave the
            # server-side session around for a moment.
            with contextlib.suppress(Exception):
                if self._in_transaction():
                    _call(self._conn.rollback)
        _call(self._conn.close)

    def __enter__(self) -> ConnectionProxy:
        _call(self._conn.__enter__)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        # psycopg2 and sqlite3 commit or roll back here (psycopg 3 also
        # closes): announce it first, then let the driver do the rest.
        if exc_type is not None:
            with contextlib.suppress(Exception):
                self.rollback()
            return _call(self._conn.__exit__, exc_type, exc, tb)
        try:
            self.commit()
        except BaseException as failed:
            # The commit failed (a serialization failure, say): the driver
            # still gets to clean up, and the error is the outcome.
            _call(self._conn.__exit__, type(failed), failed, failed.__traceback__)
            raise
        return _call(self._conn.__exit__, None, None, None)

    @contextlib.contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """psycopg 3's ``conn.transaction()``: its commit is a scheduling point too."""
        outer = not self._in_transaction()
        block = _call(self._conn.transaction, *args, **kwargs)
        tx = _call(block.__enter__)
        try:
            yield tx
        except BaseException as failed:
            if outer:
                self._announce("ROLLBACK")
            try:
                if not _call(block.__exit__, type(failed), failed, failed.__traceback__):
                    raise
            finally:
                if outer:
                    self._finish("ROLLBACK")
            return
        if outer:
            self._announce("COMMIT")
        try:
            _call(block.__exit__, None, None, None)
        except BaseException:
            if outer:
                self._finish("ROLLBACK")
            raise
        if outer:
            self._finish("COMMIT")

    def _finish(self, word: str) -> None:
        """The transaction ended with ``word`` outside ``execute``."""
        self._model.apply(self._txn, _native.sql_footprint(word, None, self._dialect))
        self._ended()

    def _probed(self, fp: _native.SqlFootprint, site: int, call: Any) -> None:
        """Run ``call`` so that a wait for a row lock fails fast, is undone and
        retried once the session says so (see ``DbSession.probe_locks``)."""
        try:
            self._probe_until_done(fp, site, call)
        finally:
            # Ran (or failed, or the execution ended): nothing is undone.
            self._session.clear_undone(self)

    def _probe_until_done(self, fp: _native.SqlFootprint, site: int, call: Any) -> None:
        in_txn = not self._autocommit() or self._explicit
        while True:
            if in_txn:
                self._plain(f"SAVEPOINT {_SAVEPOINT}; SET LOCAL lock_timeout = '{_PROBE_TIMEOUT}'")
            else:
                self._plain(f"SET lock_timeout = '{_PROBE_TIMEOUT}'")
            try:
                _call(call)
            except Exception as exc:
                if _drivers.error_sqlstate(exc) != LOCK_NOT_AVAILABLE:
                    if not in_txn:
                        # (In a transaction the error aborted it: the
                        # setting goes with the rollback.)
                        self._reset_timeout()
                    raise
                if in_txn:
                    self._plain(
                        f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}; "
                        "SET LOCAL lock_timeout = DEFAULT"
                    )
                else:
                    self._reset_timeout()
                self._session.note_undone(self, fp)
                self._session.wait_for_release(self, fp, site, self._model.epoch + 1)
                continue
            if in_txn:
                self._plain(f"RELEASE SAVEPOINT {_SAVEPOINT}; SET LOCAL lock_timeout = DEFAULT")
            else:
                self._reset_timeout()
            return

    def _plain(self, sql: str) -> None:
        """Run frontrun's own statement (no event, not recorded)."""

        def run() -> None:
            with self._conn.cursor() as cur:
                cur.execute(sql)

        _call(run)

    def _reset_timeout(self) -> None:
        self._plain("SET lock_timeout = DEFAULT")

    def _announce(self, word: str) -> None:
        self._before(_native.sql_footprint(word, None, self._dialect), word, None)

    def _in_transaction(self) -> bool:
        return bool(_call(self._in_transaction_now))

    def _in_transaction_now(self) -> bool:
        if self._driver == "sqlite3":
            return bool(self._conn.in_transaction)
        # libpq's PQTRANS_IDLE is 0, in psycopg2 and psycopg 3 alike.
        return int(self._conn.info.transaction_status) != 0


def _busy(conn: Any) -> bool:
    """Whether a command is in progress on ``conn`` (libpq's PQTRANS_ACTIVE)."""
    return not conn.closed and int(conn.info.transaction_status) == 1


def _affected(cur: Any) -> int | None:
    """Rows changed by a statement that returns none, if the driver says."""
    if cur.description is not None:
        return None
    count = getattr(cur, "rowcount", -1)
    return int(count) if count >= 0 else None


def _record_error(site: int, exc: BaseException) -> None:
    state = _drivers.error_sqlstate(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    _native.db_site_result(site, f"error {state}: {first}" if state else f"error: {first}")


class CursorProxy:
    """A wrapped cursor: statements are scheduling points, fetched rows are recorded."""

    __slots__ = ("__weakref__", "_st")

    _cur = _field("_cur")
    _conn = _field("_conn")
    _site = _field("_site")

    def __init__(self, cur: Any, conn: ConnectionProxy) -> None:
        d = _new_fields(self)
        d["_cur"] = cur
        d["_conn"] = conn
        d["_site"] = 0

    def __getattr__(self, name: str) -> Any:
        fields = _fields(self)
        if name in fields:
            return fields[name]
        return _call(getattr, fields["_cur"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _fields(self):
            _fields(self)[name] = value
        else:
            _call(setattr, self._cur, name, value)

    @property
    def connection(self) -> ConnectionProxy:
        conn: ConnectionProxy = _fields(self)["_conn"]
        return conn

    @property
    def wrapped(self) -> Any:
        """The real driver cursor."""
        return self._cur

    def _run(self, fp: _native.SqlFootprint, sql: str, shown: Any, call: Any) -> CursorProxy:
        conn = self._conn
        site = conn._before(fp, sql, shown)
        _fields(self)["_site"] = site
        try:
            if (
                conn._dialect == "postgresql"
                and not fp.inert
                and conn._session.probing()
                and conn._model.predict(conn._txn, fp)[0] != "proceeds"
            ):
                conn._probed(fp, site, call)
            else:
                _call(call)
        except BaseException as exc:
            _record_error(site, exc)
            # A failed statement still holds the locks taken so far (until
            # rollback), and an aborted transaction still needs one.
            conn._model.apply(conn._txn, fp)
            raise
        conn._after(fp)
        affected = _call(_affected, self._cur)
        if affected is not None:
            _native.db_site_result(site, f"{affected} row(s)")
        return self

    def execute(self, sql: Any, params: Any = None, *args: Any, **kwargs: Any) -> CursorProxy:
        conn = self._conn
        text = conn._sql_text(sql)
        fp = _native.sql_footprint(text, params, conn._dialect)
        if params is None and not args and not kwargs:
            return self._run(fp, text, None, lambda: self._cur.execute(sql))
        return self._run(fp, text, params, lambda: self._cur.execute(sql, params, *args, **kwargs))

    def executemany(self, sql: Any, seq: Any, *args: Any, **kwargs: Any) -> CursorProxy:
        conn = self._conn
        text = conn._sql_text(sql)
        seq = list(seq)
        fp = _native.sql_footprint_many(text, seq, conn._dialect)
        return self._run(fp, text, seq, lambda: self._cur.executemany(sql, seq, *args, **kwargs))

    def fetchone(self) -> Any:
        row = _call(self._cur.fetchone)
        _native.db_site_result(self._site, "no row" if row is None else _show_row(row))
        return row

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        rows = _call(self._cur.fetchmany, *args, **kwargs)
        _native.db_site_result(self._site, _show_rows(list(rows)))
        return rows

    def fetchall(self) -> Any:
        rows = _call(self._cur.fetchall)
        _native.db_site_result(self._site, _show_rows(list(rows)))
        return rows

    def __iter__(self) -> Iterator[Any]:
        shown = 0
        for row in self._cur:
            if shown < _MAX_ROWS_SHOWN:
                _native.db_site_result(self._site, _show_row(row))
            shown += 1
            yield row

    def __enter__(self) -> CursorProxy:
        _call(self._cur.__enter__)
        return self

    def __exit__(self, *exc: Any) -> Any:
        return _call(self._cur.__exit__, *exc)


def wrap(
    conn: Any,
    *,
    label: str | None = None,
    session: DbSession | None = None,
    pool_key: tuple[Any, ...] | None = None,
) -> Any:
    """Wrap an existing connection so its statements become scheduling points.

    ``label`` names its transactions in explanations (default ``Txn A``,
    ``Txn B``… in wrapping order). Wrapping a wrapped connection returns it.
    """
    if isinstance(conn, ConnectionProxy):
        return conn
    return ConnectionProxy(conn, session or current_session(), label, pool_key)
