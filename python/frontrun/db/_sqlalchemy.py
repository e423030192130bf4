"""SQLAlchemy pools that were warmed before ``explore()``.

An ``Engine`` made at module level keeps the connections it opened before
the exploration in its pool: their statements would not be seen, and a
lost update would pass for a proof. So, once SQLAlchemy is imported, a pool
``checkout`` listener refuses (``DisconnectionError``: the pool closes it
and opens a new one through the patched ``connect``) every connection that
is not under the current exploration, and, outside explorations, the ones
an exploration closed.
"""

from __future__ import annotations

import sys
from typing import Any

from frontrun.db import _typed

__all__ = ["install"]

_installed = False
_exploring = False


def _stale(dbapi_connection: Any) -> bool:
    tracker = _typed.tracker_of(dbapi_connection)
    if not _exploring:
        # Left behind by an exploration, which closed it.
        return tracker is not None and tracker._released
    return tracker is None or tracker._released


def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    if _stale(dbapi_connection):
        from sqlalchemy import exc

        raise exc.DisconnectionError(
            "frontrun: this connection was opened outside the exploration; "
            "the pool opens a new, instrumented one"
        )


def install() -> None:
    """Add the listener to every pool, once SQLAlchemy has been imported."""
    global _installed
    if _installed or "sqlalchemy" not in sys.modules:
        return
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    event.listen(Pool, "checkout", _on_checkout)
    _installed = True


def set_exploring(active: bool) -> None:
    global _exploring
    _exploring = active
