"""A blocked call that returns just as the running thread pauses.

With three or more threads, the running thread may release the lock a
blocked thread waits for and reach its next marker before the woken thread
has reported back. The woken thread must still take the turn back before the
thread of the next step (SPEC "Trace markers", rule 5): the outcome is fixed
by the schedule, every run.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from frontrun.common import Schedule, Step
from frontrun.trace_markers import TraceExecutor

RUNS = 150


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    for t in leftover:
        t.join(timeout=5.0)
    assert not [t.name for t in leftover if t.is_alive()]


def lock_handoff() -> tuple[str, ...]:
    lock = threading.Lock()
    log: list[str] = []

    def holder() -> None:
        lock.acquire()
        log.append("h1")  # frontrun: h_release
        lock.release()
        log.append("h2")  # frontrun: h_after

    def waiter() -> None:
        log.append("w0")  # frontrun: w_start
        with lock:
            log.append("w1")
        log.append("w2")  # frontrun: w_after

    def other() -> None:
        log.append("o1")  # frontrun: o_step
        log.append("o2")  # frontrun: o_after

    executor = TraceExecutor(
        Schedule(
            [
                Step("w", "w_start"),
                Step("h", "h_release"),
                Step("o", "o_step"),
                Step("h", "h_after"),
                Step("o", "o_after"),
                Step("w", "w_after"),
            ]
        )
    )
    executor.run("h", holder)
    executor.run("w", waiter)
    executor.run("o", other)
    executor.wait(timeout=10.0)
    return tuple(log)


def event_handoff() -> tuple[str, ...]:
    ev = threading.Event()
    log: list[str] = []

    def setter() -> None:
        log.append("s1")  # frontrun: s_set
        ev.set()
        log.append("s2")  # frontrun: s_after

    def getter() -> None:
        log.append("g0")  # frontrun: g_wait
        ev.wait()
        log.append("g1")
        log.append("g2")  # frontrun: g_after

    def third() -> None:
        log.append("t1")  # frontrun: t_step
        log.append("t2")  # frontrun: t_after

    def fourth() -> None:
        log.append("f1")  # frontrun: f_step

    executor = TraceExecutor(
        Schedule(
            [
                Step("g", "g_wait"),
                Step("s", "s_set"),
                Step("t", "t_step"),
                Step("f", "f_step"),
                Step("s", "s_after"),
                Step("t", "t_after"),
                Step("g", "g_after"),
            ]
        )
    )
    executor.run("s", setter)
    executor.run("g", getter)
    executor.run("t", third)
    executor.run("f", fourth)
    executor.wait(timeout=10.0)
    return tuple(log)


def test_a_woken_lock_waiter_goes_before_the_next_step_every_run() -> None:
    seen = Counter(lock_handoff() for _ in range(RUNS))
    # w returns from its lock as soon as h pauses, before o's step.
    assert seen == {("w0", "h1", "w1", "o1", "h2", "o2", "w2"): RUNS}


def test_a_woken_event_waiter_goes_before_the_next_step_every_run() -> None:
    seen = Counter(event_handoff() for _ in range(RUNS))
    assert seen == {("g0", "s1", "g1", "t1", "f1", "s2", "t2", "g2"): RUNS}


def rlock_handoff() -> tuple[str, ...]:
    lock = threading.RLock()
    log: list[str] = []

    def holder() -> None:
        lock.acquire()
        lock.acquire()
        log.append("h1")  # frontrun: rh_release
        lock.release()  # still held: the waiter stays blocked
        log.append("h1b")
        lock.release()
        log.append("h2")  # frontrun: rh_after

    def waiter() -> None:
        log.append("w0")  # frontrun: rw_start
        with lock:  # held by the paused holder: the turn passes
            log.append("w1")
        log.append("w2")  # frontrun: rw_after

    def other() -> None:
        log.append("o1")  # frontrun: ro_step
        log.append("o2")  # frontrun: ro_after

    executor = TraceExecutor(
        Schedule(
            [
                Step("w", "rw_start"),
                Step("h", "rh_release"),
                Step("o", "ro_step"),
                Step("h", "rh_after"),
                Step("o", "ro_after"),
                Step("w", "rw_after"),
            ]
        )
    )
    executor.run("h", holder)
    executor.run("w", waiter)
    executor.run("o", other)
    executor.wait(timeout=10.0)
    return tuple(log)


def test_a_woken_rlock_waiter_goes_before_the_next_step_every_run() -> None:
    seen = Counter(rlock_handoff() for _ in range(RUNS))
    # w blocks on the RLock the paused h holds twice; h's first release
    # leaves it held, its second lets w return before o's step.
    assert seen == {("w0", "h1", "h1b", "w1", "o1", "h2", "o2", "w2"): RUNS}
