"""Type stub for the Rust extension module `frontrun._native`.

Each subsystem keeps its own section below; edit only yours.
"""

__version__: str

# --- tracer (crates/frontrun-py/src/tracer) --------------------------------
from collections.abc import Callable

def _tracer_supported() -> bool:
    """Whether this interpreter can be traced (CPython 3.10-3.13, GIL build)."""

def _trace_fail_at(fn: Callable[[], object], roots: list[object], n: int) -> None:
    """Trace `fn()` with a sink that refuses the `n`-th access (RuntimeError)."""

def _trace_begin(roots: list[object]) -> None:
    """Start an execution with `roots` shared, for `_trace_thread`."""

def _trace_thread(fn: Callable[[], object]) -> list[tuple[str, int, str]]:
    """Trace `fn()` on the calling thread in the current execution."""

def _trace_end() -> None:
    """End the execution started by `_trace_begin`."""

def _trace_record(fn: Callable[[], object], roots: list[object]) -> list[tuple[str, str, str, int]]:
    """Register `roots` as shared, trace `fn()` on this thread, and return
    `(kind, owner type, key, line)` per access; key is a name, an item repr or `*`."""

def _trace_events(fn: Callable[[], object], roots: list[object]) -> list[tuple[str, int, str]]:
    """Like `_trace_record`, as `(kind, object id, key)`; ids are stable across runs."""

def _trace_describe(fn: Callable[[], object], roots: list[object]) -> list[tuple[str, str]]:
    """Like `_trace_record`, as `(describe_access text, function qualname)`."""

def _trace_count(fn: Callable[[], object], roots: list[object]) -> int:
    """Number of accesses `fn()` makes to shared state (for benchmarks)."""
# --- trace markers (crates/frontrun-py/src/py_trace_markers.rs) ---

from collections.abc import Callable
from typing import Any, final

class ScheduleError(RuntimeError): ...
class MarkerNotFoundError(ScheduleError): ...
class DuplicateMarkerError(ScheduleError): ...
class TraceTimeoutError(TimeoutError): ...

class ThreadFailedError(RuntimeError):
    thread: str

class ScheduleAborted(BaseException): ...

@final
class MarkerGate:
    """Turn-taking for one trace-marker run (used by TraceExecutor)."""

    def __new__(
        cls,
        steps: list[tuple[str, str]],
        park_timeout: float,
        listener: Callable[[int, str], None] | None = None,
    ) -> MarkerGate: ...
    def register(self, name: str, func: Callable[..., object]) -> int: ...
    def thread_body(
        self,
        idx: int,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None = None,
    ) -> None: ...
    def wait(self, timeout: float) -> None: ...

def scan_markers(path: str) -> list[tuple[str, int]]: ...
