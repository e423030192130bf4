"""DPOR through the driver: exhaustive counts, honest verdicts, replay."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import frontrun
from frontrun.dpor import explore_dpor


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    # Idle workers outlive an exploration; other modules count threads.
    yield
    frontrun.shutdown()


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        t = self.value
        self.value = t + 1


class LockedCounter:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def inc(self) -> None:
        with self.lock:
            t = self.value
            self.value = t + 1


def inc(c: Counter | LockedCounter) -> None:
    c.inc()


@pytest.mark.parametrize(("n", "expected"), [(2, 4), (3, 36), (4, 576)])
def test_lost_update_counter_runs_every_mazurkiewicz_trace(n: int, expected: int) -> None:
    r = explore_dpor(
        setup=Counter,
        threads=[inc] * n,
        invariant=lambda c: c.value == n,
        stop_on_first=False,
        reproduce_on_failure=0,
    )
    assert r.executions_explored == expected
    assert r.property_holds is False and r.failure_kind == "invariant"


@pytest.mark.parametrize(("n", "expected"), [(2, 2), (3, 6), (4, 24)])
def test_locked_counter_runs_one_execution_per_lock_order(n: int, expected: int) -> None:
    r = explore_dpor(setup=LockedCounter, threads=[inc] * n, invariant=lambda c: c.value == n)
    assert r.executions_explored == expected
    assert r.property_holds is True and r.exhausted


@pytest.mark.parametrize("n", [2, 3, 4])
def test_threads_writing_distinct_attributes_need_one_execution(n: int) -> None:
    class Slots:
        pass

    def writer(i: int):  # type: ignore[no-untyped-def]
        def w(s: Slots) -> None:
            setattr(s, f"a{i}", i)

        return w

    r = explore_dpor(
        setup=Slots,
        threads=[writer(i) for i in range(n)],
        invariant=lambda s: all(getattr(s, f"a{i}") == i for i in range(n)),
    )
    assert r.executions_explored == 1
    assert r.property_holds is True and r.exhausted


@pytest.mark.parametrize("bound", [0, 1, 2])
@pytest.mark.parametrize("setup", [Counter, LockedCounter], ids=["counter", "locked"])
def test_preemption_bound_proves_only_what_it_covered(bound: int, setup: type) -> None:
    def run(b: int | None) -> frontrun.ExploreResult:
        return frontrun.explore(
            setup, [inc] * 3, lambda c: True, strategy="dpor", preemption_bound=b
        )

    unbounded, bounded = run(None), run(bound)
    assert unbounded.exhausted is True
    assert bounded.property_holds is True
    if setup is Counter:
        # The racy counter has interleavings beyond any of these bounds.
        assert bounded.exhausted is False
    if bounded.exhausted:
        # A bounded search that never had to prune covered everything.
        assert "exhaustive" in bounded.explanation
    else:
        assert "at most" in bounded.explanation and "preemptions" in bounded.explanation


class Bluetooth:
    """SCTBench's bluetooth_driver shape: a worker that checks a stopping
    flag, then takes an I/O reference, against a stopper that waits for the
    last reference to go and marks the device stopped."""

    def __init__(self) -> None:
        self.pending_io = 1
        self.stopping_flag = False
        self.stopping_event = False
        self.stopped = False


def _io_decrement(d: Bluetooth) -> None:
    d.pending_io -= 1
    if d.pending_io == 0:
        d.stopping_event = True


def _bt_worker(d: Bluetooth) -> None:
    if d.stopping_flag:
        return
    d.pending_io += 1
    assert not d.stopped, "I/O on a stopped device"
    _io_decrement(d)


def _bt_stopper(d: Bluetooth) -> None:
    d.stopping_flag = True
    _io_decrement(d)
    if d.stopping_event:
        d.stopped = True


@pytest.mark.parametrize("bound", [1, 2, 3])
def test_bounded_dpor_finds_a_one_preemption_bug_with_any_bound_that_allows_it(bound: int) -> None:
    r = frontrun.explore(
        Bluetooth,
        [_bt_worker, _bt_stopper],
        lambda d: True,
        strategy="dpor",
        preemption_bound=bound,
        reproduce_on_failure=1,
    )
    assert r.property_holds is False and r.failure_kind == "exception", r.explanation
    assert "stopped device" in r.explanation and r.reproduced == 1


def test_bounded_dpor_with_bound_zero_cannot_reach_the_one_preemption_bug() -> None:
    r = frontrun.explore(
        Bluetooth, [_bt_worker, _bt_stopper], lambda d: True, strategy="dpor", preemption_bound=0
    )
    assert r.property_holds is True and r.exhausted is False


def test_default_search_reports_the_bound_that_found_the_bug() -> None:
    r = frontrun.explore(Bluetooth, [_bt_worker, _bt_stopper], lambda d: True)
    assert r.property_holds is False and r.preemption_bound_found == 1, r.explanation
    assert "at most 1 preemption" in r.explanation
    plain = frontrun.explore(Bluetooth, [_bt_worker, _bt_stopper], lambda d: True, strategy="dpor")
    assert plain.property_holds is False and plain.preemption_bound_found is None


def test_default_search_proves_like_plain_dpor() -> None:
    for setup, n in ((Counter, 2), (Counter, 3), (LockedCounter, 3)):
        plain = frontrun.explore(setup, [inc] * n, lambda c: True, strategy="dpor")
        passes = frontrun.explore(setup, [inc] * n, lambda c: True, strategy="iterative")
        default = frontrun.explore(setup, [inc] * n, lambda c: True)
        assert plain.exhausted is True and passes.exhausted is True and default.exhausted
        assert passes.property_holds is True and default.property_holds is True
        # The passes only reorder one optimal DPOR search: no execution is
        # repeated, so a proof costs what plain DPOR's does.
        assert passes.repeated_executions == 0
        assert passes.executions_explored == plain.executions_explored
        # The default adds one randomized run per 2 DPOR executions.
        assert default.executions_explored <= plain.executions_explored * 3 // 2 + 1


def test_max_executions_cutting_dpor_short_is_inconclusive() -> None:
    r = frontrun.explore(LockedCounter, [inc] * 3, lambda c: c.value == 3, max_executions=2)
    assert r.executions_explored == 2
    assert r.property_holds is None and r.exhausted is False
    assert "max_executions" in r.explanation
    with pytest.raises(AssertionError, match="inconclusive"):
        r.assert_holds()


def test_max_executions_equal_to_the_tree_is_still_a_proof() -> None:
    r = frontrun.explore(
        LockedCounter, [inc] * 2, lambda c: c.value == 2, strategy="dpor", max_executions=2
    )
    assert r.executions_explored == 2
    assert r.property_holds is True and r.exhausted


def test_total_timeout_cutting_dpor_short_is_inconclusive() -> None:
    r = frontrun.explore(Counter, [inc] * 4, lambda c: True, total_timeout=1e-9)
    assert r.property_holds is None
    assert "total_timeout" in r.explanation


def test_failure_has_token_explanation_and_reproduces() -> None:
    r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2, reproduce_on_failure=5)
    assert r.property_holds is False
    assert r.counterexample and r.reproduced == 5 and r.reproduce_attempts == 5
    assert "lost update" in r.explanation
    assert "[read Counter.value]" in r.explanation
    assert "[write Counter.value]" in r.explanation
    assert "t = self.value" in r.explanation
    assert "5/5" in r.explanation
    with pytest.raises(AssertionError, match="lost update"):
        r.assert_holds()


def test_replay_reproduces_the_counterexample_exactly() -> None:
    seen: list[list[int]] = []

    class Logged(Counter):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[int] = []
            seen.append(self.log)

    def make(i: int):  # type: ignore[no-untyped-def]
        def t(c: Logged) -> None:
            c.log.append(i)
            c.inc()
            c.log.append(i)

        return t

    threads = [make(0), make(1)]
    # No shrinking: the last execution run is then the reported one.
    r = frontrun.explore(
        Logged, threads, lambda c: c.value == 2, reproduce_on_failure=0, shrink_budget=0
    )
    assert r.property_holds is False and r.counterexample
    failing_log = list(seen[-1])
    for _ in range(3):
        again = frontrun.replay(r.counterexample, Logged, threads, lambda c: c.value == 2)
        assert again.property_holds is False and again.failure_kind == "invariant"
        assert seen[-1] == failing_log
    # A token for the serial schedule: the counterexample of an invariant
    # that rejects exactly that order.
    serial = frontrun.explore(
        Logged, threads, lambda c: c.log != [0, 0, 1, 1], reproduce_on_failure=0
    ).counterexample
    assert serial is not None
    passing = frontrun.replay(serial, Logged, threads, lambda c: c.value == 2)
    assert passing.property_holds is True and seen[-1] == [0, 0, 1, 1]


def test_bad_token_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="replay token"):
        frontrun.replay("garbage", Counter, [inc], lambda c: True)


def test_exception_in_a_thread_is_a_failure_naming_the_thread() -> None:
    def boom(c: Counter) -> None:
        if c.value == 1:
            raise ValueError("saw one")
        c.inc()

    r = frontrun.explore(Counter, [boom, inc], lambda c: True)
    assert r.property_holds is False and r.failure_kind == "exception"
    assert "thread 'boom' raised" in r.explanation and "ValueError: saw one" in r.explanation


def test_invariant_raising_is_a_failure() -> None:
    def inv(c: Counter) -> bool:
        assert c.value == 2, "value is off"
        return True

    r = frontrun.explore(Counter, [inc, inc], inv)
    assert r.failure_kind == "invariant" and "value is off" in r.explanation


def test_stop_on_first_false_counts_everything_and_keeps_the_first_failure() -> None:
    r = frontrun.explore(
        Counter,
        [inc] * 3,
        lambda c: c.value == 3,
        strategy="dpor",
        stop_on_first=False,
        reproduce_on_failure=1,
    )
    assert r.executions_explored == 36
    assert r.property_holds is False and r.reproduced == 1


def test_replay_of_a_token_from_other_code_says_it_diverged() -> None:
    r = frontrun.explore(Counter, [inc, inc], lambda c: c.value == 2, reproduce_on_failure=0)
    assert r.counterexample
    # The same token against a program with one thread: it cannot be followed.
    other = frontrun.replay(r.counterexample, Counter, [inc], lambda c: c.value == 1)
    # Another interleaving ran: its passing is no verdict on the recorded one.
    assert other.property_holds is None and other.diverged
    assert other.explanation.count("diverged") == 1
    same = frontrun.replay(r.counterexample, Counter, [inc, inc], lambda c: c.value == 2)
    assert "diverged" not in same.explanation and not same.diverged


@pytest.mark.parametrize("order", ["lowest-first", "highest-first", "random"])
def test_every_search_order_runs_the_same_traces(order: str) -> None:
    for n, expected in ((2, 4), (3, 36)):
        r = frontrun.explore(
            _SearchCounter,
            [_search_inc] * n,
            lambda c: True,
            strategy="dpor",
            search_order=order,
            seed=7,
        )
        assert r.property_holds is True and r.exhausted
        assert r.executions_explored == expected


def test_unknown_search_order_is_refused() -> None:
    with pytest.raises(ValueError, match="search_order"):
        frontrun.explore(_SearchCounter, [_search_inc], lambda c: True, search_order="dfs")  # type: ignore[arg-type]


class _SearchCounter:
    def __init__(self) -> None:
        self.value = 0


def _search_inc(c: _SearchCounter) -> None:
    t = c.value
    c.value = t + 1
