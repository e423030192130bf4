"""TraceExecutor never hangs: every way a schedule can fail is a clear error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from frontrun import _native
from frontrun.common import Schedule, Step
from frontrun.trace_markers import (
    DuplicateMarkerError,
    MarkerNotFoundError,
    ScheduleAborted,
    ScheduleDeadlockError,
    ScheduleError,
    ThreadFailedError,
    TraceExecutor,
    TraceTimeoutError,
)

THIS_FILE = Path(__file__).resolve()


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    for t in leftover:
        t.join(timeout=5.0)
    assert not [t.name for t in leftover if t.is_alive()]


def two_marks(log: list[str]) -> None:
    log.append("one")  # frontrun: mark_one
    log.append("two")  # frontrun: mark_two


def test_unknown_thread_in_schedule() -> None:
    log: list[str] = []
    executor = TraceExecutor(Schedule([Step("a", "mark_two"), Step("ghost", "mark_one")]))
    executor.run("a", two_marks, log)
    with pytest.raises(ScheduleError, match=r'"ghost".*started: "a"') as info:
        executor.wait(timeout=10.0)
    assert "step 2" in str(info.value)
    # wait() aborts at once, so `a` unwinds wherever it stands: before "one"
    # or paused before mark_two, never past it.
    assert log in ([], ["one"])
    assert not executor.threads[0].is_alive()


def test_marker_in_no_traced_source() -> None:
    executor = TraceExecutor(Schedule([Step("a", "no_such_marker_anywhere")]))
    executor.run("a", two_marks, [])
    with pytest.raises(MarkerNotFoundError) as info:
        executor.wait(timeout=10.0)
    msg = str(info.value)
    assert "no_such_marker_anywhere" in msg
    assert "Files scanned" in msg and str(THIS_FILE) in msg


def test_thread_finishing_before_its_step() -> None:
    log: list[str] = []
    other: list[str] = []
    # mark_two exists in this file, but `a` runs no Python code at all.
    executor = TraceExecutor(Schedule([Step("a", "mark_two"), Step("b", "mark_one")]))
    executor.run("b", two_marks, other)
    executor.run("a", log.append, "x")
    with pytest.raises(ScheduleError, match='thread "a" finished without reaching marker') as info:
        executor.wait(timeout=10.0)
    assert not isinstance(info.value, MarkerNotFoundError)
    assert "step 1" in str(info.value)
    # `b` was waiting at its start and was aborted before running anything.
    assert other == []


DUPLICATE_SOURCE = """
def work():
    x = 1  # frontrun: twice
    y = 2
    z = 3  # frontrun: twice
