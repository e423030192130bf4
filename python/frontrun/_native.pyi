"""Type stub for the Rust extension module `frontrun._native`.

Each subsystem keeps its own section below; edit only yours.
"""

__version__: str

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
