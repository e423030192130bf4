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

# --- driver (crates/frontrun-py/src/driver) --------------------------------
class ExplorationAborted(BaseException):
    """Raised in explored threads when frontrun stops an execution."""

class WorkerPool:
    def __init__(self, spawner: Callable[[WorkerPool], None]) -> None: ...
    def serve(self) -> None: ...
    def shutdown(self) -> None: ...
    def stats(self) -> tuple[int, int]: ...

class CoopLock:
    def __init__(self, reentrant: bool = False) -> None: ...
    def acquire(self, blocking: bool = True, timeout: float = -1.0) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def _is_owned(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *args: object) -> None: ...

class CoopCondition:
    def __init__(self, lock: CoopLock | None = None) -> None: ...
    def acquire(self, blocking: bool = True, timeout: float = -1.0) -> bool: ...
    def release(self) -> None: ...
    def _is_owned(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *args: object) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def wait_for(self, predicate: Callable[[], object], timeout: float | None = None) -> object: ...
    def notify(self, n: int = 1) -> None: ...
    def notify_all(self) -> None: ...
    def notifyAll(self) -> None: ...

def _explore(
    pool: WorkerPool,
    setup: Callable[[], object],
    threads: list[Callable[..., object]],
    invariant: Callable[..., object],
    teardown: Callable[..., object] | None,
    strategy: str,
    *,
    max_executions: int | None,
    preemption_bound: int | None,
    total_timeout: float | None,
    timeout_per_run: float,
    stop_on_first: bool,
    max_attempts: int,
    seed: int | None,
    reproduce_on_failure: int,
    replay: str | None,
    max_ops: int | None = None,
) -> dict[str, object]: ...
def _coop_active() -> bool: ...
def _coop_scheduled() -> bool: ...
def _coop_spawn(pool: WorkerPool, target: Callable[[], object], name: str) -> int: ...
def _coop_join(tid: int, timeout: float | None = None) -> bool: ...
def _coop_alive(tid: int) -> bool: ...
def _coop_sleep() -> bool: ...
def _driver_emit(obj: int, key: int, kind: str) -> None:
    """Test hook: perform a read/write of (obj, key) as the tracer would."""
