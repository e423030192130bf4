"""Minimised counterexamples and `result.regression_test()`."""

from __future__ import annotations

import frontrun


class Account:
    def __init__(self) -> None:
        self.balance = 100
        self.log: list[str] = []

    def withdraw(self, amount: int) -> None:
        self.log.append("start")
        self.log.append("check")
        if self.balance >= amount:
            self.log.append("ok")
            self.balance -= amount
        self.log.append("done")


def withdraw_80(a: Account) -> None:
    a.withdraw(80)


def withdraw_50(a: Account) -> None:
    a.withdraw(50)


def not_overdrawn(a: Account) -> bool:
    return a.balance >= 0


def test_random_failure_is_shrunk_to_one_preemption() -> None:
    r = frontrun.explore(
        Account,
        [withdraw_80, withdraw_50],
        not_overdrawn,
        strategy="random",
        max_attempts=500,
        seed=11,
        reproduce_on_failure=3,
    )
    assert r.property_holds is False and r.failure_kind == "invariant", r.explanation
    # The overdraft needs exactly one preemption (between check and update).
    assert r.preemptions == 1
    assert r.context_switches is not None and r.context_switches <= 2
    assert 1 <= r.shrink_replays <= 128
    # The explanation and token describe the minimised schedule: it replays.
    assert r.reproduced == 3
    again = frontrun.replay(
        r.counterexample or "", Account, [withdraw_80, withdraw_50], not_overdrawn
    )
    assert again.property_holds is False


def test_shrink_budget_zero_reports_the_schedule_as_found() -> None:
    r = frontrun.explore(
        Account,
        [withdraw_80, withdraw_50],
        not_overdrawn,
        strategy="random",
        max_attempts=500,
        seed=11,
        shrink_budget=0,
    )
    assert r.property_holds is False
    assert r.shrink_replays == 0 and r.preemptions is None


def test_default_search_reports_a_minimal_schedule() -> None:
    r = frontrun.explore(Account, [withdraw_80, withdraw_50], not_overdrawn)
    assert r.property_holds is False
    assert r.preemption_bound_found == 1 and r.preemptions == 1


def test_regression_test_source_replays_the_failure() -> None:
    r = frontrun.explore(Account, [withdraw_80, withdraw_50], not_overdrawn)
    source = r.regression_test()
    assert r.counterexample is not None and repr(r.counterexample) in source
    assert "def test_account_invariant_interleaving_still_fails" in source
    assert "TODO" not in source
    namespace: dict[str, object] = {}
    exec(compile(source, "<regression>", "exec"), namespace)
    test = namespace["test_account_invariant_interleaving_still_fails"]
    assert callable(test)
    test()  # replays and asserts the failure


def test_regression_test_marks_names_it_cannot_import() -> None:
    r = frontrun.explore(Account, [lambda a: a.withdraw(80), withdraw_50], lambda a: a.balance >= 0)
    source = r.regression_test(name="test_overdraft")
    assert "def test_overdraft()" in source
    assert source.count("TODO") == 2  # the lambda thread and the lambda invariant


def test_regression_test_needs_a_failure() -> None:
    r = frontrun.explore(Account, [withdraw_80], not_overdrawn)
    assert r.property_holds is True
    try:
        r.regression_test()
    except ValueError as e:
        assert "failing result" in str(e)
    else:
        raise AssertionError("regression_test() of a pass must raise")
