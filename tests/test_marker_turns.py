"""TraceExecutor's turn-taking: one thread at a time, fixed by the schedule.

Each rule of SPEC "Trace markers" has a test here: the documented counter
schedules (50 runs each), starts in run() order, the end of the schedule,
and blocking on `threading` primitives passing the turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from frontrun.common import Schedule, Step
from frontrun.trace_markers import ScheduleDeadlockError, TraceExecutor

RUNS = 50


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    for t in leftover:
        t.join(timeout=5.0)
    assert not [t.name for t in leftover if t.is_alive()]


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> None:
        temp = self.value  # frontrun: read_value
        self.value = temp + 1  # frontrun: write_value


def run_counter(schedule: Schedule) -> int:
    counter = Counter()
    executor = TraceExecutor(schedule)
    executor.run("thread1", counter.increment)
    executor.run("thread2", counter.increment)
    executor.wait(timeout=10.0)
    return counter.value


def test_serial_counter_schedule_gives_2() -> None:
    schedule = Schedule(
        [
            Step("thread1", "read_value"),
            Step("thread1", "write_value"),
            Step("thread2", "read_value"),
            Step("thread2", "write_value"),
        ]
    )
    assert [run_counter(schedule) for _ in range(RUNS)] == [2] * RUNS


def test_interleaved_counter_schedule_gives_1() -> None:
    schedule = Schedule(
        [
            Step("thread1", "read_value"),
            Step("thread2", "read_value"),
            Step("thread1", "write_value"),
            Step("thread2", "write_value"),
        ]
    )
    assert [run_counter(schedule) for _ in range(RUNS)] == [1] * RUNS


def test_threads_start_one_at_a_time_in_run_order() -> None:
    log: list[str] = []

    def work(tag: str) -> None:
        log.append(f"{tag}-start")
        log.append(f"{tag}-marked")  # frontrun: turn_mark
        log.append(f"{tag}-end")

    for _ in range(10):
        log.clear()
        executor = TraceExecutor(Schedule([Step("c", "turn_mark")]))
        for tag in "abc":
            executor.run(tag, work, tag)
        executor.wait(timeout=10.0)
        # Starts in run() order up to the first marker; c's step; then the
        # others to their ends, in run() order.
        assert log == [
            "a-start",
            "b-start",
            "c-start",
            "c-marked",
            "c-end",
            "a-marked",
            "a-end",
            "b-marked",
            "b-end",
        ]


def test_blocking_on_a_lock_passes_the_turn_and_takes_it_back() -> None:
    log: list[str] = []
    lock = threading.Lock()

    def holder() -> None:
        lock.acquire()
        log.append("holder has the lock")  # frontrun: holder_mid
        lock.release()  # frontrun: holder_release
        log.append("holder released")

    def waiter() -> None:
        log.append("waiter asks")  # frontrun: waiter_asks
        lock.acquire()
        log.append("waiter has the lock")
        lock.release()

    schedule = Schedule(
        [
            Step("holder", "holder_mid"),
            Step("waiter", "waiter_asks"),
            Step("holder", "holder_release"),
        ]
    )
    for _ in range(20):
        log.clear()
        executor = TraceExecutor(schedule)
        executor.run("holder", holder)
        executor.run("waiter", waiter)
        executor.wait(timeout=10.0)
        # The waiter blocks on the lock of the paused holder: the turn passes
        # to the next step's thread, and comes back once the lock is free.
        assert log == [
            "holder has the lock",
            "waiter asks",
            "holder released",
            "waiter has the lock",
        ]


def test_event_wait_passes_the_turn() -> None:
    log: list[str] = []

    def setter(ev: threading.Event) -> None:
        log.append("setter ready")  # frontrun: setter_ready
        ev.set()
        log.append("setter set")

    def getter(ev: threading.Event) -> None:
        log.append("getter waits")  # frontrun: getter_waits
        assert ev.wait(timeout=5.0)
        log.append("getter woke")

    for _ in range(20):
        log.clear()
        ev = threading.Event()
        executor = TraceExecutor(
            Schedule([Step("getter", "getter_waits"), Step("setter", "setter_ready")])
        )
        executor.run("setter", setter, ev)
        executor.run("getter", getter, ev)
        executor.wait(timeout=10.0)
        # The setter runs to its end (it holds the turn after the last step);
        # only then does the woken getter take the turn back.
        assert log == ["getter waits", "setter ready", "setter set", "getter woke"]


def test_try_lock_on_a_held_lock_does_not_pass_the_turn() -> None:
    log: list[str] = []
    lock = threading.Lock()

    def holder() -> None:
        lock.acquire()
        log.append("holder holds")  # frontrun: tl_hold
        lock.release()

    def trier() -> None:
        log.append(f"blocking=False: {lock.acquire(blocking=False)}")  # frontrun: tl_try
        log.append(f"False: {lock.acquire(False)}")
        log.append(f"timeout=0: {lock.acquire(timeout=0)}")
        log.append("trier done")  # frontrun: tl_done

    for _ in range(10):
        log.clear()
        executor = TraceExecutor(Schedule([Step("trier", "tl_try"), Step("holder", "tl_hold")]))
        executor.run("holder", holder)
        executor.run("trier", trier)
        executor.wait(timeout=10.0)
        # The holder paused at its first marker holding the lock. The trier's
        # try-locks fail at once without passing the turn; it pauses at its
        # next marker, the holder takes its step, then the trier ends.
        assert log == [
            "blocking=False: False",
            "False: False",
            "timeout=0: False",
            "holder holds",
            "trier done",
        ]


def test_reentrant_rlock_does_not_pass_the_turn() -> None:
    log: list[str] = []
    lock = threading.RLock()

    def nested(tag: str) -> None:
        with lock:
            log.append(f"{tag} outer")  # frontrun: rl_outer
            lock.acquire()
            log.append(f"{tag} inner")
            lock.release()

    executor = TraceExecutor(Schedule([Step("a", "rl_outer"), Step("b", "rl_outer")]))
    executor.run("a", nested, "a")
    executor.run("b", nested, "b")
    executor.wait(timeout=10.0)
    assert log == ["a outer", "a inner", "b outer", "b inner"]


def test_with_on_a_lock_held_by_a_paused_thread_passes_the_turn() -> None:
    log: list[str] = []

    class Store:
        def __init__(self) -> None:
            self.lock = threading.Lock()

    store = Store()

    def holder() -> None:
        with store.lock:
            log.append("holder in")  # frontrun: wl_hold
            log.append("holder leaving")  # frontrun: wl_leave
        log.append("holder out")

    def waiter() -> None:
        log.append("waiter asks")  # frontrun: wl_ask
        with store.lock:
            log.append("waiter in")

    schedule = Schedule(
        [Step("holder", "wl_hold"), Step("waiter", "wl_ask"), Step("holder", "wl_leave")]
    )
    for _ in range(20):
        log.clear()
        executor = TraceExecutor(schedule)
        executor.run("holder", holder)
        executor.run("waiter", waiter)
        executor.wait(timeout=10.0)
        assert log == ["holder in", "waiter asks", "holder leaving", "holder out", "waiter in"]


def test_lock_cycle_through_paused_threads_is_reported_at_once() -> None:
    first = threading.Lock()
    second = threading.Lock()

    def one() -> None:
        first.acquire()
        second.acquire()  # frontrun: one_second
        second.release()
        first.release()

    def two() -> None:
        second.acquire()
        first.acquire()  # frontrun: two_first
        first.release()
        second.release()

    # Steps: one takes `first` and pauses at its marker (start), two takes
    # `second` and pauses; one asks for `second` (blocked: the turn passes
    # to two), and two asks for `first`: nobody can run.
    executor = TraceExecutor(Schedule([Step("one", "one_second"), Step("two", "two_first")]))
    executor.run("one", one)
    executor.run("two", two)
    started = time.monotonic()
    with pytest.raises(ScheduleDeadlockError) as info:
        executor.wait(timeout=10.0)
    assert time.monotonic() - started < 5.0
    msg = str(info.value)
    assert "one: blocked in <locked _thread.lock" in msg
    assert "two: blocked in <locked _thread.lock" in msg
    assert "test_marker_turns.py:" in msg
    # Unblock the threads so they unwind (the run was aborted).
    first.release()
    second.release()


def test_timed_wait_on_a_paused_setter_respects_its_timeout() -> None:
    # The getter's wait blocks; its next step is its own, and the setter is
    # paused at a marker no step names: nobody can take the turn. A timed
    # wait is not a deadlock: it returns False after its own timeout, and
    # the run goes on.
    waited: list[tuple[bool, float]] = []
    log: list[str] = []

    def setter(ev: threading.Event) -> None:
        log.append("setter paused")  # frontrun: setter_never_stepped
        ev.set()

    def getter(ev: threading.Event) -> None:
        log.append("getter waits")  # frontrun: getter_wait
        started = time.monotonic()
        got = ev.wait(timeout=0.4)
        waited.append((got, time.monotonic() - started))
        log.append("getter after")  # frontrun: getter_after

    ev = threading.Event()
    executor = TraceExecutor(
        Schedule([Step("getter", "getter_wait"), Step("getter", "getter_after")])
    )
    executor.run("getter", getter, ev)
    executor.run("setter", setter, ev)
    executor.wait(timeout=10.0)
    [(got, elapsed)] = waited
    assert got is False
    assert 0.35 <= elapsed < 5.0
    assert log == ["getter waits", "getter after", "setter paused"]


def test_timed_lock_acquire_gives_up_after_its_timeout() -> None:
    lock = threading.Lock()
    results: list[bool] = []

    def holder() -> None:
        lock.acquire()
        lock.release()  # frontrun: holder_release

    def taker() -> None:
        results.append(lock.acquire(timeout=0.3))  # frontrun: taker_acquire
        results.append(True)  # frontrun: taker_after

    # holder takes the lock and pauses before releasing it; taker's timed
    # acquire cannot succeed while holder stays paused: it returns False.
    executor = TraceExecutor(
        Schedule([Step("taker", "taker_acquire"), Step("taker", "taker_after")])
    )
    executor.run("holder", holder)
    executor.run("taker", taker)
    executor.wait(timeout=10.0)
    assert results == [False, True]


def test_untimed_wait_on_a_paused_setter_is_a_deadlock_at_once() -> None:
    def setter(ev: threading.Event) -> None:
        ev.set()  # frontrun: setter_never_stepped

    def getter(ev: threading.Event) -> None:
        ev.wait()  # frontrun: getter_wait
        ev.is_set()  # frontrun: getter_after

    ev = threading.Event()
    executor = TraceExecutor(
        Schedule([Step("getter", "getter_wait"), Step("getter", "getter_after")])
    )
    executor.run("getter", getter, ev)
    executor.run("setter", setter, ev)
    started = time.monotonic()
    with pytest.raises(ScheduleDeadlockError, match="getter: blocked in"):
        executor.wait(timeout=10.0)
    assert time.monotonic() - started < 5.0
    ev.set()
