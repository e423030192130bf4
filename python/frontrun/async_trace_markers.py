"""Trace-marker schedules for asyncio tasks.

A coroutine can only be suspended at an ``await``, but a marker may sit on
any line. So each task's coroutine is *stepped* (``send``/``throw``) in a
worker thread of its own, where the Rust line tracer can park it on any line;
the event loop stays in its own thread. A baton guarantees that only one of
them runs at a time: the loop hands it to a worker for one step of the
coroutine and blocks until the worker yields, finishes, or parks at a marker.
While a worker is parked the loop runs the other tasks. To the coroutine this
is indistinguishable from running inside the loop: ``get_running_loop()`` and
``current_task()`` answer as they would there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal

from frontrun._native import MarkerGate, TraceTimeoutError
from frontrun.common import Schedule, Step

__all__ = ["AsyncTraceExecutor"]

_Request = tuple[Literal["send"], Any] | tuple[Literal["throw"], BaseException]
_Response = (
    tuple[Literal["yield"], Any]
    | tuple[Literal["return"], Any]
    | tuple[Literal["raise"], BaseException]
    | tuple[Literal["parked"], None]
)

DEFAULT_WAIT_TIMEOUT = 30.0
DEFAULT_PARK_TIMEOUT = 120.0
_UNWIND_GRACE = 1.0
"""Seconds given to aborted tasks to unwind after a failure."""


class _Slot:
    """The baton between the loop and one task's worker thread."""

    def __init__(self, name: str, coro: Coroutine[Any, Any, Any], idx: int) -> None:
        self.name = name
        self.coro = coro
        self.idx = idx
        self.cond = threading.Condition()
        self.worker_has_baton = False
        self.request: _Request | None = None
        self.response: _Response | None = None
        self.resume: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- loop side -----------------------------------------------------------

    def step(self, deadline: float) -> _Response:
        """Give the worker the baton and block the loop until it is back."""
        with self.cond:
            self.worker_has_baton = True
            self.cond.notify_all()
            if not self.cond.wait_for(
                lambda: not self.worker_has_baton,
                # Past the deadline, aborted tasks still get a moment to unwind.
                timeout=max(_UNWIND_GRACE, deadline - time.monotonic()),
            ):
                raise TraceTimeoutError(
                    f"task {self.name!r} held the event loop past the wait timeout: it is "
                    "blocked without awaiting (a synchronous lock or I/O call)"
                )
            response, self.response = self.response, None
        assert response is not None
        return response

    # --- worker side ---------------------------------------------------------

    def take(self, timeout: float) -> bool:
        """Wait until the loop hands this worker the baton."""
        with self.cond:
            return self.cond.wait_for(lambda: self.worker_has_baton, timeout=timeout)

    def give(self, response: _Response) -> None:
        with self.cond:
            self.response = response
            self.worker_has_baton = False
            self.cond.notify_all()


class _ParkListener:
    """Gate listener: a worker parks (hands the loop back), then resumes or
    aborts (takes the loop again so it runs alone). It holds the slots, not
    the executor, so the gate does not keep the executor alive in a cycle."""

    def __init__(self, park_timeout: float) -> None:
        self.slots: list[_Slot] = []
        self.park_timeout = park_timeout

    def __call__(self, idx: int, what: str) -> None:
        slot = next(s for s in self.slots if s.idx == idx)
        if what == "park":
            # At a task's start the loop may not have handed the baton yet.
            if not slot.take(self.park_timeout):
                raise TraceTimeoutError(f"task {slot.name!r} never got the event loop")
            slot.give(("parked", None))
            return
        assert slot.loop is not None and slot.resume is not None
        try:
            slot.loop.call_soon_threadsafe(_settle, slot.resume)
        except RuntimeError:
            return  # the loop is closed: nothing else can run any more
        bound = self.park_timeout if what == "resume" else _UNWIND_GRACE
        if not slot.take(bound) and what == "resume":
            raise TraceTimeoutError(f"task {slot.name!r} was not resumed by the event loop")


