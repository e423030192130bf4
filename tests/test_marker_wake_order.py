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


def lock_handoff(lock: threading.Lock | threading.RLock, depth: int) -> tuple[str, ...]:
    """The holder takes `lock` `depth` times; only its last release frees it."""
    log: list[str] = []

    def holder() -> None:
        for _ in range(depth):
            lock.acquire()
        log.append("h1")  # frontrun: h_release
        for _ in range(depth - 1):
            lock.release()  # still held: the waiter stays blocked
            log.append("h1b")
        lock.release()
        log.append("h2")  # frontrun: h_after

    def waiter() -> None:
        log.append("w0")  # frontrun: w_start
        with lock:  # held by the paused holder: the turn passes
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


@pytest.mark.parametrize(
    ("make_lock", "depth", "extra"),
    [(threading.Lock, 1, ()), (threading.RLock, 2, ("h1b",))],
    ids=["lock", "rlock-taken-twice"],
)
def test_a_woken_lock_waiter_goes_before_the_next_step_every_run(
    make_lock: type, depth: int, extra: tuple[str, ...]
) -> None:
    seen = Counter(lock_handoff(make_lock(), depth) for _ in range(RUNS))
    # w returns from the lock as soon as h's last release frees it and h
    # pauses, before o's step; an RLock's inner release leaves w blocked.
    assert seen == {("w0", "h1", *extra, "w1", "o1", "h2", "o2", "w2"): RUNS}


def test_a_woken_event_waiter_goes_before_the_next_step_every_run() -> None:
    seen = Counter(event_handoff() for _ in range(RUNS))
    assert seen == {("g0", "s1", "g1", "t1", "f1", "s2", "t2", "g2"): RUNS}
