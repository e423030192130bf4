"""Timed waits are explored, not slept, and clocks follow virtual time.

`Lock.acquire(timeout=)`, `Condition.wait(timeout=)`, `Event.wait(timeout=)`
and `queue.get(timeout=)` end either woken or timed out, and both are
scheduling choices (`Thread.join(timeout=)` times out only when nothing else
can run, so a pass of a program that joins a running thread with a timeout is
inconclusive, never a proof). Nothing waits in real time: timeouts and
`time.sleep` move the execution's virtual clock on, which is what explored
threads read from `time.monotonic()`/`time.time()`/`time.perf_counter()`, so
loops waiting for a deadline (as `queue.Queue.get` and `Condition.wait_for`
do) end at once.

The reachable outcome sets are checked two ways: against the set written out
(small programs whose outcomes are easy to enumerate), and against the union
of many seeded random-strategy runs, which samples the same choices without
any reduction (so DPOR must find everything sampling finds).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import frontrun

# Generous: every program here takes milliseconds; a real wait would not.
FAST = 5.0


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    yield
    frontrun.shutdown()


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.ev = threading.Event()
        self.q: queue.Queue[int] = queue.Queue()
        self.x = 0
        self.out: list[Any] = []


def outcomes(
    threads: list[Callable[[State], None]], strategy: str = "dpor", **kw: Any
) -> tuple[set[tuple[Any, ...]], frontrun.ExploreResult, float]:
    seen: set[tuple[Any, ...]] = set()

    def invariant(s: State) -> bool:
        seen.add(tuple(s.out))
        return True

    t0 = time.perf_counter()
    r = frontrun.explore(State, threads, invariant, strategy=strategy, total_timeout=60, **kw)
    return seen, r, time.perf_counter() - t0


def sampled(threads: list[Callable[[State], None]], attempts: int = 150) -> set[tuple[Any, ...]]:
    """Outcomes of `attempts` random schedules (several seeds)."""
    found: set[tuple[Any, ...]] = set()
    for seed in range(3):
        got, r, _ = outcomes(threads, "random", seed=seed, max_attempts=attempts // 3)
        assert r.property_holds is True
        found |= got
    return found


def check(threads: list[Callable[[State], None]], expected: set[tuple[Any, ...]]) -> None:
    got, r, took = outcomes(threads)
    assert r.property_holds is True and r.exhausted, r.explanation
    assert took < FAST
    assert got == expected
    assert sampled(threads) <= got


# -- both outcomes of each timed wait ------------------------------------------


def try_lock(s: State) -> None:
    got = s.lock.acquire(timeout=1.0)
    s.out.append(("got", got, s.x))
    if got:
        s.lock.release()


def hold_lock(s: State) -> None:
    with s.lock:
        s.x = 1


@pytest.mark.parametrize("order", ["waiter first", "holder first"])
def test_lock_acquire_with_timeout_explores_both_outcomes(order: str) -> None:
    threads = [try_lock, hold_lock] if order == "waiter first" else [hold_lock, try_lock]
    # Before the holder (0), while it holds the lock before or after its
    # write (timed out, 0 or 1), after it (1).
    check(
        threads,
        {
            (("got", True, 0),),
            (("got", False, 0),),
            (("got", False, 1),),
            (("got", True, 1),),
        },
    )


def test_non_blocking_acquire_explores_both_outcomes() -> None:
    def try_once(s: State) -> None:
        got = s.lock.acquire(blocking=False)
        s.out.append(got)
        if got:
            s.lock.release()

    check([try_once, hold_lock], {(True,), (False,)})


def test_event_wait_with_timeout_explores_both_outcomes() -> None:
    def waiter(s: State) -> None:
        s.out.append(s.ev.wait(timeout=1.0))

    check([waiter, lambda s: s.ev.set()], {(True,), (False,)})


def test_condition_wait_with_timeout_explores_both_outcomes() -> None:
    def waiter(s: State) -> None:
        with s.cond:
            s.out.append(s.cond.wait(timeout=1.0))

    def notifier(s: State) -> None:
        with s.cond:
            s.cond.notify()

    # Notified only if it was already waiting; a notify before the wait is lost.
    check([waiter, notifier], {(True,), (False,)})


def test_queue_get_with_timeout_explores_both_outcomes() -> None:
    def getter(s: State) -> None:
        try:
            s.out.append(s.q.get(timeout=0.5))
        except queue.Empty:
            s.out.append("empty")

    check([getter, lambda s: s.q.put(7)], {(7,), ("empty",)})


# -- nothing waits in real time ------------------------------------------------


def test_a_wait_that_can_only_time_out_returns_at_once() -> None:
    def waiter(s: State) -> None:
        s.out.append((s.ev.wait(timeout=3600), s.lock.acquire(timeout=3600)))
        s.out.append(s.lock.acquire(timeout=3600))  # held by itself: times out

    got, r, took = outcomes([waiter])
    assert got == {((False, True), False)} and r.executions_explored == 1
    assert took < FAST


def test_sleep_moves_the_virtual_clock_and_does_not_sleep() -> None:
    def sleeper(s: State) -> None:
        t0, m0, p0 = time.time(), time.monotonic(), time.perf_counter()
        n0 = time.monotonic_ns()
        time.sleep(3600)
        s.out.append(
            (
                round(time.time() - t0, 6),
                round(time.monotonic() - m0, 6),
                round(time.perf_counter() - p0, 6),
                (time.monotonic_ns() - n0) // 10**9,
            )
        )

    got, _, took = outcomes([sleeper])
    assert got == {((3600.0, 3600.0, 3600.0, 3600),)}
    assert took < FAST


def test_a_timeout_moves_the_clock_by_its_duration() -> None:
    def waiter(s: State) -> None:
        m0 = time.monotonic()
        s.ev.wait(timeout=2.5)
        s.out.append(round(time.monotonic() - m0, 6))

    got, _, _ = outcomes([waiter])
    assert got == {(2.5,)}


def test_queue_get_timeout_from_setup_state_ends_promptly() -> None:
    # issue 11: a real-time deadline under virtual time used to spin until
    # killed (far past total_timeout).
    def getter(s: State) -> None:
        try:
            s.q.get(timeout=0.5)
        except queue.Empty:
            s.out.append("empty")

    got, r, took = outcomes([getter])
    assert got == {("empty",)} and r.property_holds is True
    assert took < FAST


def test_deadline_loops_end_promptly() -> None:
    def wait_for(s: State) -> None:
        with s.cond:
            s.out.append(s.cond.wait_for(lambda: s.x == 1, timeout=2.0))

    def user_loop(s: State) -> None:
        end = time.monotonic() + 1.0
        rounds = 0
        while time.monotonic() < end:
            s.ev.wait(0.1)
            rounds += 1
        s.out.append(rounds)

    def semaphore(s: State) -> None:
        s.out.append(threading.Semaphore(0).acquire(timeout=1.0))

    for fn, expected in [(wait_for, {(False,)}), (user_loop, {(10,)}), (semaphore, {(False,)})]:
        got, r, took = outcomes([fn])
        assert got == expected and r.property_holds is True and took < FAST


def test_wait_for_sees_a_change_made_before_its_deadline() -> None:
    def wait_for(s: State) -> None:
        with s.cond:
            s.out.append(s.cond.wait_for(lambda: s.x == 1, timeout=2.0))

    def setter(s: State) -> None:
        with s.cond:
            s.x = 1
            s.cond.notify_all()

    check([wait_for, setter], {(True,), (False,)})


def test_a_polling_loop_without_deadline_ends() -> None:
    def poller(s: State) -> None:
        while not s.ev.wait(0.1):
            pass
        s.out.append("seen")

    got, r, took = outcomes([poller, lambda s: s.ev.set()])
    assert got == {("seen",)} and r.exhausted and took < FAST


# Counting loops, polling loops and the timeout bound are checked against
# brute-force outcome sets in test_timeout_repeats.py.


def test_pollers_trading_timeouts_end_every_execution() -> None:
    # Two pollers that change state can time out in turn forever while the
    # setter waits: each execution used to spin until timeout_per_run; the
    # bound on timeouts ends it.
    def poller(s: State) -> None:
        while not s.ev.wait(0.1):
            s.x += 1

    _, r, took = outcomes([poller, poller, lambda s: s.ev.set()], max_executions=40)
    assert r.property_holds is None and not r.exhausted, r.explanation
    assert "timeout_per_run" not in r.explanation
    assert took < FAST


def test_setup_and_threads_share_the_virtual_clock() -> None:
    class Clocked(State):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.monotonic()
            self.deadline = self.start + 1.0

    seen: list[tuple[float, bool]] = []

    def waiter(s: Clocked) -> None:
        while time.monotonic() < s.deadline:
            s.ev.wait(0.25)
        seen.append((time.monotonic() - s.start, s.ev.is_set()))

    t0 = time.perf_counter()
    r = frontrun.explore(Clocked, [waiter], lambda s: True, total_timeout=60)
    assert r.property_holds is True and time.perf_counter() - t0 < FAST
    # The settling run before the exploration sees the same virtual clock.
    assert seen == [(1.0, False)] * 2


def test_real_clocks_are_back_after_the_exploration() -> None:
    outcomes([lambda s: time.sleep(100)])
    before = time.monotonic()
    time.sleep(0.01)
    assert 0.005 < time.monotonic() - before < 5
    assert abs(time.time() - time.time()) < 1


# -- copies of the clocks bound by name before the exploration ------------------

# `from time import monotonic` in some module, done before any exploration:
# the module holds the real builtin, not the `time` attribute that is patched.
clock_copies = types.ModuleType("frontrun_test_clock_copies")
exec(
    "from time import monotonic, perf_counter, sleep\nfrom threading import get_ident\n",
    clock_copies.__dict__,
)
sys.modules[clock_copies.__name__] = clock_copies


def test_clocks_imported_by_name_follow_virtual_time() -> None:
    m: Any = clock_copies
    seen: list[tuple[float, float, bool]] = []

    def sleeper(s: State) -> None:
        a, p = m.monotonic(), m.perf_counter()
        m.sleep(3.0)
        seen.append(
            (m.monotonic() - a, m.perf_counter() - p, m.get_ident() == threading.get_ident())
        )

    _, r, took = outcomes([sleeper])
    assert r.property_holds is True and r.exhausted, r.explanation
    assert took < FAST
    assert seen and all(d == 3.0 and q == 3.0 and same for d, q, same in seen), seen
    # Restored afterwards.
    assert m.monotonic is time.monotonic and m.sleep is time.sleep
    assert m.get_ident is threading.get_ident


# -- what is not explored makes the verdict inconclusive -------------------------


def test_join_with_a_timeout_on_a_running_thread_is_inconclusive() -> None:
    # The join times out only when nothing else can run, so its timing out
    # while the child still runs is never explored: no proof.
    def parent(s: State) -> None:
        child = threading.Thread(target=lambda: s.out.append("child"))
        child.start()
        s.out.append(("joined", child.join(timeout=1.0) is None))

    _, r, took = outcomes([parent])
    assert r.property_holds is None and not r.exhausted, r.explanation
    assert "Thread.join(timeout=)" in r.explanation
    assert took < FAST


def test_join_without_a_timeout_stays_a_proof() -> None:
    def parent(s: State) -> None:
        child = threading.Thread(target=lambda: s.out.append("child"))
        child.start()
        child.join()
        s.out.append("joined")

    check([parent], {("child", "joined")})
