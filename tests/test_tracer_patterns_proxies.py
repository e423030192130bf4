"""Accesses made by C code the interpreter runs for `match` statements and
`weakref.proxy`, and what the tracer leaves visible to the program.

Each example had 1 execution and `exhausted=True` before these accesses
were recorded, although the other thread's write changes the result.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import frontrun
from frontrun import _native

pytestmark = pytest.mark.skipif(not _native._tracer_supported(), reason="tracer unsupported")


@pytest.fixture(autouse=True, scope="module")
def _no_idle_workers_after_module() -> Iterator[None]:
    yield
    frontrun.shutdown()


class Point:
    __match_args__ = ("x", "y")

    def __init__(self) -> None:
        self.x = 0
        self.y = 0


class Box:
    def __init__(self) -> None:
        self.p = Point()
        self.d: dict[str, int] = {"a": 1}
        self.l = [1, 2]
        self.out: Any = None


def outcomes(reader: Callable[[Box], None], writer: Callable[[Box], None]) -> tuple[set[str], Any]:
    seen: set[str] = set()

    def record(b: Box) -> bool:
        seen.add(repr(b.out))
        return True

    r = frontrun.explore(Box, [reader, writer], record, stop_on_first=False, reproduce_on_failure=0)
    return seen, r


def set_x(b: Box) -> None:
    b.p.x = 1


def test_class_pattern_with_keyword_reads_the_attribute() -> None:
    def reader(b: Box) -> None:
        match b.p:
            case Point(x=0):
                b.out = "origin x"
            case _:
                b.out = "moved"

    seen, r = outcomes(reader, set_x)
    assert r.exhausted and seen == {"'origin x'", "'moved'"}, (seen, r.explanation)


def test_class_pattern_with_positional_reads_match_args() -> None:
    def reader(b: Box) -> None:
        match b.p:
            case Point(x, _):
                b.out = x

    seen, r = outcomes(reader, set_x)
    assert r.exhausted and seen == {"0", "1"}, (seen, r.explanation)


def test_mapping_pattern_reads_the_keys() -> None:
    def reader(b: Box) -> None:
        match b.d:
            case {"b": v}:
                b.out = v
            case _:
                b.out = "no b"

    def insert(b: Box) -> None:
        b.d["b"] = 2

    seen, r = outcomes(reader, insert)
    assert r.exhausted and seen == {"2", "'no b'"}, (seen, r.explanation)


def test_sequence_pattern_reads_the_length() -> None:
    def reader(b: Box) -> None:
        match b.l:
            case [_, _]:
                b.out = "pair"
            case _:
                b.out = "other"

    def append(b: Box) -> None:
        b.l.append(3)

    seen, r = outcomes(reader, append)
    assert r.exhausted and seen == {"'pair'", "'other'"}, (seen, r.explanation)


def test_writes_through_a_weakref_proxy_are_accesses() -> None:
    def incr(b: Box) -> None:
        p = weakref.proxy(b.p)
        v = p.x
        p.x = v + 1

    seen: set[int] = set()

    def record(b: Box) -> bool:
        seen.add(b.p.x)
        return True

    r = frontrun.explore(Box, [incr, incr], record, stop_on_first=False, reproduce_on_failure=0)
    assert r.exhausted and seen == {1, 2}, (seen, r.explanation)


def test_weakref_target_is_the_shared_object() -> None:
    def reader(b: Box) -> None:
        b.out = weakref.ref(b.p)().x  # type: ignore[union-attr]

    seen, r = outcomes(reader, set_x)
    assert r.exhausted and seen == {"0", "1"}, (seen, r.explanation)


def test_frames_of_explored_code_keep_their_f_trace() -> None:
    # 3.13 needs `f_trace` set for a moment to instrument a frame; the
    # program must not see it afterwards (nor on any other version).
    seen: list[Any] = []

    def look(b: Box) -> None:
        f = sys._getframe()
        seen.append(f.f_trace)
        b.l.append(len(seen))  # a shared access, so the frame is traced

    r = frontrun.explore(Box, [look], lambda b: True, reproduce_on_failure=0)
    assert r.exhausted
    assert seen and all(t is None for t in seen), seen
