"""Which objects count as shared, and how they are named."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from frontrun import _native

pytestmark = pytest.mark.skipif(not _native._tracer_supported(), reason="tracer unsupported")

MODULE = __name__
counter_global = 0


class Item:
    shared_count = 0

    def __init__(self) -> None:
        self.value = 0


def on(fn: Callable[[], object], owner: str, *roots: object) -> list[tuple[str, str]]:
    return [(k, key) for k, o, key, _ in _native._trace_record(fn, list(roots)) if o == owner]


def test_objects_beyond_the_walk_depth_are_shared_when_loaded() -> None:
    nested: list[Any] = [Item()]
    for _ in range(12):
        nested = [nested]

    def body() -> None:
        node = nested
        while isinstance(node, list):
            node = node[0]
        node.value += 1

    assert on(body, "Item", nested) == [("read", "value"), ("write", "value")]


def test_items_inserted_by_untraced_code_are_shared_when_loaded() -> None:
    d: dict[str, Item] = {}

    def body(make: type = Item) -> None:
        d.update({"x": make()})  # C code: the tracer sees only the write of d
        d["x"].value = 1

    assert on(body, "dict", d) == [("write", "*"), ("read", "'x'")]
    assert on(body, "Item", d) == [("write", "value")]


def test_module_attributes_are_the_module_globals() -> None:
    def body(mod: ModuleType = sys.modules[__name__]) -> None:
        global counter_global
        counter_global = 1
        mod.counter_global = 2

    events = _native._trace_events(body, [])
    writes = [(obj, key) for kind, obj, key in events if kind == "write"]
    assert len(writes) == 2 and writes[0] == writes[1] and writes[0][1] == "counter_global"


def test_class_attributes_are_shared_through_the_class() -> None:
    def body() -> None:
        Item.shared_count += 1

    assert on(body, "Item") == [("read", "shared_count"), ("write", "shared_count")]


def test_own_cells_are_private_until_an_inner_function_uses_them() -> None:
    def body() -> int:
        x = 0

        def inner() -> int:
            return x

        return inner()

    assert on(body, "closure") == [("read", "x")]


def test_an_object_reached_by_two_paths_has_one_id() -> None:
    item = Item()
    state = {"a": item, "b": [item]}

    def body() -> None:
        state["a"].value = 1
        state["b"][0].value = 2

    events = _native._trace_events(body, [state])
    owners = {obj for kind, obj, key in events if key == "value"}
    assert len(owners) == 1


def test_ids_do_not_depend_on_which_thread_met_an_object_first() -> None:
    def setup() -> dict[str, Any]:
        return {"x": Item(), "y": Item()}

    def ids(order: tuple[str, str]) -> dict[str, int]:
        state = setup()
        seen: dict[str, int] = {}

        def body() -> None:
            for k in order:
                state[k].value = 1

        events = _native._trace_events(body, [state])
        writes = [obj for kind, obj, key in events if kind == "write"]
        for k, obj in zip(order, writes, strict=True):
            seen[k] = obj
        return seen

    assert ids(("x", "y")) == ids(("y", "x"))


def test_items_met_by_iteration_are_shared() -> None:
    lst: list[Item] = []

    def body(make: type = Item) -> None:
        lst.extend(map(lambda _: make(), range(2)))  # items never seen by the tracer
        for it in lst:
            it.value += 1

    assert on(body, "Item", lst) == [("read", "value"), ("write", "value")] * 2


def test_results_of_container_methods_are_shared() -> None:
    d: dict[str, Item] = {}

    def body(make: type = Item) -> None:
        d.update(zip(["x"], map(lambda _: make(), [0]), strict=True))  # the Item is never seen
        d.get("x").value = 1  # type: ignore[union-attr]

    assert on(body, "Item", d) == [("write", "value")]


def test_arguments_of_mutators_are_published() -> None:
    lst: list[Item] = []

    def body(make: type = Item) -> None:
        it = make()
        lst.append(it)
        it.value = 1  # shared from the append on

    assert on(body, "Item", lst) == [("write", "value")]


def test_method_result_ids_are_stable_across_executions() -> None:
    def run() -> list[tuple[str, int, str]]:
        d = {"x": Item(), "y": Item()}

        def body() -> None:
            d.get("y").value = 1  # type: ignore[union-attr]
            d.get("x").value = 2  # type: ignore[union-attr]

        return _native._trace_events(body, [d])

    first = run()
    assert first == run()
    owners = [obj for kind, obj, key in first if key == "value"]
    assert len(set(owners)) == 2


def test_roots_get_root_ids_in_a_fresh_interpreter() -> None:
    # The type table must be loaded by `add_root` itself, before any install.
    code = (
        "from frontrun import _native\n"
        "class C:\n"
        "    def __init__(self): self.v = 0\n"
        "a, b = C(), C()\n"
        "def body(a=a, b=b):\n"
        "    a.v = 1\n"
        "    b.v = 2\n"
        "ev = _native._trace_events(body, [a, b])\n"
        "print(len({obj for _, obj, _ in ev}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "2"


def test_tuple_keys_are_exact_and_other_keys_still_publish() -> None:
    d: dict[object, Item] = {}
    marker = object()

    def body(make: type = Item) -> None:
        d[(1, "a")] = make()
        d[(1, "a")].value = 1
        d[marker] = make()
        d[marker].value = 2

    events = on(body, "dict", d)
    assert events[:2] == [("write", "(1, 'a')"), ("read", "(1, 'a')")]
    assert events[2:] == [("write", "*"), ("read", "*")]
    assert on(body, "Item", d) == [("write", "value"), ("write", "value")]


def test_true_and_one_are_the_same_dict_key() -> None:
    d = {1: "x"}

    def body() -> None:
        d[True] = "y"
        d[1] = "z"

    keys = [key for kind, _, key in _native._trace_events(body, [d]) if kind == "write"]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_walking_roots_runs_no_user_attribute_hooks() -> None:
    calls: list[str] = []

    class Proxy:
        __slots__ = ("__dict__", "inner")

        def __init__(self) -> None:
            object.__setattr__(self, "inner", Item())
            object.__setattr__(self, "other", Item())

        def __getattribute__(self, name: str) -> Any:
            calls.append(name)
            return object.__getattribute__(self, name)

    p = Proxy()
    calls.clear()
    events = _native._trace_events(lambda: None, [p])
    assert events == [] and calls == []

    inner, other = object.__getattribute__(p, "inner"), object.__getattribute__(p, "other")

    def body(inner: Item = inner, other: Item = other) -> None:
        inner.value = 1  # locals here: shared only because the walk reached them
        other.value = 2

    assert on(body, "Item", p) == [("write", "value"), ("write", "value")]
    assert calls == []