class AsyncTraceExecutor:
    """Runs named coroutines as asyncio tasks under a trace-marker schedule.

    ``run`` registers tasks; ``await wait_async()`` (inside a running loop) or
    ``wait()`` (starts its own loop) runs them and raises like
    :class:`~frontrun.trace_markers.TraceExecutor`.
    """

    def __init__(
        self,
        schedule: Schedule | Sequence[Step],
        *,
        park_timeout: float = DEFAULT_PARK_TIMEOUT,
    ) -> None:
        steps = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
        self.schedule: Schedule = steps
        self._park_timeout = park_timeout
        listener = _ParkListener(park_timeout)
        self._gate = MarkerGate(
            [(s.thread, s.marker) for s in steps], park_timeout, listener, watch_blocking=False
        )
        self._pending: list[
            tuple[str, Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]]
        ] = []
        self._slots: list[_Slot] = listener.slots
        self._threads: list[threading.Thread] = []

    def run(
        self,
        name: str | Mapping[str, Callable[[], Awaitable[Any]]],
        fn: Callable[..., Awaitable[Any]] | None = None,
        /,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Register task ``name`` running ``await fn(*args, **kwargs)``, or one
        task per entry of a ``{name: coroutine_function}`` mapping."""
        if isinstance(name, Mapping):
            if fn is not None or args or kwargs:
                raise TypeError("run(mapping) takes no other arguments")
            for task_name, task_fn in name.items():
                self._pending.append((task_name, task_fn, (), {}))
            return
        if fn is None:
            raise TypeError("run(name, fn, *args, **kwargs) needs a coroutine function")
        self._pending.append((name, fn, args, kwargs))

    def wait(self, timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        """Run the registered tasks on a new event loop and join them."""
        asyncio.run(self.wait_async(timeout))

    async def wait_async(self, timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        """Run the registered tasks on the running loop and join them."""
        if timeout is None:
            raise TypeError("wait_async(timeout=None) is not allowed: give a number of seconds")
        deadline = time.monotonic() + float(timeout)
        loop = asyncio.get_running_loop()
        pending, self._pending = self._pending, []
        for name, fn, args, kwargs in pending:
            idx = self._gate.register(name, fn)
            coro = fn(*args, **kwargs)
            if not asyncio.iscoroutine(coro):
                raise TypeError(f"task {name!r}: {fn!r} did not return a coroutine")
            slot = _Slot(name, coro, idx)
            slot.loop = loop
            self._slots.append(slot)
            thread = threading.Thread(
                target=self._gate.thread_body,
                args=(idx, self._worker, (slot,)),
                name=name,
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        drivers = [asyncio.ensure_future(self._drive(slot, deadline)) for slot in self._slots]
        try:
            # The gate knows every outcome (exceptions, schedule errors, the
            # timeout report). It blocks, so it waits in a thread of its own
            # while the loop keeps driving the tasks.
            await _in_thread(self._gate.wait, max(0.001, deadline - time.monotonic()))
        except TraceTimeoutError as exc:
            # The gate sees worker threads; say where each coroutine stands.
            raise TraceTimeoutError(f"{exc}\n{self._task_positions()}") from None
        finally:
            _, stuck = await asyncio.wait(drivers, timeout=_UNWIND_GRACE)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=_UNWIND_GRACE)
            for thread in self._threads:
                thread.join(timeout=_UNWIND_GRACE)
            # Retrieve every driver's outcome so none is logged as lost; the
            # gate's report (raised above) takes precedence over them.
            errors = [task.exception() for task in drivers if task.done() and not task.cancelled()]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def _task_positions(self) -> str:
        lines = ["Task positions:"]
        for slot in self._slots:
            frame = getattr(slot.coro, "cr_frame", None)
            if frame is None:
                lines.append(f"  {slot.name}: finished")
                continue
            awaiting = getattr(slot.coro, "cr_await", None)
            what = f" awaiting {type(awaiting).__name__}" if awaiting is not None else ""
            lines.append(
                f"  {slot.name}: at {frame.f_code.co_filename}:{frame.f_lineno}"
                f" ({frame.f_code.co_name}){what}"
            )
        return "\n".join(lines)

    # --- loop side -----------------------------------------------------------

    async def _drive(self, slot: _Slot, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        slot.request = ("send", None)
        while True:
            slot.resume = loop.create_future()
            kind, value = slot.step(deadline)
            if kind == "parked":
                await slot.resume
                continue
            if kind in ("return", "raise"):
                return
            try:
                await _wait_for_yielded(value)
                slot.request = ("send", None)
            except asyncio.CancelledError as cancel:
                slot.request = ("throw", cancel)

    # --- worker side ---------------------------------------------------------

    def _worker(self, slot: _Slot) -> Any:
        """Body of a worker thread (inside the gate's traced thread body)."""
        assert slot.loop is not None
        asyncio.events._set_running_loop(slot.loop)
        try:
            if not slot.take(self._park_timeout):
                raise TraceTimeoutError(f"task {slot.name!r} never got the event loop")
            while True:
                request, slot.request = slot.request, None
                assert request is not None
                try:
                    if request[0] == "send":
                        yielded = slot.coro.send(request[1])
                    else:
                        yielded = slot.coro.throw(request[1])
                except StopIteration as stop:
                    slot.give(("return", stop.value))
                    return stop.value
                except BaseException as exc:
                    slot.give(("raise", exc))
                    raise
                # An await on a future that is not done waits for another task
                # (or the loop) to complete it: pass the turn, as a thread
                # blocked on a lock does, so the other task can run its step.
                waits = _only_another_task_can_complete(yielded, slot.loop)
                if waits:
                    self._gate.block(slot.idx, _await_what(yielded), _coro_at(slot.coro))
                slot.give(("yield", yielded))
                if not slot.take(self._park_timeout):
                    raise TraceTimeoutError(f"task {slot.name!r} was not resumed by the event loop")
                if waits:
                    # The future is done; the loop handed this task the baton.
                    # Take the turn back (this may park until it is ours).
                    self._gate.unblock(slot.idx)
        finally:
            asyncio.events._set_running_loop(None)


def _only_another_task_can_complete(yielded: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a coroutine step yielded a pending future that nothing but
    another task can complete: the loop (frozen while the worker holds the
    baton) has no timer and watches no file besides its own wake-up pipe.
    A sleep, a timeout or a socket read completes by itself, so the task
    keeps the turn through it, as a marked line runs whole; only a wait
    that would otherwise never end passes the turn."""
    if not getattr(yielded, "_asyncio_future_blocking", False):
        return False  # a bare ``sleep(0)`` yield
    scheduled = getattr(loop, "_scheduled", None)
    selector = getattr(loop, "_selector", None)
    if scheduled is None or selector is None:
        return False  # not a loop whose state can be read: keep the turn
    if any(not timer.cancelled() for timer in scheduled):
        return False
    own = getattr(loop, "_ssock", None)
    own_fd = own.fileno() if own is not None else -1
    try:
        fds = {key.fd for key in selector.get_map().values()}
    except (AttributeError, RuntimeError):
        return False
    return not (fds - {own_fd})


def _await_what(fut: Any) -> str:
    return f"await {type(fut).__name__}"


def _coro_at(coro: Coroutine[Any, Any, Any]) -> str:
    """``file:line (function)`` where the coroutine (or the innermost one it
    awaits) is suspended."""
    frame = None
    inner: Any = coro
    while inner is not None:
        frame = getattr(inner, "cr_frame", None) or getattr(inner, "gi_frame", None) or frame
        inner = getattr(inner, "cr_await", None) or getattr(inner, "gi_yieldfrom", None)
    if frame is None:
        return "?"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _wait_for_yielded(value: Any) -> None:
    """Do what asyncio.Task does with what a coroutine step yielded."""
    if value is None:
        await asyncio.sleep(0)
        return
    if getattr(value, "_asyncio_future_blocking", None) is not None:
        value._asyncio_future_blocking = False
        await asyncio.wait([value])
        return
    raise RuntimeError(f"coroutine yielded an unexpected value {value!r}")


async def _in_thread(fn: Callable[[float], None], arg: float) -> None:
    """Run a blocking call in a thread of its own and await it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def body() -> None:
        try:
            fn(arg)
        except BaseException as exc:
            loop.call_soon_threadsafe(_fail, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done)

    thread = threading.Thread(target=body, name="frontrun-async-wait", daemon=True)
    thread.start()
    try:
        await done
    finally:
        thread.join(timeout=arg + _UNWIND_GRACE)


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
