"""Instrumented connections of the driver's own type (psycopg2 and psycopg 3).

Libraries check the type of the connections they are given: psycopg2's
``extras.register_uuid`` and ``register_default_jsonb`` take only a real
``psycopg2.extensions.connection``, psycopg 3's ``TypeInfo.fetch`` only a
``psycopg.Connection``. So the connections ``frontrun.db.instrument`` opens
are subclasses of the driver's types whose ``cursor``/``commit``/
``rollback``/``close`` (and cursors' ``execute``/``fetch*``) report to a
:class:`~frontrun.db._proxy.ConnectionProxy` kept on the side, which holds
the interception logic; the proxy drives the real connection through a
:class:`_Raw` view that calls the driver's own methods.

psycopg2's types are C types: the subclasses are given to the driver as
``connection_factory``/``cursor_factory``. psycopg 3's are Python classes:
the objects it creates get their class switched to a subclass.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from frontrun.db._proxy import ConnectionProxy, CursorProxy
from frontrun.db._session import DbSession

__all__ = ["connect_psycopg", "connect_psycopg2", "is_instrumented", "tracker_of"]

_TRACKER = "_frontrun_tracker"
# Cursor → its CursorProxy; psycopg 3 cursors have no __dict__ to keep it in.
_cursors: weakref.WeakKeyDictionary[Any, CursorProxy] = weakref.WeakKeyDictionary()
# Methods the subclasses override: the raw view calls the driver's own.
_OVERRIDDEN = frozenset(
    {
        "cursor",
        "commit",
        "rollback",
        "close",
        "closed",
        "transaction",
        "execute",
        "executemany",
        "fetchone",
        "fetchmany",
        "fetchall",
        "__enter__",
        "__exit__",
    }
)


class _Raw:
    """``obj`` as its driver class ``cls`` sees it: the overrides bypassed."""

    __slots__ = ("_cls", "_obj")

    def __init__(self, obj: Any, cls: type) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_cls", cls)

    def _target(self) -> Any:
        return object.__getattribute__(self, "_obj")

    def __getattr__(self, name: str) -> Any:
        obj = self._target()
        if name in _OVERRIDDEN:
            cls = object.__getattribute__(self, "_cls")
            return getattr(cls, name).__get__(obj, cls)
        return getattr(obj, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: Any) -> Any:
        return self.__getattr__("__exit__")(*exc)

    def __iter__(self) -> Any:
        return iter(self._target())

    def __repr__(self) -> str:
        return repr(self._target())


class _WeakRaw(_Raw):
    """A `_Raw` that does not keep ``obj`` alive: the cursor table's values
    must not hold their weak keys, or every cursor (and its connection)
    would outlive its owner."""

    __slots__ = ()

    def __init__(self, obj: Any, cls: type) -> None:
        super().__init__(weakref.ref(obj), cls)

    def _target(self) -> Any:
        obj = object.__getattribute__(self, "_obj")()
        if obj is None:
            raise ReferenceError("the cursor was garbage-collected")
        return obj


def tracker_of(conn: Any) -> ConnectionProxy | None:
    """The interception state of an instrumented connection (``None`` if not)."""
    try:
        tracker: ConnectionProxy | None = conn.__dict__.get(_TRACKER)
    except AttributeError:
        return None
    return tracker


def is_instrumented(conn: Any) -> bool:
    """Whether ``conn`` is a connection made by :func:`connect_psycopg2`/
    :func:`connect_psycopg`."""
    return "_frontrun_base" in type(conn).__dict__


def _live(conn: Any) -> ConnectionProxy | None:
    tracker = tracker_of(conn)
    if tracker is None or tracker._released:
        return None
    return tracker


def _closed_error(conn: Any) -> BaseException:
    """The driver's own error for a closed connection (libraries recognise it
    as a disconnect and open a new one)."""
    module = type(conn).__module__.split(".")[0]
    if module == "psycopg2":
        import psycopg2  # type: ignore[import-untyped,unused-ignore]

        return psycopg2.InterfaceError("connection already closed")
    import psycopg  # type: ignore[import-not-found,unused-ignore]

    return psycopg.OperationalError("the connection is closed")


class _ConnectionMixin:
    """Overrides shared by both drivers' connection subclasses."""

    __slots__ = ()

    _frontrun_base: type

    @property
    def closed(self) -> Any:
        tracker = tracker_of(self)
        if tracker is not None and tracker._released:
            return 1 if self._frontrun_driver == "psycopg2" else True
        return self._frontrun_base.closed.__get__(self, self._frontrun_base)  # type: ignore[attr-defined]

    def commit(self) -> None:
        tracker = tracker_of(self)
        if tracker is None:
            self._frontrun_base.commit(self)  # type: ignore[attr-defined]
            return
        if tracker._released:
            raise _closed_error(self)
        tracker.commit()

    def rollback(self) -> None:
        tracker = tracker_of(self)
        if tracker is None:
            self._frontrun_base.rollback(self)  # type: ignore[attr-defined]
            return
        if tracker._released:
            raise _closed_error(self)
        tracker.rollback()

    def close(self) -> None:
        tracker = tracker_of(self)
        if tracker is None:
            self._frontrun_base.close(self)  # type: ignore[attr-defined]
            return
        tracker.close()

    @property
    def _frontrun_driver(self) -> str:
        return "psycopg2" if type(self).__module__.startswith("psycopg2") else "psycopg"


