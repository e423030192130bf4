"""Names the real lock an explored thread is stuck on.

A lock created before ``explore()`` (at import time: cachetools'
``@cached(lock=threading.Lock())``, a library's module-level lock) is a real
lock, not a cooperative one. When a thread parked at a scheduling point holds
it, the thread given the turn blocks in C on it and nothing can run: the
execution would sit until ``timeout_per_run``. The exploration asks this
module, a few times a second, whether the thread holding the turn is blocked
on such a lock; if so it stops the execution at once with a message naming
the lock, where the holder took it, and what to do.
"""

from __future__ import annotations

import _thread
import os
import sys
from types import FrameType
from typing import Any

from frontrun._lock_calls import with_targets

__all__ = ["real_lock_wait"]

_REAL_LOCKS = (_thread.LockType, type(_thread.RLock()))


def _is_held_real_lock(obj: object) -> bool:
    if not isinstance(obj, _REAL_LOCKS):
        return False
    locked = getattr(obj, "locked", None)
    if locked is not None:
        return bool(locked())
    # RLock before 3.13 has no locked(): its repr says.
    return "<locked" in repr(obj)


def _candidates(frame: FrameType) -> list[tuple[str, Any]]:
    """Objects ``frame`` can name: the target of a ``with`` on its current
    line first, then its locals and cells, then the globals it loads."""
    out: list[tuple[str, Any]] = []
    target = with_targets(frame.f_code).get(frame.f_lineno)
    if target is not None:
        scope, name, attrs = target
        space = frame.f_locals if scope == "fast" else frame.f_globals
        obj = space.get(name, frame.f_builtins.get(name))
        path = name
        for a in attrs:
            obj = getattr(obj, a, None)
            path += f".{a}"
        out.append((path, obj))
    out.extend(frame.f_locals.items())
    out.extend((n, frame.f_globals[n]) for n in frame.f_code.co_names if n in frame.f_globals)
    return out


def _blocked_on(frame: FrameType) -> tuple[str, Any] | None:
    for name, obj in _candidates(frame):
        if _is_held_real_lock(obj):
            return name, obj
    return None


def _where(frame: FrameType) -> str:
    return (
        f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
    )


def _holder(lock: object, others: dict[str, int], frames: dict[int, FrameType]) -> str | None:
    """The other thread whose stack refers to ``lock`` (it took it), and where."""
    for name, ident in others.items():
        f: FrameType | None = frames.get(ident)
        while f is not None:
            if any(obj is lock for _, obj in _candidates(f)):
                return f"thread '{name}' holds it, acquired at {_where(f)}"
            f = f.f_back
    return None


def real_lock_wait(ident: int, others: dict[str, int]) -> str | None:
    """If the thread ``ident`` is blocked on a real (non-cooperative) lock
    that is held, describe it; ``others`` maps the other explored threads'
    names to their idents."""
    frames = sys._current_frames()
    frame = frames.get(ident)
    if frame is None:
        return None
    found = _blocked_on(frame)
    if found is None:
        return None
    name, lock = found
    holder = _holder(lock, others, frames)
    if holder is None:
        # Held by this thread itself (a Condition's waiter) or by a thread
        # outside the exploration: not a stall among explored threads.
        return None
    return (
        f"blocked on the real lock `{name}` ({type(lock).__name__} at {hex(id(lock))}) at "
        f"{_where(frame)}; {holder}. It was created outside explore() (at import time or "
        "before explore()), so frontrun cannot schedule it: a thread paused while holding "
        "it blocks every other. Create the lock (or the object owning it) in setup(), or "
        "keep scheduling points out of its critical section"
    )
