"""Run threads under a trace-marker schedule.

Mark lines with ``# frontrun: <name>`` comments; a :class:`~frontrun.common.Schedule`
of :class:`~frontrun.common.Step` then decides which thread runs to which marker,
in order. The tracer, the marker scanner and the turn-taking are in Rust
(``frontrun._native.MarkerGate``); this module only starts and joins threads.

A marker tags the first line of its statement: the line it ends, or, alone on
its line, the next line of code. One name may tag lines in several functions
(a step stops at whichever its thread reaches first); twice in one function
is refused with :class:`DuplicateMarkerError`.

:meth:`TraceExecutor.wait` raises, never hangs:

- :class:`ThreadFailedError` when a thread raised (the original is its
  ``__cause__``, ``.thread`` its name);
- :class:`ScheduleError` when a step names a thread never started, or a thread
  finished without reaching its step; :class:`MarkerNotFoundError` when the
  step's marker is in none of the traced files;
- :class:`TraceTimeoutError` after ``timeout``, listing the pending step and
  where each thread stands.

After a failure the run is aborted: parked threads, and traced threads at
their next line, raise :class:`ScheduleAborted` (a ``BaseException``) to unwind.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from frontrun._lock_probe import LockWaitProbe
from frontrun._native import (
    DuplicateMarkerError,
    MarkerGate,
    MarkerNotFoundError,
    ScheduleAborted,
    ScheduleDeadlockError,
    ScheduleError,
    ThreadFailedError,
    TraceTimeoutError,
)
from frontrun.async_trace_markers import AsyncTraceExecutor
from frontrun.common import Schedule, Step

__all__ = [
    "AsyncTraceExecutor",
    "DuplicateMarkerError",
    "MarkerNotFoundError",
    "ScheduleAborted",
    "ScheduleDeadlockError",
    "ScheduleError",
    "ThreadFailedError",
    "TraceExecutor",
    "TraceTimeoutError",
]

DEFAULT_WAIT_TIMEOUT = 30.0
"""Seconds :meth:`TraceExecutor.wait` waits by default."""

DEFAULT_PARK_TIMEOUT = 120.0
"""Seconds a paused thread waits for its turn before giving up."""

_JOIN_GRACE = 1.0
"""Seconds ``wait`` spends joining threads after a failure."""


class TraceExecutor:
    """Runs named threads, pausing each at the markers its steps name.

    ``park_timeout`` bounds how long a paused thread waits for its turn, for
    runs whose :meth:`wait` is never called.
    """

    def __init__(
        self,
        schedule: Schedule | Sequence[Step],
        *,
        park_timeout: float = DEFAULT_PARK_TIMEOUT,
    ) -> None:
        steps = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
        self.schedule: Schedule = steps
        # The probe asks the server about row-lock waits; the gate starts it
        # at the run's first database call.
        self._probe = LockWaitProbe()
        self._gate = MarkerGate(
            [(s.thread, s.marker) for s in steps], park_timeout, None, self._probe.start
        )
        self._probe.gate = self._gate
        self._threads: list[threading.Thread] = []

    @overload
    def run(self, name: str, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None: ...
    @overload
    def run(self, threads: Mapping[str, Callable[[], object]], /) -> None: ...
    def run(
        self,
        name: str | Mapping[str, Callable[[], object]],
        fn: Callable[..., object] | None = None,
        /,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Start thread ``name`` running ``fn(*args, **kwargs)``, or start one
        thread per entry of a ``{name: fn}`` mapping."""
        if isinstance(name, Mapping):
            if fn is not None or args or kwargs:
                raise TypeError("run(mapping) takes no other arguments")
            for thread_name, thread_fn in name.items():
                self._start(thread_name, thread_fn, (), {})
            return
        if fn is None:
            raise TypeError("run(name, fn, *args, **kwargs) needs a callable")
        self._start(name, fn, args, kwargs)

    def _start(
        self, name: str, fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(f"run() needs a thread name (str) and a callable, got {name!r}, {fn!r}")
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"{fn!r} is a coroutine function: run it with AsyncTraceExecutor, "
                "or wrap it as lambda: asyncio.run(fn())"
            )
        idx = self._gate.register(name, fn)
        thread = threading.Thread(
            target=self._gate.thread_body,
            args=(idx, fn, args, kwargs or None),
            name=name,
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)

    def wait(self, timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        """Join every thread; raise the run's first failure, or
        :class:`TraceTimeoutError` after ``timeout`` seconds."""
        if timeout is None:
            raise TypeError("wait(timeout=None) is not allowed: give a number of seconds")
        try:
            self._gate.wait(float(timeout))
        except TraceTimeoutError as exc:
            if self._probe.error is not None:
                raise TraceTimeoutError(
                    f"{exc}\nThe row-lock probe failed: {self._probe.error!r}"
                ) from None
            raise
        finally:
            self._probe.stop(_JOIN_GRACE)
            deadline = time.monotonic() + _JOIN_GRACE
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def threads(self) -> list[threading.Thread]:
        """The threads started so far."""
        return list(self._threads)
