"""Unmodified SQLAlchemy (ORM) on psycopg2 and psycopg 3, explored as is.

The classic ORM lost update (``acct = session.get(Account, 1);
acct.balance += 100; session.commit()`` in two threads) is found on the
first ``explore()``; the examples (run here too) also prove the two usual
fixes (``with_for_update()`` and ``UPDATE … SET balance = balance + 100``)
with ``exhausted=True``, with a module-level engine and one made in setup().
The drivers receive connections of their own type, so SQLAlchemy's
connect-time type registration (``register_uuid``, ``TypeInfo.fetch``)
works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg2  # type: ignore[import-untyped,unused-ignore]
import pytest
import sqlalchemy
from sqlalchemy import Integer, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import frontrun
from _examples import run_example
from _pg import query_one
from frontrun.db import _typed


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    balance: Mapped[int] = mapped_column(Integer)


@pytest.fixture
def bank(pg_dsn: str) -> Iterator[str]:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE account (id integer PRIMARY KEY, balance integer NOT NULL)")
    conn.close()
    yield pg_dsn


def _url(dsn: str, driver: str) -> str:
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def _reset(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DELETE FROM account; INSERT INTO account VALUES (1, 0)")
    conn.close()


def _explore(
    dsn: str, driver: str, deposit: Callable[[Session], None], *, full_frames: bool = False
) -> frontrun.ExploreResult:
    def setup() -> Any:
        _reset(dsn)
        return sqlalchemy.create_engine(_url(dsn, driver))

    def thread(engine: Any) -> None:
        with Session(engine) as session:
            deposit(session)
            session.commit()

    def invariant(engine: Any) -> bool:
        return bool(query_one(dsn, "SELECT balance FROM account WHERE id = 1") == 200)

    return frontrun.explore(
        setup,
        [thread, thread],
        invariant,
        teardown=lambda engine: engine.dispose(),
        total_timeout=60,
        full_frames=full_frames,
    )


def _read_modify_write(session: Session) -> None:
    acct = session.get(Account, 1)
    assert acct is not None
    acct.balance += 100


def _for_update(session: Session) -> None:
    acct = session.execute(select(Account).where(Account.id == 1).with_for_update()).scalar_one()
    acct.balance += 100


def _in_sql(session: Session) -> None:
    session.execute(update(Account).where(Account.id == 1).values(balance=Account.balance + 100))


DRIVERS = ["psycopg2", "psycopg"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_orm_lost_update_is_found(bank: str, driver: str) -> None:
    r = _explore(bank, driver, _read_modify_write)
    assert r.property_holds is False, r.explanation
    assert r.failure_kind == "invariant"
    assert "lost update on account[id=1]" in r.explanation
    assert r.reproduced == r.reproduce_attempts
    # Every line is the user's code (the statements SQLAlchemy runs are
    # shown at the user's line that asked for them), never the ORM's.
    lines = [ln for ln in r.explanation.splitlines() if ln.startswith("  thread")]
    assert lines, r.explanation
    assert all("test_db_orm.py:" in ln for ln in lines), r.explanation
    assert any("session.commit()" in ln and "UPDATE account" in ln for ln in lines)
    assert "sqlalchemy" not in r.explanation.replace("sqlalchemy.", "")


def test_full_frames_show_the_library_frames_too(bank: str) -> None:
    r = _explore(bank, "psycopg2", _read_modify_write, full_frames=True)
    assert r.property_holds is False, r.explanation
    commit = [ln for ln in r.explanation.splitlines() if "COMMIT" in ln and "test_db_orm.py:" in ln]
    assert commit, r.explanation
    # The frames inside SQLAlchemy that led from session.commit() to the driver.
    assert "via session.py:" in commit[0] and "default.py:" in commit[0], commit[0]


@pytest.mark.parametrize("driver", DRIVERS)
def test_driver_gets_its_own_connection_type(bank: str, driver: str) -> None:
    seen: list[Any] = []

    def setup() -> Any:
        _reset(bank)
        return sqlalchemy.create_engine(_url(bank, driver))

    def thread(engine: Any) -> None:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            seen.append((raw, _typed.tracker_of(raw) is not None))

    r = frontrun.explore(setup, [thread], lambda e: True, teardown=lambda e: e.dispose())
    assert r.property_holds is True, r.explanation
    raw, tracked = seen[-1]
    assert tracked and _typed.is_instrumented(raw)
    if driver == "psycopg2":
        import psycopg2.extensions  # type: ignore[import-untyped,unused-ignore]

        assert isinstance(raw, psycopg2.extensions.connection)
    else:
        import psycopg  # type: ignore[import-not-found,unused-ignore]

        assert isinstance(raw, psycopg.Connection)


@pytest.mark.timeout(500)
@pytest.mark.parametrize("driver", DRIVERS)
def test_sqlalchemy_example_finds_and_proves(pg_dsn: str, driver: str) -> None:
    """A module-level engine warmed before explore() and one made in setup():
    the lost update found, both fixes exhausted, for each."""
    out = run_example("sqlalchemy_lost_update", "--driver", driver, dsn=pg_dsn, timeout=450)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lost update on account[id=1]" in out.stdout
    assert "all outcomes as expected" in out.stdout
    assert "sqlalchemy_lost_update.py:58 session.commit()" in out.stdout, out.stdout
    assert "default.py" not in out.stdout and "<sqlalchemy generated" not in out.stdout


@pytest.mark.timeout(400)
@pytest.mark.parametrize("driver", DRIVERS)
def test_django_example_finds_and_proves(pg_dsn: str, driver: str) -> None:
    out = run_example("django_lost_update", "--driver", driver, dsn=pg_dsn, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Django on {driver}" in out.stdout
    assert "lost update on bank_account[id=1]" in out.stdout
    assert "all outcomes as expected" in out.stdout
    # The explanation speaks of rows and the user's objects, never of the
    # ORM's own (`read Manager.get, write Manager[*]` once did).
    assert "Manager" not in out.stdout, out.stdout
    # Generated code (a namedtuple's __new__) is not the user's: no line for it.
    assert "<string>" not in out.stdout, out.stdout


@pytest.mark.parametrize("driver", DRIVERS)
def test_fixes_proved_with_an_engine_made_in_setup_in_few_executions(
    bank: str, driver: str
) -> None:
    """The engine's pool and statement-cache locks are made by SQLAlchemy in
    setup(): ordering them reaches nothing frontrun observes, so they are
    not scheduling points, and the mapped class handed to ``select()`` is
    read, not written. Both proofs used to take 388 and 518 executions."""
    for fix in (_for_update, _in_sql):
        r = _explore(bank, driver, fix)
        assert r.property_holds is True, r.explanation
        assert r.exhausted
        assert r.executions_explored <= 40, (fix.__name__, r.executions_explored)


def test_untraced_package_code_reads_classes_and_accounted_objects() -> None:
    from frontrun import _native

    class Plain:
        pass

    holder = Plain()
    holder.cls = Account  # type: ignore[attr-defined]
    holder.engine = sqlalchemy.create_engine("postgresql+psycopg2://nobody@localhost/none")  # type: ignore[attr-defined]
    holder.obj = Plain()  # type: ignore[attr-defined]

    def body() -> None:
        select(holder.cls)  # type: ignore[attr-defined]
        Session(holder.engine)  # type: ignore[attr-defined]
        sqlalchemy.util.to_list(holder.obj)  # type: ignore[attr-defined]

    described = [d for d, _ in _native._trace_describe(body, [holder])]
    assert "read Account[*]" in described, described
    assert "write Account[*]" not in described, described
    assert "read Engine[*]" in described and "write Engine[*]" not in described, described
    # Any other object handed to the package may be changed by it.
    assert "write Plain[*]" in described, described


@pytest.mark.parametrize("size", [1, 2])
def test_a_lock_made_by_an_untraced_package_still_blocks(pg_dsn: str, size: int) -> None:
    """A SQLAlchemy pool made in setup(): its queue's lock and conditions are
    made by SQLAlchemy. Taking the free lock is no scheduling point, but with
    one connection a checkout waiting for the other thread's connection still
    waits, at a scheduling point, and is woken by its return: the threads
    never overlap. With two connections they do, and that is found."""
    from sqlalchemy.pool import QueuePool

    log: list[str] = []

    def setup() -> Any:
        log.clear()
        return QueuePool(
            lambda: psycopg2.connect(pg_dsn), pool_size=size, max_overflow=0, timeout=5
        )

    def thread(pool: Any) -> None:
        conn = pool.connect()
        log.append("in")  # a scheduling point while the connection is out
        log.append("out")
        conn.close()

    r = frontrun.explore(
        setup,
        [thread, thread],
        lambda pool: log == ["in", "out", "in", "out"],
        teardown=lambda pool: pool.dispose(),
        total_timeout=60,
    )
    if size == 1:
        assert r.property_holds is True, r.explanation
        assert r.exhausted
    else:
        assert r.property_holds is False, r.explanation


def _core_explore(dsn: str, driver: str, for_update: bool) -> frontrun.ExploreResult:
    """SQLAlchemy Core, no ORM: read the balance, add in Python, write it."""
    account = Account.__table__

    def setup() -> Any:
        _reset(dsn)
        return sqlalchemy.create_engine(_url(dsn, driver))

    def thread(engine: Any) -> None:
        with engine.begin() as conn:
            query = select(account.c.balance).where(account.c.id == 1)
            if for_update:
                query = query.with_for_update()
            balance = conn.execute(query).scalar_one()
            conn.execute(update(account).where(account.c.id == 1).values(balance=balance + 100))

    def invariant(engine: Any) -> bool:
        return bool(query_one(dsn, "SELECT balance FROM account WHERE id = 1") == 200)

    return frontrun.explore(
        setup, [thread, thread], invariant, teardown=lambda e: e.dispose(), total_timeout=60
    )


@pytest.mark.parametrize("driver", DRIVERS)
def test_core_lost_update_found_and_for_update_proved(bank: str, driver: str) -> None:
    r = _core_explore(bank, driver, for_update=False)
    assert r.property_holds is False, r.explanation
    assert "lost update on account[id=1]" in r.explanation
    r = _core_explore(bank, driver, for_update=True)
    assert r.property_holds is True, r.explanation
    assert r.exhausted
    # 48 while `with engine.begin()` (a contextlib wrapper) wrote the Engine.
    assert r.executions_explored <= 40, r.executions_explored
