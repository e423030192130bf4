"""What differs between psycopg2, psycopg 3 and sqlite3 connections."""

from __future__ import annotations

from typing import Any

__all__ = ["connection_database", "driver_of", "error_sqlstate", "isolation_of"]

# psycopg2.extensions.ISOLATION_LEVEL_* values.
_PSYCOPG2_LEVELS = {
    1: "read committed",
    2: "repeatable read",
    3: "serializable",
    4: "read uncommitted",
}


def driver_of(conn: Any) -> str:
    """``"psycopg2"``, ``"psycopg"`` or ``"sqlite3"``; anything else is refused."""
    module = type(conn).__module__
    for name in ("psycopg2", "psycopg", "sqlite3"):
        if module == name or module.startswith(name + ".") or module == "_" + name:
            return name
    raise TypeError(
        f"frontrun.db cannot wrap a {type(conn).__module__}.{type(conn).__qualname__}: "
        "only psycopg2, psycopg (3) and sqlite3 connections are supported"
    )


def dialect_of(driver: str) -> str:
    return "sqlite" if driver == "sqlite3" else "postgresql"


def isolation_of(driver: str, conn: Any) -> str:
    """The isolation level new transactions of ``conn`` get (lower-case words).

    An unset level means the server default, assumed to be PostgreSQL's
    READ COMMITTED; SQLite transactions are always serializable.
    """
    if driver == "sqlite3":
        return "serializable"
    level = getattr(conn, "isolation_level", None)
    if level is None:
        return "read committed"
    if driver == "psycopg2":
        return _PSYCOPG2_LEVELS.get(int(level), "read committed")
    # psycopg 3: an IsolationLevel enum whose names are READ_COMMITTED, …
    name = getattr(level, "name", str(level))
    return str(name).replace("_", " ").lower()


def set_isolation(driver: str, conn: Any, level: str) -> None:
    """Make ``conn``'s next transactions run at ``level`` (PostgreSQL only)."""
    if driver == "sqlite3":
        return
    name = level.upper()
    if driver == "psycopg2":
        conn.set_session(isolation_level=name)
        return
    import psycopg  # type: ignore[import-not-found,unused-ignore]

    conn.isolation_level = psycopg.IsolationLevel[name.replace(" ", "_")]


def is_autocommit(driver: str, conn: Any) -> bool:
    if driver == "sqlite3":
        # Python 3.12 `autocommit` attribute first; the legacy
        # isolation_level=None means autocommit too.
        ac = getattr(conn, "autocommit", -1)
        if ac is True:
            return True
        return conn.isolation_level is None
    return bool(conn.autocommit)


def connection_database(driver: str, conn: Any) -> str:
    """A name identifying the database a connection talks to."""
    if driver == "psycopg2":
        params = conn.get_dsn_parameters()
        return f"pg:{params.get('host', '')}:{params.get('port', '')}/{params.get('dbname', '')}"
    if driver == "psycopg":
        info = conn.info
        return f"pg:{info.host}:{info.port}/{info.dbname}"
    # sqlite3 does not expose the file name; its connections use one file each
    # in practice, so one model serves all of them.
    return "sqlite"


def error_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, if it has one."""
    code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    if code:
        return str(code)
    diag = getattr(exc, "diag", None)
    state = getattr(diag, "sqlstate", None)
    return str(state) if state else None
