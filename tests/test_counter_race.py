"""Seed 003: lost increments on a Postgres counter, and the FOR UPDATE fix."""

from __future__ import annotations

import pytest

from _examples import load_example, run_example

counter = load_example("counter_race")
RUNS = 10


@pytest.mark.parametrize("workers", [2, 3])
def test_schedule_forces_lost_increments(pg_dsn: str, workers: int) -> None:
    for _ in range(RUNS):
        out = counter.run_counter(pg_dsn, workers)
        assert out.reads == {f"w{i + 1}": 0 for i in range(workers)}
        assert out.final == 1, f"{workers} increments should collapse into one"
        assert out.as_expected


@pytest.mark.parametrize("workers", [2, 3])
def test_for_update_counts_exactly(pg_dsn: str, workers: int) -> None:
    for _ in range(RUNS):
        out = counter.run_counter(pg_dsn, workers, for_update=True)
        assert out.reads["w1"] == 0, "w1 takes the lock first"
        assert sorted(out.reads.values()) == list(range(workers))
        assert out.final == workers
        assert out.as_expected


def test_one_worker_is_refused(pg_dsn: str) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        counter.run_counter(pg_dsn, 1)


@pytest.mark.parametrize("workers", [2, 3])
def test_script_exits_0(pg_dsn: str, workers: int) -> None:
    res = run_example("counter_race", "--workers", str(workers), dsn=pg_dsn)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert f"  Final counter: 1  (expected {workers})" in lines
    assert f"  Final counter: {workers}  (expected {workers})" in lines
    assert "2 of 2 outcomes as expected" in lines
