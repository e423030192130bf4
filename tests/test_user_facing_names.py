"""Explanations name what the user wrote, never frontrun's internals.

Explored threads get frontrun's cooperative stand-ins for `threading`
primitives (`CoopLock`, `CoopCondition`); a trace that says `CoopLock[*]`
would send the user looking for a class they never wrote.
"""

from __future__ import annotations

import threading

import frontrun


class Shared:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rlock = threading.RLock()
        self.cond = threading.Condition()
        self.event = threading.Event()
        self.value = 0


def touch_primitives(s: Shared) -> None:
    # Reading the primitives' state puts them in the trace.
    _ = (repr(s.lock), repr(s.rlock), repr(s.cond), s.event.is_set())
    with s.lock:
        v = s.value
    with s.rlock:
        s.value = v + 1


def test_trace_shows_user_names_not_frontrun_internals() -> None:
    result = frontrun.explore(
        setup=Shared,
        threads=[touch_primitives, touch_primitives],
        invariant=lambda s: s.value == 2,
        max_executions=50,
    )
    assert result.property_holds is False
    text = result.explanation
    assert "lost update on Shared.value" in text
    assert "Coop" not in text, text
    assert "frontrun/" not in text and "_native" not in text, text


def test_blocked_forever_names_the_users_primitive() -> None:
    def waiter(s: Shared) -> None:
        _ = repr(s.cond)
        s.event.wait()

    result = frontrun.explore(
        setup=Shared, threads=[waiter], invariant=lambda s: True, max_executions=5
    )
    assert result.property_holds is False
    text = result.explanation
    assert "blocked forever" in text
    assert "Coop" not in text, text
    assert "frontrun/" not in text, text
