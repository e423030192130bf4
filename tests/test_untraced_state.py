"""State the threads share inside an untraced (trusted) package is never a
silent proof: SQLAlchemy's code is not traced, so a `Session` shared by two
threads hides its races; the result must be inconclusive and name it. An
`Engine` (made to be shared; its pooled connections are brought under the
scheduler) does not weaken a proof."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import frontrun

sqlalchemy = pytest.importorskip("sqlalchemy")
orm = pytest.importorskip("sqlalchemy.orm")


def _count(s: SimpleNamespace) -> None:
    with s.lock:
        s.n += 1


def _setup_with(shared: object) -> SimpleNamespace:
    import threading

    return SimpleNamespace(n=0, lock=threading.Lock(), shared=shared)


def test_a_shared_session_makes_a_pass_inconclusive() -> None:
    r = frontrun.explore(
        lambda: _setup_with(orm.Session()), [_count, _count], invariant=lambda s: s.n == 2
    )
    assert r.property_holds is None, r.explanation
    assert not r.exhausted
    assert "sqlalchemy.orm.session.Session" in r.explanation
    assert "FRONTRUN_TRACE_PACKAGES" in r.explanation


def test_a_shared_engine_keeps_the_proof() -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        r = frontrun.explore(
            lambda: _setup_with(engine), [_count, _count], invariant=lambda s: s.n == 2
        )
    finally:
        engine.dispose()
    assert r.property_holds is True and r.exhausted, r.explanation
