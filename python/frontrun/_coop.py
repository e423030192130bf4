"""Cooperative threading primitives, patched in for the length of an exploration.

While patched, `threading.Lock`, `RLock` and `Condition` created by `setup()` or
by explored threads are frontrun's (`_native.CoopLock`/`CoopCondition`); the
standard `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier` and the `queue`
classes are built from those two, so they cooperate too. `Thread.start/join/
is_alive` and `time.sleep` become scheduling points on explored threads.
`get_ident`/`get_native_id` give each explored thread its own values (see
`driver/identity.rs`), which `current_thread()` uses to find its `Thread`.
Explored threads (and `setup`/invariant/`teardown` on the exploring thread)
read the execution's virtual clock through `time.monotonic()`, `time.time()`,
`time.perf_counter()` (and their `_ns` forms, and the copies `threading` and
`queue` imported, and module-level copies such as `from time import
monotonic` in the program's own modules, see `_rebind`): timed waits and sleeps move it on instead of waiting, so a
loop waiting for a deadline ends (see `driver/gate.rs`). Any
other thread keeps getting the real primitives, and everything is restored on
exit, also on error.
"""

from __future__ import annotations

import _thread
import contextlib
import queue
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from frontrun import _native, _rebind

_REAL_LOCK = threading.Lock
_REAL_RLOCK = threading.RLock
_REAL_CONDITION = threading.Condition
_REAL_SLEEP = time.sleep
_REAL_START = threading.Thread.start
_REAL_JOIN = threading.Thread.join
_REAL_IS_ALIVE = threading.Thread.is_alive

_patch_lock = _REAL_LOCK()
_depth = 0
_pool: Any = None


def _registered(obj: Any) -> Any:
    _native._coop_register(obj)
    return obj


def _lock() -> Any:
    if _native._coop_active():
        return _registered(_native.CoopLock(False))
    return _REAL_LOCK()


def _rlock(*args: Any, **kwargs: Any) -> Any:
    if _native._coop_active():
        return _registered(_native.CoopLock(True))
    return _REAL_RLOCK(*args, **kwargs)


def _condition(lock: Any = None) -> Any:
    if _native._coop_active() and (lock is None or isinstance(lock, _native.CoopLock)):
        return _registered(_native.CoopCondition(lock))
    return _REAL_CONDITION(lock)


def _sleep(secs: float) -> None:
    if not _native._coop_sleep(secs):
        _REAL_SLEEP(secs)


_REAL_MONOTONIC = time.monotonic
_REAL_MONOTONIC_NS = time.monotonic_ns
_REAL_TIME = time.time
_REAL_TIME_NS = time.time_ns
_REAL_PERF_COUNTER = time.perf_counter
_REAL_PERF_COUNTER_NS = time.perf_counter_ns
_vclock = _native._coop_vclock
# Where virtual time 0 of every execution lies on each clock: the real
# readings when the exploration started, so values look like real ones and
# are the same in every execution.
_base = {"monotonic": 0, "time": 0, "perf_counter": 0}


def _monotonic() -> float:
    v = _vclock()
    return _REAL_MONOTONIC() if v is None else _base["monotonic"] / 1e9 + v


def _monotonic_ns() -> int:
    v = _vclock()
    return _REAL_MONOTONIC_NS() if v is None else _base["monotonic"] + int(v * 1e9)


def _time() -> float:
    v = _vclock()
    return _REAL_TIME() if v is None else _base["time"] / 1e9 + v


def _time_ns() -> int:
    v = _vclock()
    return _REAL_TIME_NS() if v is None else _base["time"] + int(v * 1e9)


def _perf_counter() -> float:
    v = _vclock()
    return _REAL_PERF_COUNTER() if v is None else _base["perf_counter"] / 1e9 + v


def _perf_counter_ns() -> int:
    v = _vclock()
    return _REAL_PERF_COUNTER_NS() if v is None else _base["perf_counter"] + int(v * 1e9)


def _start(self: threading.Thread) -> None:
    if not _native._coop_scheduled():
        _REAL_START(self)
        return
    if getattr(self, "_frontrun_tid", None) is not None:
        raise RuntimeError("threads can only be started once")
    tid = _native._coop_spawn(_pool, self.run, self.name, self)
    self._frontrun_tid = tid  # type: ignore[attr-defined]
    self._ident, self._native_id = _native._coop_thread_ids(tid)  # type: ignore[attr-defined]


