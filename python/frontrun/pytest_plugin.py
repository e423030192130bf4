"""pytest fixtures for tests that need a real PostgreSQL (registered as a pytest11 plugin).

- ``pg_server``: one throwaway server for the whole session (see
  :func:`frontrun.testing.postgres_server`; ``DATABASE_URL`` is honoured).
- ``pg_dsn``: the DSN of a fresh, empty database for one test, dropped after it.

A missing server is an error naming what was searched, never a skip. At the
end of the session the plugin fails the run if a server it knows of is still up.
After each test it stops frontrun's idle worker threads, so no test leaves a
thread behind for the next one. Explorations show their progress only under
``-v``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from frontrun.testing import PostgresServer, postgres_server, running_servers


def pytest_configure(config: pytest.Config) -> None:
    from frontrun._explore import set_progress_default

    set_progress_default(config.getoption("verbose", 0) > 0)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the session, stopped when it ends."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_dsn(pg_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a new empty database for this test only."""
    with pg_server.fresh_database(request.node.name[:30]) as dsn:
        yield dsn


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    from frontrun._explore import shutdown

    shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = running_servers()
    if not left:
        return
    # Stop them so nothing outlives the run, but report it: a fixture leaked one.
    from frontrun.testing import _stop_leftovers

    pids = [pid for server in left for pid in server.pids()]
    _stop_leftovers()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    msg = f"frontrun: {len(left)} PostgreSQL server(s) still running at session end (pids {pids})"
    if reporter is not None:
        reporter.write_line(msg, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
