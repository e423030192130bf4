"""What ``frontrun.explore`` does for databases: wrap the connections opened
during the exploration, and start every execution from clean lock state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from frontrun.db import _sqlalchemy
from frontrun.db._patch import instrument
from frontrun.db._session import DbSession

__all__ = ["exploring", "overrides"]

# Set by `overrides()` for the explorations it encloses (they are never
# concurrent: `frontrun.explore` runs one at a time).
_isolation: str | None = None
_last: DbSession | None = None


@contextlib.contextmanager
def overrides(*, isolation: str | None = None) -> Iterator[None]:
    """Run enclosed explorations with every connection at ``isolation``."""
    global _isolation
    previous, _isolation = _isolation, isolation
    try:
        yield
    finally:
        _isolation = previous


def last_session() -> DbSession | None:
    """The session of the most recent exploration (its models keep the last
    execution's statement log)."""
    return _last


class _Exploring:
    def __init__(self, session: DbSession) -> None:
        self.session = session

    def wrap_setup(self, setup: Callable[[], Any]) -> Callable[[], Any]:
        """``setup`` preceded by closing the previous execution's connections."""
        session = self.session

        def setup_with_fresh_connections() -> Any:
            session.new_execution()
            _sqlalchemy.install()
            return setup()

        return setup_with_fresh_connections


@contextlib.contextmanager
def exploring() -> Iterator[_Exploring]:
    """Patch the installed drivers; close leftover connections at the end."""
    global _last
    session = DbSession(pooling=True, isolation=_isolation)
    _last = session
    # Drivers are imported now if installed: libraries such as SQLAlchemy
    # import them lazily, in setup() or in a thread, after the patching.
    with instrument(session, import_drivers=True):
        _sqlalchemy.install()
        _sqlalchemy.set_exploring(True)
        try:
            yield _Exploring(session)
        finally:
            _sqlalchemy.set_exploring(False)
            session.close_connections(pooled=True)
