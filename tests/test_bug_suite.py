"""Every bug of the suite (`tests/_bug_suite.py`) is found by the default
search within 2,000 executions or 20 s, by a DPOR pass no smaller than the
preemptions it needs (or by a randomized run), and no fixed program is ever
reported failing."""

from __future__ import annotations

import pytest

import frontrun
from _bug_suite import SUITE, Program


def test_suite_is_big_enough_and_balanced() -> None:
    bugs = [p for p in SUITE if p.buggy]
    assert len(SUITE) >= 30
    assert {p.kind for p in bugs} == {"atomicity", "order", "deadlock"}
    assert {p.preemptions for p in bugs} >= {0, 1, 2, 3}
    assert any(len(p.threads) >= 100 for p in bugs)
    assert len({p.name for p in SUITE}) == len(SUITE)


@pytest.mark.parametrize("program", SUITE, ids=[p.name for p in SUITE])
def test_default_search_finds_every_bug_and_no_false_alarm(program: Program) -> None:
    r = frontrun.explore(
        program.setup,
        program.threads,
        program.invariant,
        max_executions=2000,
        total_timeout=20.0,
        reproduce_on_failure=1,
    )
    if not program.buggy:
        assert r.property_holds is not False, r.explanation
        return
    assert r.property_holds is False, r.explanation
    assert r.reproduced == 1
    expected = program.preemptions
    assert expected is not None
    # A pass is an order, not a bounded proof (optimal DPOR runs one
    # schedule per trace, which may cost more than the cheapest one): the
    # bug comes in the pass of its bound or a later one, never earlier (or
    # from a randomized run: then no pass is named).
    if r.preemption_bound_found is not None:
        assert r.preemption_bound_found >= expected, r.explanation
    assert r.preemptions is not None and r.preemptions >= expected
    if r.preemption_bound_found is not None:
        assert r.preemptions <= r.preemption_bound_found


SMALL_BUGS = [p for p in SUITE if p.buggy and len(p.threads) <= 4 and p.preemptions]


@pytest.mark.parametrize("program", SMALL_BUGS, ids=[p.name for p in SMALL_BUGS])
def test_bug_needs_the_preemptions_the_suite_says(program: Program) -> None:
    """Bounded DPOR is sound for its bound: one bound below the suite's
    figure it must pass, at that figure it must fail."""
    k = program.preemptions
    assert k is not None

    def run(bound: int) -> frontrun.ExploreResult:
        return frontrun.explore(
            program.setup,
            program.threads,
            program.invariant,
            strategy="dpor",
            preemption_bound=bound,
            reproduce_on_failure=0,
            shrink_budget=0,
        )

    below, at = run(k - 1), run(k)
    assert below.property_holds is True, below.explanation
    assert at.property_holds is False, at.explanation
