"""What ``frontrun.explore`` does for databases: wrap the connections opened
during the exploration, and start every execution from clean lock state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from frontrun.db._patch import instrument
from frontrun.db._session import DbSession

__all__ = ["exploring"]


class _Exploring:
    def __init__(self, session: DbSession) -> None:
        self.session = session

    def wrap_setup(self, setup: Callable[[], Any]) -> Callable[[], Any]:
        """``setup`` preceded by closing the previous execution's connections."""
        session = self.session

        def setup_with_fresh_connections() -> Any:
            session.new_execution()
            return setup()

        return setup_with_fresh_connections


@contextlib.contextmanager
def exploring() -> Iterator[_Exploring]:
    """Patch the drivers already imported; close leftover connections at the end."""
    session = DbSession(pooling=True)
    with instrument(session, import_drivers=False):
        try:
            yield _Exploring(session)
        finally:
            session.close_connections(pooled=True)
