"""Cooperative primitives: scheduled inside explorations, real outside, restored after."""

from __future__ import annotations

import pathlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import frontrun
from frontrun import _coop, _native

REAL_LOCK = threading.Lock
REAL_RLOCK = threading.RLock
REAL_CONDITION = threading.Condition
REAL_SLEEP = time.sleep
REAL_START = threading.Thread.start


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    # Idle workers outlive an exploration; other modules count threads.
    yield
    frontrun.shutdown()


class Box:
    def __init__(self) -> None:
        self.value = 0
        self.items: list[Any] = []


def test_primitives_are_real_outside_an_exploration() -> None:
    assert threading.Lock is REAL_LOCK and threading.Condition is REAL_CONDITION
    assert type(threading.Lock()).__module__ == "_thread"
    assert not _native._coop_active()


def test_everything_is_restored_after_explore_and_after_errors() -> None:
    seen: list[type] = []

    def setup() -> Box:
        seen.append(type(threading.Lock()))
        return Box()

    frontrun.explore(setup, [lambda b: None], lambda b: True)
    assert seen and seen[0] is _native.CoopLock
    assert threading.Lock is REAL_LOCK and threading.RLock is REAL_RLOCK
    assert threading.Condition is REAL_CONDITION and time.sleep is REAL_SLEEP
    assert threading.Thread.start is REAL_START

    def bad_setup() -> Box:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        frontrun.explore(bad_setup, [lambda b: None], lambda b: True)
    assert threading.Lock is REAL_LOCK and time.sleep is REAL_SLEEP
    assert not _coop.is_patched()


def test_other_threads_get_real_primitives_during_an_exploration() -> None:
    kinds: list[type] = []
    go, done = threading.Event(), threading.Event()

    def outsider() -> None:
        go.wait(10)
        kinds.append(type(threading.Lock()))
        done.set()

    bystander = threading.Thread(target=outsider)
    bystander.start()

    def worker(b: Box) -> None:
        # Real events made before the exploration stay real.
        go.set()
        done.wait(10)

    r = frontrun.explore(Box, [worker], lambda b: True, reproduce_on_failure=0)
    bystander.join(10)
    assert r.property_holds is True, r.explanation
    assert kinds == [type(REAL_LOCK())]


def _locked_increments(make_lock: Any) -> frontrun.ExploreResult:
    class S:
        def __init__(self) -> None:
            self.value = 0
            self.lock = make_lock()

    def inc(s: S) -> None:
        with s.lock:
            t = s.value
            s.value = t + 1

    return frontrun.explore(S, [inc, inc], lambda s: s.value == 2)


@pytest.mark.parametrize(
    "make_lock",
    [
        lambda: threading.Lock(),
        lambda: threading.RLock(),
        lambda: threading.Semaphore(1),
        lambda: threading.BoundedSemaphore(1),
        lambda: threading.Condition(),
    ],
    ids=["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition"],
)
def test_each_lock_like_primitive_protects_a_counter(make_lock: Any) -> None:
    r = _locked_increments(make_lock)
    assert r.property_holds is True, r.explanation
    assert r.exhausted


def test_rlock_is_reentrant_and_lock_nonblocking_acquire_reports() -> None:
    class S:
        def __init__(self) -> None:
            self.r = threading.RLock()
            self.l = threading.Lock()
            self.got: list[bool] = []

    def t(s: S) -> None:
        with s.r, s.r:
            s.got.append(True)
        s.got.append(s.l.acquire(blocking=False))
        s.got.append(s.l.acquire(blocking=False))
        s.l.release()

    r = frontrun.explore(S, [t], lambda s: s.got == [True, True, False])
    assert r.property_holds is True, r.explanation


def test_release_of_unowned_lock_is_an_exception_failure() -> None:
    r = frontrun.explore(
        lambda: threading.RLock(),
        [lambda lk: lk.release()],
        lambda lk: True,
        reproduce_on_failure=0,
    )
    assert r.property_holds is False
    assert r.failure_kind == "exception"
    assert "un-acquired" in r.explanation


def test_event_wait_and_set_in_every_order() -> None:
    class S:
        def __init__(self) -> None:
            self.ev = threading.Event()
            self.seen = False

    def waiter(s: S) -> None:
        s.ev.wait()
        s.seen = True

    r = frontrun.explore(S, [waiter, lambda s: s.ev.set()], lambda s: s.seen)
    assert r.property_holds is True, r.explanation
    assert r.executions_explored >= 2


def test_event_never_set_is_a_deadlock() -> None:
    r = frontrun.explore(
        threading.Event, [lambda ev: ev.wait()], lambda ev: True, reproduce_on_failure=2
    )
    assert r.property_holds is False and r.failure_kind == "deadlock"
    assert r.reproduced == 2


def test_event_wait_with_timeout_times_out_instead_of_deadlocking() -> None:
    class S:
        def __init__(self) -> None:
            self.ev = threading.Event()
            self.result: bool | None = None

    def t(s: S) -> None:
        s.result = s.ev.wait(timeout=30)

    r = frontrun.explore(S, [t], lambda s: s.result is False)
    assert r.property_holds is True, r.explanation


def test_barrier_releases_all_parties() -> None:
    class S:
        def __init__(self) -> None:
            self.barrier = threading.Barrier(2)
            self.before: list[int] = []
            self.after: list[int] = []

    def make(i: int) -> Any:
        def t(s: S) -> None:
            s.before.append(i)
            s.barrier.wait()
            s.after.append(len(s.before))

        return t

    r = frontrun.explore(S, [make(0), make(1)], lambda s: s.after == [2, 2])
    assert r.property_holds is True, r.explanation