class _Pg2CursorMixin:
    """psycopg2 cursor: statements are scheduling points, rows are recorded."""

    __slots__ = ()

    _frontrun_base: type

    def execute(self, query: Any, vars: Any = None) -> None:
        proxy = _cursors.get(self)
        if proxy is None:
            self._frontrun_base.execute(self, query, vars)  # type: ignore[attr-defined]
            return
        proxy.execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> None:
        proxy = _cursors.get(self)
        if proxy is None:
            self._frontrun_base.executemany(self, query, vars_list)  # type: ignore[attr-defined]
            return
        proxy.executemany(query, vars_list)

    def fetchone(self) -> Any:
        proxy = _cursors.get(self)
        if proxy is None:
            return self._frontrun_base.fetchone(self)  # type: ignore[attr-defined]
        return proxy.fetchone()

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        proxy = _cursors.get(self)
        if proxy is None:
            return self._frontrun_base.fetchmany(self, *args, **kwargs)  # type: ignore[attr-defined]
        return proxy.fetchmany(*args, **kwargs)

    def fetchall(self) -> Any:
        proxy = _cursors.get(self)
        if proxy is None:
            return self._frontrun_base.fetchall(self)  # type: ignore[attr-defined]
        return proxy.fetchall()


class _Pg3CursorMixin(_Pg2CursorMixin):
    """psycopg 3 cursor: ``execute`` returns the cursor."""

    __slots__ = ()

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        proxy = _cursors.get(self)
        if proxy is None:
            return self._frontrun_base.execute(self, query, params, **kwargs)  # type: ignore[attr-defined]
        if kwargs:
            proxy.execute(query, params, **kwargs)
        else:
            proxy.execute(query, params)
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:  # type: ignore[override]
        proxy = _cursors.get(self)
        if proxy is None:
            self._frontrun_base.executemany(self, query, params_seq, **kwargs)  # type: ignore[attr-defined]
            return
        proxy.executemany(query, params_seq, **kwargs)


_classes: dict[tuple[type, type], type] = {}
_NOT_COPIED = frozenset(
    {"__slots__", "__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"}
)


def _subclass(mixin: type, base: type, *, slots: bool) -> type:
    """``mixin`` over ``base``, made once per pair."""
    key = (mixin, base)
    cls = _classes.get(key)
    if cls is None:
        # The mixin's members are copied in rather than inherited: with
        # `base` as the only base the layout is `base`'s, so objects the
        # driver made can switch to it.
        namespace: dict[str, Any] = {}
        for owner in reversed(mixin.__mro__[:-1]):
            namespace.update((k, v) for k, v in vars(owner).items() if k not in _NOT_COPIED)
        namespace.update(_frontrun_base=base, __module__=base.__module__)
        if slots:
            namespace["__slots__"] = ()
        cls = type(f"Frontrun{base.__name__}", (base,), namespace)
        _classes[key] = cls
    return cls


