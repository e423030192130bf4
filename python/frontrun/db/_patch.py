"""``instrument()``: wrap every connection opened while it is active."""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from frontrun import _native
from frontrun.db import _typed
from frontrun.db._proxy import wrap
from frontrun.db._session import DbSession, pop_session, push_session

__all__ = ["instrument"]

# (module, attribute) pairs that open connections.
_TARGETS = (("psycopg2", "connect"), ("psycopg", "connect"), ("sqlite3", "connect"))

# psycopg2 and psycopg 3 connections are instrumented subclasses of the
# driver's own types; sqlite3's are proxies.
_TYPED = {"psycopg2": _typed.connect_psycopg2, "psycopg": _typed.connect_psycopg}


def _key_part(value: Any) -> str:
    """A stable text for one connect() argument: plain values as themselves,
    other objects (a per-engine adapters map…) by type, since a repr with an
    address would make every engine's connections unusable by the next."""
    if value is None or isinstance(value, str | bytes | int | float | bool | type):
        return repr(value)
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_key_part(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_key_part(v)}" for k, v in sorted(value.items())) + "}"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def pool_key(module_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
    """Connections opened with equal keys are interchangeable."""
    return (module_name, _key_part(args), _key_part(kwargs))


def _wrapping(
    module_name: str, original: Callable[..., Any], session: DbSession
) -> Callable[..., Any]:
    typed = _TYPED.get(module_name)

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        key = pool_key(module_name, args, kwargs) if session.pooling else None
        real = session.take_pooled(key) if key is not None else None
        if typed is not None:
            if real is not None:
                return _typed.reuse(real, session, key)
            # Real primitives inside: psycopg 3 creates its connection lock here.
            return typed(original, session, args, dict(kwargs), key)
        if real is None:
            real = _native._db_call(original, *args, **kwargs)
        return wrap(real, session=session, pool_key=key)

    connect.__frontrun_original__ = original  # type: ignore[attr-defined]
    return connect


@contextlib.contextmanager
def instrument(
    session: DbSession | None = None, *, import_drivers: bool = True
) -> Iterator[DbSession]:
    """Patch ``psycopg2.connect``, ``psycopg.connect`` and ``sqlite3.connect``.

    While active, every connection they open (in ``setup()`` or in a
    thread) is instrumented: psycopg2 and psycopg 3 connections are
    subclasses of the driver's own connection type (so type registration
    and adapters accept them), sqlite3 ones are wrapped with
    :func:`frontrun.db.wrap`. Drivers that are not installed are skipped
    (with ``import_drivers=False``, so are drivers not imported yet).
    Everything is restored on exit, also on error.
    """
    session = session or DbSession()
    patched: list[tuple[Any, str, Any]] = []
    try:
        for module_name, attr in _TARGETS:
            module = sys.modules.get(module_name)
            if module is None and import_drivers:
                with contextlib.suppress(ImportError):
                    module = importlib.import_module(module_name)
            if module is None:
                continue
            original = getattr(module, attr)
            setattr(module, attr, _wrapping(module_name, original, session))
            patched.append((module, attr, original))
        push_session(session)
        yield session
    finally:
        pop_session(session)
        for module, attr, original in reversed(patched):
            setattr(module, attr, original)
