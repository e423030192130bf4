"""Which member of a search found a failure (`found_by`), the portfolio, and
the progress line of long explorations."""

from __future__ import annotations

import threading

import pytest

import frontrun
from _bug_suite import SUITE, Program

BY_NAME = {p.name: p for p in SUITE}


class Account:
    def __init__(self) -> None:
        self.balance = 100
        self.lock = threading.Lock()


def withdraw(a: Account) -> None:
    if a.balance >= 80:
        a.balance -= 80


def withdraw_locked(a: Account) -> None:
    with a.lock:
        withdraw(a)


def solvent(a: Account) -> bool:
    return a.balance >= 0


def test_found_by_names_the_strategy_and_bound_that_ran_the_failure() -> None:
    def run(**options: object) -> frontrun.ExploreResult:
        return frontrun.explore(
            Account,
            [withdraw, withdraw],
            solvent,
            reproduce_on_failure=0,
            shrink_budget=0,
            **options,  # type: ignore[arg-type]
        )

    assert run(strategy="dpor").found_by == "dpor"
    assert run(strategy="dpor", preemption_bound=1).found_by == "dpor bound 1"
    iterative = run(strategy="iterative")
    assert iterative.found_by == "dpor bound 1" and iterative.preemption_bound_found == 1
    assert run(strategy="random", max_attempts=500, seed=3).found_by == "random"
    assert run(strategy="pct", max_attempts=500, seed=3).found_by == "pct depth 3"
    safe = frontrun.explore(Account, [withdraw_locked, withdraw_locked], solvent)
    assert safe.property_holds is True and safe.found_by is None


def test_portfolio_finds_a_many_thread_bug_and_names_its_member() -> None:
    p = BY_NAME["twostage_10"]
    r = frontrun.explore(
        p.setup,
        p.threads,
        p.invariant,
        strategy="portfolio",
        max_executions=2000,
        reproduce_on_failure=2,
        shrink_budget=0,
    )
    assert r.property_holds is False, r.explanation
    assert r.reproduced == 2
    assert r.found_by is not None
    assert r.found_by.startswith("dpor bound") or r.found_by in {
        "pct depth 1",
        "pct depth 2",
        "pct depth 3",
    }
    # A randomized run has no bound; a DPOR pass says its own.
    assert (r.preemption_bound_found is None) == r.found_by.startswith("pct")


@pytest.mark.parametrize("strategy", ["portfolio", "mixed"])
@pytest.mark.parametrize("name", ["locked_counter_3x", "philosophers_3_ordered"])
def test_mixed_searches_prove_exactly_when_plain_dpor_does(strategy: str, name: str) -> None:
    p: Program = BY_NAME[name]
    plain = frontrun.explore(p.setup, p.threads, p.invariant, strategy="dpor")
    mixed = frontrun.explore(p.setup, p.threads, p.invariant, strategy=strategy)  # type: ignore[arg-type]
    assert plain.property_holds is True and plain.exhausted is True
    assert mixed.property_holds is True and mixed.exhausted is True, mixed.explanation
    # Cut short, neither proves anything, however many randomized runs passed.
    short = frontrun.explore(
        p.setup,
        p.threads,
        p.invariant,
        strategy=strategy,  # type: ignore[arg-type]
        max_executions=3,
    )
    assert short.property_holds is None and short.exhausted is False


def _many_interleavings() -> tuple[Program, float]:
    return BY_NAME["locked_counter_10x"], 2.6


def test_progress_is_logged_on_a_long_exploration_and_can_be_turned_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    p, seconds = _many_interleavings()
    for progress in (True, False):
        r = frontrun.explore(
            p.setup,
            p.threads,
            p.invariant,
            strategy="dpor",
            total_timeout=seconds,
            progress=progress,
        )
        assert r.property_holds is None, "the exploration must outlast the quiet period"
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("frontrun: ")]
        if progress:
            # Captured stderr is no terminal: plain log lines, no rewriting.
            assert len(lines) == 1 and "\r" not in err, err
            assert " executions, " in lines[0] and "/s, dpor, " in lines[0], lines[0]
            assert lines[0].endswith(" s elapsed")
        else:
            assert lines == [], err


def test_pytest_shows_progress_only_with_verbose(request: pytest.FixtureRequest) -> None:
    from frontrun import _explore

    assert _explore._progress_default is (request.config.getoption("verbose") > 0)
