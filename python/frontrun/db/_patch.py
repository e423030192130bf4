"""``instrument()``: wrap every connection opened while it is active."""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from frontrun import _native
from frontrun.db._proxy import wrap
from frontrun.db._session import DbSession, pop_session, push_session

__all__ = ["instrument"]

# (module, attribute) pairs that open connections.
_TARGETS = (("psycopg2", "connect"), ("psycopg", "connect"), ("sqlite3", "connect"))


def _wrapping(original: Callable[..., Any], session: DbSession) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        if not session.pooling:
            return wrap(_native._db_call(original, *args, **kwargs), session=session)
        key = (id(original), repr(args), repr(sorted(kwargs.items())))
        real = session.take_pooled(key)
        if real is None:
            # Real primitives inside: psycopg 3 creates its connection lock here.
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
    thread) is wrapped with :func:`frontrun.db.wrap`. Drivers that are not
    installed are skipped (with ``import_drivers=False``, so are drivers not
    imported yet). Everything is restored on exit, also on error.
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
            setattr(module, attr, _wrapping(original, session))
            patched.append((module, attr, original))
        push_session(session)
        yield session
    finally:
        pop_session(session)
        for module, attr, original in reversed(patched):
            setattr(module, attr, original)
