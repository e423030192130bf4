"""AsyncTraceExecutor: trace-marker schedules over asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from frontrun.async_trace_markers import AsyncTraceExecutor
from frontrun.common import Schedule, Step
from frontrun.trace_markers import ScheduleError, ThreadFailedError, TraceTimeoutError

RUNS = 20


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    for t in leftover:
        t.join(timeout=5.0)
    assert not [t.name for t in leftover if t.is_alive()]


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance


async def fetch(acct: Account) -> int:
    await asyncio.sleep(0.0005)  # a round trip to the "database"
    return acct.balance


async def store(acct: Account, value: int) -> None:
    await asyncio.sleep(0)
    acct.balance = value


async def transfer(acct: Account, amount: int, reads: list[int]) -> None:
    old = await fetch(acct)  # frontrun: a_read
    reads.append(old)
    await store(acct, old + amount)  # frontrun: a_write


SEED = Schedule(
    [
        Step("txn_a", "a_read"),
        Step("txn_b", "a_read"),
        Step("txn_a", "a_write"),
        Step("txn_b", "a_write"),
    ]
)


def test_lost_update_between_tasks_every_run() -> None:
    for _ in range(RUNS):
        acct = Account(1000)
        reads: list[int] = []
        executor = AsyncTraceExecutor(SEED)
        executor.run("txn_a", transfer, acct, 100, reads)
        executor.run("txn_b", transfer, acct, 200, reads)
        executor.wait(timeout=10.0)
        assert reads == [1000, 1000]
        assert acct.balance in (1100, 1200)


def test_empty_schedule_runs_tasks_freely() -> None:
    acct = Account(1000)
    reads: list[int] = []
    executor = AsyncTraceExecutor(Schedule([]))
    executor.run({"a": lambda: transfer(acct, 100, reads), "b": lambda: transfer(acct, 200, reads)})
    executor.wait(timeout=10.0)
    assert len(reads) == 2 and reads[0] == 1000
    assert acct.balance in (1100, 1200, 1300)


async def uses_the_loop(seen: dict[str, object], ready: asyncio.Event) -> None:
    seen["loop"] = asyncio.get_running_loop()  # frontrun: loop_check
    seen["task"] = asyncio.current_task() is not None
    await asyncio.wait_for(ready.wait(), timeout=5.0)
    seen["ready"] = True


async def sets_event(ready: asyncio.Event) -> None:
    await asyncio.sleep(0)
    ready.set()


def test_tasks_share_the_running_loop_and_its_primitives() -> None:
    async def main() -> tuple[asyncio.AbstractEventLoop, dict[str, object]]:
        seen: dict[str, object] = {}
        ready = asyncio.Event()
        executor = AsyncTraceExecutor(Schedule([Step("user", "loop_check")]))
        executor.run("user", uses_the_loop, seen, ready)
        executor.run("free", sets_event, ready)
        await executor.wait_async(timeout=10.0)
        return asyncio.get_running_loop(), seen

    loop, seen = asyncio.run(main())
    assert seen == {"loop": loop, "task": True, "ready": True}


async def failing_task(log: list[str]) -> None:
    log.append("start")  # frontrun: fail_start
    await asyncio.sleep(0)
    raise KeyError("lost row")


def test_task_exception_names_the_task() -> None:
    log: list[str] = []
    executor = AsyncTraceExecutor(Schedule([Step("bad", "fail_start"), Step("bad", "never_here")]))
    executor.run("bad", failing_task, log)
    with pytest.raises(ThreadFailedError, match='"bad" raised KeyError') as info:
        executor.wait(timeout=10.0)
    assert isinstance(info.value.__cause__, KeyError)
    assert log == ["start"]


async def waits_forever(never: asyncio.Event, log: list[str]) -> None:
    log.append("in")  # frontrun: stuck_start
    await never.wait()
    log.append("out")  # frontrun: stuck_end


async def second(log: list[str]) -> None:
    log.append("second")  # frontrun: second_mark


def test_stuck_task_times_out_with_positions() -> None:
    async def main() -> None:
        never = asyncio.Event()
        log: list[str] = []
        executor = AsyncTraceExecutor(
            Schedule(
                [
                    Step("stuck", "stuck_start"),
                    Step("other", "second_mark"),
                    Step("stuck", "stuck_end"),
                ]
            )
        )
        executor.run("stuck", waits_forever, never, log)
        executor.run("other", second, log)
        with pytest.raises(TraceTimeoutError) as info:
            await executor.wait_async(timeout=0.5)
        msg = str(info.value)
        # The stuck task's await (no timer, no I/O: only another task could
        # end it) passes the turn: step 2 runs, and step 3 waits for an
        # event nobody sets, until the run's timeout.
        assert 'pending step 3 of 3: Step("stuck", "stuck_end")' in msg
        line = waits_forever.__code__.co_firstlineno + 2
        assert f"stuck: at {__file__}:{line} (waits_forever) awaiting" in msg
        assert log == ["in", "second"]

    asyncio.run(main())


def test_unknown_task_in_schedule() -> None:
    executor = AsyncTraceExecutor(Schedule([Step("ghost", "a_read")]))
    executor.run("real", transfer, Account(0), 1, [])
    with pytest.raises(ScheduleError, match='"ghost"'):
        executor.wait(timeout=10.0)


async def parked_task(log: list[str]) -> None:
    log.append("p1")  # frontrun: parked_one
    await asyncio.sleep(0)
    log.append("p2")  # frontrun: parked_two


async def dies_holding_turn(log: list[str]) -> None:
    log.append("d1")  # frontrun: dies_one
    await asyncio.sleep(0)
    raise RuntimeError("connection reset")
    log.append("d2")  # frontrun: dies_two


def test_failing_task_aborts_the_parked_ones() -> None:
    log: list[str] = []
    executor = AsyncTraceExecutor(
        Schedule([Step("p", "parked_two"), Step("d", "dies_one"), Step("d", "dies_two")])
    )
    executor.run("p", parked_task, log)
    executor.run("d", dies_holding_turn, log)
    with pytest.raises(ThreadFailedError, match='"d" raised RuntimeError: connection reset'):
        executor.wait(timeout=10.0)
    # p ran alone from its first marker to its step (parked_two) and on to its
    # end; then d took dies_one, ran d1 and raised.
    assert log == ["p1", "p2", "d1"]


async def blocks_the_loop(log: list[str]) -> None:
    log.append("b1")  # frontrun: block_one
    time.sleep(2.0)  # a synchronous call: the event loop cannot run meanwhile
    log.append("b2")  # frontrun: block_two


def test_task_blocking_the_loop_times_out() -> None:
    log: list[str] = []
    executor = AsyncTraceExecutor(
        Schedule([Step("b", "block_one"), Step("p", "parked_one"), Step("b", "block_two")])
    )
    executor.run("b", blocks_the_loop, log)
    executor.run("p", parked_task, [])
    with pytest.raises(TraceTimeoutError):
        executor.wait(timeout=0.3)
    assert log == ["b1"]


def test_executor_is_freed_after_a_run() -> None:
    import gc
    import weakref

    executor = AsyncTraceExecutor(SEED)
    executor.run("txn_a", transfer, Account(0), 1, [])
    executor.run("txn_b", transfer, Account(0), 2, [])
    executor.wait(timeout=10.0)
    ref = weakref.ref(executor)
    del executor
    gc.collect()
    assert ref() is None


class Handoff:
    def __init__(self) -> None:
        self.fut: asyncio.Future[int] | None = None
        self.log: list[str] = []


async def awaits_the_other(h: Handoff) -> None:
    h.fut = asyncio.get_running_loop().create_future()
    h.log.append("waiter awaits")  # frontrun: waiter_awaits
    got = await h.fut
    h.log.append(f"waiter got {got}")  # frontrun: waiter_after


async def completes_it(h: Handoff) -> None:
    h.log.append("setter sets")  # frontrun: setter_sets
    assert h.fut is not None
    h.fut.set_result(7)
    h.log.append("setter done")


def test_an_await_another_task_must_complete_passes_the_turn() -> None:
    # The waiter's step comes first; its await can only complete once the
    # setter runs its step. The await passes the turn instead of hanging.
    for _ in range(10):
        h = Handoff()
        executor = AsyncTraceExecutor(
            Schedule(
                [
                    Step("waiter", "waiter_awaits"),
                    Step("setter", "setter_sets"),
                    Step("waiter", "waiter_after"),
                ]
            )
        )
        executor.run("waiter", awaits_the_other, h)
        executor.run("setter", completes_it, h)
        started = time.monotonic()
        executor.wait(timeout=10.0)
        assert time.monotonic() - started < 5.0
        assert h.log == ["waiter awaits", "setter sets", "setter done", "waiter got 7"]
