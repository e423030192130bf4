"""examples/postgres_explore.py runs and finds every race it promises."""

from __future__ import annotations

from _examples import run_example


def test_postgres_explore_example(pg_dsn: str) -> None:
    out = run_example("postgres_explore", "--report", dsn=pg_dsn, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "Txn B | SELECT balance FROM accounts WHERE name='alice' → 1000" in text
    assert "deadlock: wait-for cycle" in text
    assert "weakest safe level: repeatable read" in text
    assert "all outcomes as expected" in text


def test_postgres_races_explore_mode(pg_dsn: str) -> None:
    out = run_example("postgres_races", "--explore", dsn=pg_dsn, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Race 1: lost update (no markers)" in out.stdout
    assert "all outcomes as expected" in out.stdout
