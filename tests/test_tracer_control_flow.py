"""Stack reads stay correct through control flow that changes the stack
depth: with-blocks, generators, match, nested handlers, long expressions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from frontrun import _native

pytestmark = pytest.mark.skipif(not _native._tracer_supported(), reason="tracer unsupported")


class Box:
    def __init__(self) -> None:
        self.value = 0
        self.items: list[int] = [1, 2, 3]


def on(fn: Callable[[], object], owner: str, *roots: object) -> list[tuple[str, str]]:
    return [(k, key) for k, o, key, _ in _native._trace_record(fn, list(roots)) if o == owner]


def test_with_block_and_its_exit_path() -> None:
    b = Box()

    def body(suppress: Callable[..., contextlib.suppress] = contextlib.suppress) -> None:
        with suppress(KeyError):
            b.value = b.value + 1
            raise KeyError("x")
        b.items[0] = b.value

    # `b.items[0] = b.value` evaluates the value first.
    assert on(body, "Box", b) == [
        ("read", "value"),
        ("write", "value"),
        ("read", "value"),
        ("read", "items"),
    ]
    assert on(body, "list", b) == [("write", "0")]


def test_generator_resumes_are_traced() -> None:
    b = Box()

    def gen() -> Iterator[int]:
        for i in range(2):
            b.value += i
            yield b.value

    def body() -> None:
        for v in gen():
            b.items.append(v)

    assert (
        on(body, "Box", b)
        == [
            ("read", "value"),
            ("write", "value"),
            ("read", "value"),
            ("read", "items"),
        ]
        * 2
    )
    assert b.items[-2:] == [0, 1]


def test_match_statement() -> None:
    b = Box()
    d = {"kind": "add", "n": 2}

    def body() -> None:
        match d:
            case {"kind": "add", "n": n}:
                b.value = b.value + n
            case _:
                b.value = -1

    assert on(body, "Box", b, d) == [("read", "value"), ("write", "value")]
    assert b.value == 2


def test_nested_handlers_and_reraise() -> None:
    b = Box()

    def body() -> None:
        try:
            try:
                b.items[10] = 1
            except IndexError:
                b.value = len(b.items)
                raise
        except IndexError:
            b.items.append(b.value)

    assert on(body, "Box", b) == [
        ("read", "items"),
        ("read", "items"),
        ("write", "value"),
        ("read", "items"),
        ("read", "value"),
    ]
    # `len(b.items)` reads the list as a whole.
    assert on(body, "list", b) == [("write", "10"), ("read", "*"), ("write", "*")]


def test_deep_expression_stack() -> None:
    b = Box()

    def body() -> int:
        return (1 + (2 * (3 + (4 * (5 + b.items[b.value]))))) + len([b.value, b.value, (b.value,)])

    assert on(body, "Box", b) == [("read", "items"), ("read", "value")] + [("read", "value")] * 3
    assert on(body, "list", b) == [("read", "0")]


def test_long_jumps_need_extended_args() -> None:
    # A loop body and an if-block longer than 256 code units: their jumps
    # carry EXTENDED_ARG prefixes, which the decoder and depth table follow.
    filler = "\n".join(f"            x{i} = {i}" for i in range(150))
    src = (
        "def body(b):\n"
        "    for _ in range(2):\n"
        "        if b.value >= 0:\n"
        f"{filler}\n"
        "        b.value = b.value + 1\n"
        "    b.items.append(b.value)\n"
    )
    ns: dict[str, Any] = {}
    exec(compile(src, "<long-jumps>", "exec"), ns)
    b = Box()
    events = on(lambda: ns["body"](b), "Box", b)
    assert events == [("read", "value"), ("read", "value"), ("write", "value")] * 2 + [
        ("read", "items"),
        ("read", "value"),
    ]


def test_coroutines() -> None:
    b = Box()

    async def work() -> None:
        b.value = b.value + 1
        await asyncio.sleep(0)
        b.items.append(b.value)

    def body(run: Callable[..., Any] = asyncio.run) -> None:
        run(work())

    assert on(body, "Box", b) == [
        ("read", "value"),
        ("write", "value"),
        ("read", "items"),
        ("read", "value"),
    ]
    assert on(body, "list", b) == [("write", "*")]


def test_iteration_inside_a_generator_survives_yields() -> None:
    lst: list[Box] = []

    def gen() -> Iterator[None]:
        for it in lst:
            it.value += 1
            yield

    def body(make: type = Box) -> None:
        lst.extend(map(lambda _: make(), range(3)))  # items never seen by the tracer
        for _ in gen():
            pass

    assert on(body, "Box", lst) == [("read", "value"), ("write", "value")] * 3