def _track_cursor(cur: Any, base: type, tracker: ConnectionProxy) -> None:
    _cursors[cur] = CursorProxy(_WeakRaw(cur, base), tracker)


# --- psycopg2 -----------------------------------------------------------------


class _Pg2ConnectionMixin(_ConnectionMixin):
    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        tracker = tracker_of(self)
        base: type = self._frontrun_base
        if tracker is None:
            return base.cursor(self, *args, **kwargs)  # type: ignore[attr-defined]
        if tracker._released:
            raise _closed_error(self)
        args_list = list(args)
        if len(args_list) >= 2:
            factory = args_list.pop(1)
        else:
            factory = kwargs.pop("cursor_factory", None)
        import psycopg2.extensions  # type: ignore[import-untyped,unused-ignore]

        cursor_base = factory or self.cursor_factory or psycopg2.extensions.cursor  # type: ignore[attr-defined]
        kwargs["cursor_factory"] = _subclass(_Pg2CursorMixin, cursor_base, slots=False)
        cur = base.cursor(self, *args_list, **kwargs)  # type: ignore[attr-defined]
        _track_cursor(cur, cursor_base, tracker)
        return cur

    def __enter__(self) -> Any:
        tracker = _live(self)
        if tracker is None:
            return self._frontrun_base.__enter__(self)  # type: ignore[attr-defined]
        tracker.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        tracker = _live(self)
        if tracker is None:
            return self._frontrun_base.__exit__(self, exc_type, exc, tb)  # type: ignore[attr-defined]
        return tracker.__exit__(exc_type, exc, tb)


def connect_psycopg2(
    original: Any, session: DbSession, args: Any, kwargs: dict[str, Any], pool_key: Any
) -> Any:
    """``psycopg2.connect(*args, **kwargs)`` returning an instrumented connection."""
    import psycopg2.extensions  # type: ignore[import-untyped,unused-ignore]

    from frontrun import _native

    base = kwargs.pop("connection_factory", None) or psycopg2.extensions.connection
    cls = _subclass(_Pg2ConnectionMixin, base, slots=False)
    conn = _native._db_call(original, *args, connection_factory=cls, **kwargs)
    return attach(conn, base, session, pool_key)


# --- psycopg 3 ----------------------------------------------------------------


class _Pg3ConnectionMixin(_ConnectionMixin):
    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        tracker = tracker_of(self)
        base: type = self._frontrun_base
        if tracker is not None and tracker._released:
            raise _closed_error(self)
        cur = base.cursor(self, *args, **kwargs)  # type: ignore[attr-defined]
        if tracker is None:
            return cur
        cursor_base = type(cur)
        cur.__class__ = _subclass(_Pg3CursorMixin, cursor_base, slots=True)
        _track_cursor(cur, cursor_base, tracker)
        return cur

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        tracker = _live(self)
        if tracker is None:
            return self._frontrun_base.transaction(self, *args, **kwargs)  # type: ignore[attr-defined]
        return tracker.transaction(*args, **kwargs)


def connect_psycopg(
    original: Any, session: DbSession, args: Any, kwargs: dict[str, Any], pool_key: Any
) -> Any:
    """``psycopg.connect(*args, **kwargs)`` returning an instrumented connection."""
    from frontrun import _native

    conn = _native._db_call(original, *args, **kwargs)
    base = type(conn)
    conn.__class__ = _subclass(_Pg3ConnectionMixin, base, slots=True)
    return attach(conn, base, session, pool_key)


def attach(conn: Any, base: type, session: DbSession, pool_key: Any) -> Any:
    """Give the instrumented ``conn`` a fresh tracker for ``session``."""
    driver = "psycopg2" if base.__module__.startswith("psycopg2") else "psycopg"
    tracker = ConnectionProxy(_Raw(conn, base), session, pool_key=pool_key, driver=driver)
    tracker._st()["_typed"] = conn
    conn.__dict__[_TRACKER] = tracker
    return conn


def reuse(conn: Any, session: DbSession, pool_key: Any) -> Any:
    """A pooled instrumented connection, attached to a new tracker."""
    base: type = type(conn)._frontrun_base
    with contextlib.suppress(KeyError):
        del conn.__dict__[_TRACKER]
    return attach(conn, base, session, pool_key)
