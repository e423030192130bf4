"""Executions that do not repeat their recorded prefix are never a proof.

DPOR replays the prefix of an earlier execution before taking a new branch.
State that outlives an execution (here a class attribute that changes on every
run) makes the replay run a different program: the result must say so, name
the object and the line that differed, and not claim `exhausted`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import frontrun


class _Registry:
    """Lazily filled on first use, like a library's type registry."""

    ready = False
    table: ClassVar[dict[int, int]] = {}


def _ensure_ready(reg: type[_Registry]) -> None:
    if not reg.ready:
        for i in range(5):
            reg.table[i] = i * i
        reg.ready = True


def _inc(s: SimpleNamespace) -> None:
    _ensure_ready(s.reg)
    t = s.value
    s.value = t + 1


def test_lazy_initialisation_does_not_hide_the_lost_update() -> None:
    # The first explore() of this class in the process (the settling run
    # initialises it before anything is recorded).
    r = frontrun.explore(
        lambda: SimpleNamespace(value=0, reg=_Registry),
        [_inc, _inc],
        invariant=lambda s: s.value == 2,
    )
    assert r.property_holds is False, r.explanation
    assert not r.exhausted


class _Calls:
    """Changes on every execution: no settling run can settle it."""

    n = 0


def _touch(s: SimpleNamespace) -> None:
    _Calls.n += 1
    if _Calls.n % 3 == 0:
        s.log.append(1)  # only on some executions: the divergent line
    s.other.append(2)


def test_a_program_that_changes_between_executions_is_reported() -> None:
    r = frontrun.explore(
        lambda: SimpleNamespace(log=[], other=[], calls=_Calls),
        [_touch, _touch],
        invariant=lambda s: True,
    )
    assert r.diverged
    assert not r.exhausted
    assert r.property_holds is None, r.explanation
    assert "Divergence: execution" in r.explanation
    # Names the objects and the source lines that differed.
    assert "SimpleNamespace.log" in r.explanation or "SimpleNamespace.other" in r.explanation
    assert "test_divergence.py:" in r.explanation
    assert "_touch" in r.explanation


def test_a_deterministic_program_does_not_diverge() -> None:
    def add(s: SimpleNamespace) -> None:
        s.items.append(len(s.items))

    r = frontrun.explore(
        lambda: SimpleNamespace(items=[]), [add, add], invariant=lambda s: len(s.items) == 2
    )
    assert r.property_holds is True and r.exhausted and not r.diverged, r.explanation
