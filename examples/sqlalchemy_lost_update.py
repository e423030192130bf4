"""The ORM lost update in unmodified SQLAlchemy, found and its fixes proven.

    python examples/sqlalchemy_lost_update.py                    # psycopg2 and psycopg 3
    python examples/sqlalchemy_lost_update.py --driver psycopg   # one driver
    python examples/sqlalchemy_lost_update.py --engine module    # module-level engine only

Two threads each run the textbook ORM deposit::

    acct = session.get(Account, 1)
    acct.balance += 100
    session.commit()

``frontrun.explore`` finds the lost update (both read 0, both write 100) and
proves two fixes with ``exhausted=True``: ``with_for_update()`` (the row is
locked from the read to the commit) and an ``UPDATE … SET balance =
balance + 100`` (the database adds). Each is run with a module-level
``Engine`` whose pool was warmed before ``explore()`` and with an engine
created in ``setup()``; SQLAlchemy gets no special flags. A throwaway
PostgreSQL is started unless ``DATABASE_URL`` names a server. Exits 0 only
if every outcome is the expected one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]
import sqlalchemy
from sqlalchemy import Integer, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import frontrun
from frontrun.testing import postgres_server


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    balance: Mapped[int] = mapped_column(Integer)


# --- the application code under test ---------------------------------------


def deposit(session: Session) -> None:
    """The bug: read, add in Python, write back."""
    acct = session.get(Account, 1)
    assert acct is not None
    acct.balance += 100
    session.commit()


def deposit_for_update(session: Session) -> None:
    """Fix 1: lock the row from the read to the commit."""
    acct = session.execute(select(Account).where(Account.id == 1).with_for_update()).scalar_one()
    acct.balance += 100
    session.commit()


def deposit_in_sql(session: Session) -> None:
    """Fix 2: let the database do the addition."""
    session.execute(update(Account).where(Account.id == 1).values(balance=Account.balance + 100))
    session.commit()


# --- the exploration ----------------------------------------------------------


def prepare(dsn: str) -> Callable[[], None]:
    """Create the table; return a function putting the row back to 0."""
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS account")
        cur.execute("CREATE TABLE account (id integer PRIMARY KEY, balance integer NOT NULL)")

    def reset() -> None:
        with admin.cursor() as cur:
            cur.execute("DELETE FROM account; INSERT INTO account VALUES (1, 0)")

    return reset


def balance(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT balance FROM account WHERE id = 1")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def explore(
    dsn: str, url: str, txn: Callable[[Session], None], *, module_engine: Any
) -> frontrun.ExploreResult:
    reset = prepare(dsn)

    def setup() -> Any:
        reset()
        return module_engine if module_engine is not None else sqlalchemy.create_engine(url)

    def thread(engine: Any) -> None:
        with Session(engine) as session:
            txn(session)

    def teardown(engine: Any) -> None:
        if engine is not module_engine:
            engine.dispose()

    return frontrun.explore(
        setup,
        [thread, thread],
        lambda engine: balance(dsn) == 200,
        teardown=teardown,
        total_timeout=120,
    )


def run_all(dsn: str, drivers: list[str], engines: str = "both") -> bool:
    ok = True
    for driver in drivers:
        url = dsn.replace("postgresql://", f"postgresql+{driver}://", 1)
        warm = sqlalchemy.create_engine(url)
        with warm.connect() as conn:  # the pool is warm before explore()
            conn.execute(text("SELECT 1"))
        variants = [("module-level engine", warm), ("engine in setup()", None)]
        if engines != "both":
            variants = [v for v in variants if (v[1] is None) == (engines == "setup")]
        for where, engine in variants:
            for txn, expect in (
                (deposit, False),
                (deposit_for_update, True),
                (deposit_in_sql, True),
            ):
                start = time.perf_counter()
                r = explore(dsn, url, txn, module_engine=engine)
                seconds = time.perf_counter() - start
                good = r.property_holds is expect and (r.exhausted or not expect)
                ok &= good
                print(
                    f"{driver:9} {where:20} {txn.__name__:19} property_holds={r.property_holds} "
                    f"exhausted={r.exhausted} executions={r.executions_explored} "
                    f"{seconds:.1f}s {'ok' if good else 'UNEXPECTED'}"
                )
                if r.property_holds is False and txn is deposit and where.startswith("module"):
                    print(r.explanation)
        warm.dispose()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", choices=["psycopg2", "psycopg"], action="append")
    parser.add_argument(
        "--engine",
        choices=["module", "setup", "both"],
        default="both",
        help="where the Engine is made",
    )
    args = parser.parse_args(argv)
    with postgres_server() as server, server.fresh_database("sqlalchemy") as dsn:
        ok = run_all(dsn, args.driver or ["psycopg2", "psycopg"], args.engine)
    print("all outcomes as expected" if ok else "SOME OUTCOMES WERE UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