"""


def test_duplicate_marker_in_one_function_is_refused_at_run(tmp_path: Path) -> None:
    path = tmp_path / "dup_markers.py"
    path.write_text(DUPLICATE_SOURCE)
    namespace: dict[str, object] = {}
    exec(compile(DUPLICATE_SOURCE, str(path), "exec"), namespace)
    executor = TraceExecutor(Schedule([Step("a", "twice")]))
    with pytest.raises(DuplicateMarkerError) as info:
        executor.run("a", namespace["work"])  # type: ignore[arg-type]
    msg = str(info.value)
    assert str(path) in msg and "lines 3 and 5" in msg and "'twice'" in msg
    assert executor.threads == []
    with pytest.raises(DuplicateMarkerError):
        _native.scan_markers(str(path))


def failing(log: list[str]) -> None:
    log.append("before")  # frontrun: before_fail
    raise ValueError("boom from the thread")
    log.append("after")  # frontrun: after_fail


def test_thread_exception_is_reraised_naming_the_thread() -> None:
    log: list[str] = []
    executor = TraceExecutor(
        Schedule([Step("bad", "before_fail"), Step("ok", "mark_two"), Step("bad", "after_fail")])
    )
    executor.run("bad", failing, log)
    executor.run("ok", two_marks, log)
    with pytest.raises(ThreadFailedError, match='thread "bad" raised ValueError: boom') as info:
        executor.wait(timeout=10.0)
    assert info.value.thread == "bad"
    assert isinstance(info.value.__cause__, ValueError)
    # `ok` was paused at its first marker (mark_one) when `bad` died holding
    # the turn, and was aborted there.
    assert log == ["before"]


def test_exception_after_the_schedule_is_still_reported() -> None:
    executor = TraceExecutor(Schedule([]))
    executor.run("bad", failing, [])
    with pytest.raises(ThreadFailedError, match='"bad"'):
        executor.wait(timeout=10.0)


def blocked_holder(gate: threading.Event, log: list[str]) -> None:
    log.append("start")  # frontrun: holder_start
    gate.wait()  # the turn holder is stuck here (a timed wait would end by itself)
    log.append("never")  # frontrun: holder_after


def test_turn_holder_blocked_on_a_paused_thread_is_a_deadlock() -> None:
    gate = threading.Event()
    log: list[str] = []
    waiter_log: list[str] = []
    executor = TraceExecutor(
        Schedule(
            [
                Step("holder", "holder_start"),
                Step("waiter", "mark_one"),
                Step("holder", "holder_after"),
            ]
        )
    )
    executor.run("holder", blocked_holder, gate, log)
    executor.run("waiter", two_marks, waiter_log)
    started = time.monotonic()
    try:
        with pytest.raises(ScheduleDeadlockError) as info:
            executor.wait(timeout=10.0)
    finally:
        gate.set()
    # Raised as soon as nothing could run, not at the wait timeout.
    assert time.monotonic() - started < 5.0
    msg = str(info.value)
    assert 'pending step 3 Step("holder", "holder_after")' in msg
    holder_line = blocked_holder.__code__.co_firstlineno + 2
    assert "holder: blocked in <locked _thread.lock" in msg
    assert f"{THIS_FILE}:{holder_line} (blocked_holder)" in msg
    waiter_line = two_marks.__code__.co_firstlineno + 2
    assert f'waiter: paused before marker "mark_two" at {THIS_FILE}:{waiter_line}' in msg
    for t in executor.threads:
        t.join(timeout=5.0)
    # The holder blocked, so the turn passed to the waiter's step, which ran
    # "one" and paused before mark_two. After the event is set the holder
    # unwinds at its next line, before running it.
    assert log == ["start"] and waiter_log == ["one"]


def sleepy(log: list[str]) -> None:
    log.append("a")  # frontrun: sleepy_start
    time.sleep(2.0)  # far longer than the wait timeout below
    log.append("b")  # frontrun: sleepy_end


def test_sleeping_turn_holder_times_out() -> None:
    log: list[str] = []
    executor = TraceExecutor(
        Schedule([Step("s", "sleepy_start"), Step("w", "mark_one"), Step("s", "sleepy_end")])
    )
    executor.run("s", sleepy, log)
    executor.run("w", two_marks, [])
    with pytest.raises(TraceTimeoutError) as info:
        executor.wait(timeout=0.3)
    sleep_line = sleepy.__code__.co_firstlineno + 2
    assert f"{THIS_FILE}:{sleep_line} (sleepy)" in str(info.value)
    for t in executor.threads:
        t.join(timeout=5.0)
    assert log == ["a"]


def test_paused_thread_gives_up_after_park_timeout() -> None:
    # wait() is never called in time: the schedule cannot begin, and each
    # thread paused at its first marker gives up after park_timeout. Both
    # park within microseconds of each other, so which one's give-up is
    # reported first depends on the OS under load: either names the cause.
    executor = TraceExecutor(Schedule([Step("other", "mark_two")]), park_timeout=0.2)
    executor.run("parked", two_marks, [])
    executor.run("other", two_marks, [])
    time.sleep(0.5)
    with pytest.raises(
        TraceTimeoutError, match=r'thread "(parked|other)" waited 0.2 s for its turn'
    ):
        executor.wait(timeout=10.0)


def test_wait_needs_a_finite_timeout() -> None:
    executor = TraceExecutor(Schedule([]))
    executor.run("a", two_marks, [])
    with pytest.raises(TypeError, match="timeout=None"):
        executor.wait(timeout=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        executor.wait(timeout=-1.0)
    executor.wait(timeout=10.0)


def test_duplicate_thread_names_are_refused() -> None:
    executor = TraceExecutor(Schedule([]))
    executor.run("a", two_marks, [])
    with pytest.raises(ValueError, match="already started"):
        executor.run("a", two_marks, [])
    executor.wait(timeout=10.0)


def test_abort_is_a_base_exception() -> None:
    # User code catching Exception must not swallow the abort of a failed run.
    assert issubclass(ScheduleAborted, BaseException)
    assert not issubclass(ScheduleAborted, Exception)
    assert issubclass(TraceTimeoutError, TimeoutError)
    assert issubclass(MarkerNotFoundError, ScheduleError)


def _interrupt_main_once_waiting(log: list[str], main: int, limit: float = 20.0) -> None:
    """Send Ctrl-C to the main thread once it is parked in the executor's
    wait and the sleeper is past its first line. A fixed delay is not enough
    under CPU load: the interrupt could land before ``wait`` (outside the
    ``pytest.raises``) or before the sleeper started."""
    import _thread
    import sys

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(main)
        in_wait = (
            frame is not None
            and frame.f_code.co_name == "wait"
            and frame.f_code.co_filename.endswith("trace_markers.py")
        )
        if in_wait and log == ["a"]:
            break
        time.sleep(0.01)
    else:
        raise AssertionError(f"main thread never parked in TraceExecutor.wait within {limit} s")
    # Parked in the native wait, which checks for signals every 100 ms.
    _thread.interrupt_main()


def test_ctrl_c_interrupts_wait_and_aborts_the_run() -> None:
    log: list[str] = []
    executor = TraceExecutor(Schedule([Step("s", "sleepy_start"), Step("s", "sleepy_end")]))
    executor.run("s", sleepy, log)
    interrupter = threading.Thread(
        target=_interrupt_main_once_waiting, args=(log, threading.get_ident()), daemon=True
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupter.start()
            executor.wait(timeout=30.0)
    finally:
        interrupter.join(timeout=25.0)
    assert not interrupter.is_alive()
    for t in executor.threads:
        t.join(timeout=10.0)
        assert not t.is_alive(), "the sleeper did not unwind"
    # Aborted: the sleeper unwound before its next line once awake.
    assert log == ["a"]


def test_coroutine_functions_are_pointed_to_the_async_executor() -> None:
    async def coro() -> None:
        return None

    executor = TraceExecutor(Schedule([]))
    with pytest.raises(TypeError, match="AsyncTraceExecutor"):
        executor.run("c", coro)
    assert executor.threads == []


def test_timeout_report_flags_a_marker_seen_nowhere() -> None:
    executor = TraceExecutor(Schedule([Step("s", "sleepy_start"), Step("s", "misspelt_marker")]))
    executor.run("s", sleepy, [])
    with pytest.raises(TraceTimeoutError, match='marker "misspelt_marker" is in none of the'):
        executor.wait(timeout=0.3)