_STARTED = threading.Event()
_STARTED.set()


class ExploredThread(threading.Thread):
    """What `threading.current_thread()` returns on an explored thread that
    the program did not start itself. Built by `driver/identity.rs` without
    `Thread.__init__` (which would create cooperative primitives): the
    per-thread fields `_name`, `_ident`, `_native_id` and `_frontrun_tid`
    are set there, the rest are these class-level defaults."""

    _daemonic = True
    _started = _STARTED
    _is_stopped = False
    _initialized = True
    _target = None
    _args = ()
    _kwargs: dict[str, Any] = {}  # noqa: RUF012 (read-only default)
    _tstate_lock = None
    _stderr = None
    _invoke_excepthook = None

    def __repr__(self) -> str:
        return f"<ExploredThread({self._name}, started daemon {self._ident})>"  # type: ignore[attr-defined]


def _join(self: threading.Thread, timeout: float | None = None) -> None:
    tid = getattr(self, "_frontrun_tid", None)
    if tid is None:
        _REAL_JOIN(self, timeout)
    else:
        _native._coop_join(tid, timeout)


def _is_alive(self: threading.Thread) -> bool:
    tid = getattr(self, "_frontrun_tid", None)
    if tid is None:
        return _REAL_IS_ALIVE(self)
    return bool(_native._coop_alive(tid))


_PATCHES: list[tuple[Any, str, Callable[..., Any]]] = [
    (threading, "Lock", _lock),
    (threading, "RLock", _rlock),
    (threading, "Condition", _condition),
    (time, "sleep", _sleep),
    (time, "monotonic", _monotonic),
    (time, "monotonic_ns", _monotonic_ns),
    (time, "time", _time),
    (time, "time_ns", _time_ns),
    (time, "perf_counter", _perf_counter),
    (time, "perf_counter_ns", _perf_counter_ns),
    # `from time import monotonic as _time` / `as time`: their deadlines.
    (threading, "_time", _monotonic),
    (queue, "time", _monotonic),
    (threading.Thread, "start", _start),
    (threading.Thread, "join", _join),
    (threading.Thread, "is_alive", _is_alive),
    (threading, "get_ident", _native._coop_get_ident),
    (_thread, "get_ident", _native._coop_get_ident),
    (threading, "get_native_id", _native._coop_get_native_id),
    (_thread, "get_native_id", _native._coop_get_native_id),
]


@contextlib.contextmanager
def cooperative(pool: Any) -> Iterator[None]:
    """Patch the primitives in (nestable) and restore them afterwards."""
    global _depth, _pool
    with _patch_lock:
        if _depth == 0:
            _base.update(
                monotonic=_REAL_MONOTONIC_NS(),
                time=_REAL_TIME_NS(),
                perf_counter=_REAL_PERF_COUNTER_NS(),
            )
            saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in _PATCHES]
            for owner, name, new in _PATCHES:
                setattr(owner, name, new)
            _saved[:] = saved
            _rebound[:] = _rebind.rebind(_copies(saved))
        _depth += 1
        outer_pool, _pool = _pool, pool
    try:
        yield
    finally:
        with _patch_lock:
            _pool = outer_pool
            _depth -= 1
            if _depth == 0:
                _rebind.restore(_rebound)
                _rebound.clear()
                for owner, name, old in _saved:
                    setattr(owner, name, old)
                _saved.clear()


_saved: list[tuple[Any, str, Any]] = []
_rebound: list[tuple[dict[str, Any], str, Any, Any]] = []


def _copies(saved: list[tuple[Any, str, Any]]) -> dict[int, tuple[Any, Callable[..., Any]]]:
    """The patched module-level builtins (clocks, `sleep`, thread ids), by
    identity, with their replacements: what `_rebind` looks for elsewhere."""
    new = {(id(owner), name): repl for owner, name, repl in _PATCHES}
    return {
        id(old): (old, new[(id(owner), name)])
        for owner, name, old in saved
        if isinstance(owner, types.ModuleType) and isinstance(old, types.BuiltinFunctionType)
    }


def is_patched() -> bool:
    """Whether an exploration currently has the primitives patched."""
    return _depth > 0