def test_bounded_semaphore_over_release_fails() -> None:
    r = frontrun.explore(
        lambda: threading.BoundedSemaphore(1),
        [lambda s: s.release()],
        lambda s: True,
        reproduce_on_failure=0,
    )
    assert r.property_holds is False and r.failure_kind == "exception"
    assert "released too many times" in r.explanation


@pytest.mark.parametrize(
    ("cls", "expected"),
    [(queue.Queue, [1, 2, 3]), (queue.LifoQueue, [3, 2, 1]), (queue.PriorityQueue, [1, 2, 3])],
    ids=["Queue", "LifoQueue", "PriorityQueue"],
)
def test_queues_hand_items_between_threads(cls: Any, expected: list[int]) -> None:
    class S:
        def __init__(self) -> None:
            self.q = cls()
            self.out: list[int] = []

    def producer(s: S) -> None:
        for x in (2, 1, 3) if cls is queue.PriorityQueue else (1, 2, 3):
            s.q.put(x)

    def consumer(s: S) -> None:
        for _ in range(3):
            s.out.append(s.q.get())

    # The consumer may start taking before all items are in, so only FIFO
    # order is the same in every interleaving.
    r = frontrun.explore(S, [producer, consumer], lambda s: sorted(s.out) == [1, 2, 3])
    assert r.property_holds is True, r.explanation
    if cls is queue.Queue:
        r = frontrun.explore(S, [producer, consumer], lambda s: s.out == expected)
        assert r.property_holds is True, r.explanation


def test_get_from_empty_queue_is_a_deadlock() -> None:
    r = frontrun.explore(queue.Queue, [lambda q: q.get()], lambda q: True, reproduce_on_failure=0)
    assert r.failure_kind == "deadlock"


def test_threads_started_and_joined_inside_workers_are_explored() -> None:
    class S:
        def __init__(self) -> None:
            self.value = 0

    def inc(s: S) -> None:
        t = s.value
        s.value = t + 1

    def parent(s: S) -> None:
        kids = [threading.Thread(target=inc, args=(s,)) for _ in range(2)]
        for k in kids:
            k.start()
        assert all(isinstance(k.is_alive(), bool) for k in kids)
        for k in kids:
            k.join()
        assert not any(k.is_alive() for k in kids)

    r = frontrun.explore(S, [parent], lambda s: s.value == 2)
    assert r.property_holds is False, "the children's lost update must be found"
    assert r.failure_kind == "invariant"

    def safe_parent(s: S) -> None:
        k = threading.Thread(target=inc, args=(s,))
        k.start()
        k.join()
        inc(s)

    r = frontrun.explore(S, [safe_parent], lambda s: s.value == 2)
    assert r.property_holds is True and r.exhausted, r.explanation


def test_sleep_is_a_yield_point_not_a_real_sleep() -> None:
    # A real 30 s sleep would exceed timeout_per_run and make this inconclusive.
    r = frontrun.explore(
        Box, [lambda b: time.sleep(30), lambda b: time.sleep(30)], lambda b: True, timeout_per_run=2
    )
    assert r.property_holds is True, r.explanation


def test_lock_order_deadlock_reports_cycle_with_file_and_line() -> None:
    class S:
        def __init__(self) -> None:
            self.a = threading.Lock()
            self.b = threading.Lock()

    def ab(s: S) -> None:
        with s.a:
            with s.b:  # line AB
                pass

    def ba(s: S) -> None:
        with s.b:
            with s.a:  # line BA
                pass

    r = frontrun.explore(S, [ab, ba], lambda s: True)
    assert r.property_holds is False and r.failure_kind == "deadlock"
    text = r.explanation
    assert "wait-for cycle 'ab' -> 'ba' -> 'ab'" in text, text
    src = pathlib.Path(__file__).read_text().splitlines()
    line_ab = next(i for i, s in enumerate(src, 1) if s.strip().endswith("# line AB"))
    line_ba = next(i for i, s in enumerate(src, 1) if s.strip().endswith("# line BA"))
    assert f"test_coop.py:{line_ab}" in text and f"test_coop.py:{line_ba}" in text, text
    assert "held by 'ba'" in text and "held by 'ab'" in text
    assert r.reproduced == r.reproduce_attempts == 10


def test_coop_primitives_work_after_the_exploration_ends() -> None:
    kept: list[Any] = []

    def setup() -> Any:
        s = Box()
        s.lock = threading.Lock()  # type: ignore[attr-defined]
        s.cond = threading.Condition()  # type: ignore[attr-defined]
        kept.append(s)
        return s

    frontrun.explore(setup, [lambda s: None], lambda s: True)
    s = kept[0]
    assert isinstance(s.lock, _native.CoopLock)
    assert s.lock.acquire() and s.lock.locked()
    assert s.lock.acquire(timeout=0.01) is False
    s.lock.release()
    assert not s.lock.locked()
    with pytest.raises(RuntimeError):
        s.lock.release()

    # A real thread notifies a coop condition outside any exploration.
    def notifier() -> None:
        with s.cond:
            s.value = 1
            s.cond.notify_all()

    with s.cond:
        t = threading.Thread(target=notifier)
        t.start()
        assert s.cond.wait_for(lambda: s.value == 1, timeout=10)
    t.join(10)
    assert not t.is_alive()


def test_polling_loop_with_sleep_makes_progress_under_dpor() -> None:
    class S:
        def __init__(self) -> None:
            self.ready = False
            self.seen = False

    def poller(s: S) -> None:
        while not s.ready:
            time.sleep(0)
        s.seen = True

    def setter(s: S) -> None:
        s.ready = True

    r = frontrun.explore(S, [poller, setter], lambda s: s.seen, timeout_per_run=5)
    assert r.property_holds is True and r.exhausted, r.explanation
    assert r.executions_explored >= 2
