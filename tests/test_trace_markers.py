"""TraceExecutor: schedules over `# frontrun:` markers force exact interleavings."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest

import frontrun
from frontrun import _native
from frontrun.common import Schedule, Step
from frontrun.trace_markers import MarkerNotFoundError, TraceExecutor

RUNS = 50


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    for t in leftover:
        t.join(timeout=5.0)
    assert not [t.name for t in leftover if t.is_alive()]


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance


SEED_SCHEDULE = Schedule(
    [
        Step("txn_a", "pg_select"),
        Step("txn_b", "pg_select"),
        Step("txn_a", "pg_update"),
        Step("txn_b", "pg_update"),
    ]
)


def run_seed_once() -> tuple[dict[str, int], int]:
    """The seed's code, verbatim except that the row is a Python object."""
    acct = Account(1000)
    reads: dict[str, int] = {}

    def txn_a() -> None:
        old = acct.balance  # frontrun: pg_select
        reads["a"] = old
        new = old + 100
        acct.balance = new  # frontrun: pg_update

    def txn_b() -> None:
        old = acct.balance  # frontrun: pg_select
        reads["b"] = old
        new = old + 200
        acct.balance = new  # frontrun: pg_update

    executor = TraceExecutor(SEED_SCHEDULE)
    executor.run("txn_a", txn_a)
    executor.run("txn_b", txn_b)
    executor.wait(timeout=10.0)
    return reads, acct.balance


def test_seed_lost_update_on_a_python_object_every_run() -> None:
    for _ in range(RUNS):
        reads, balance = run_seed_once()
        # Both reads happen before either write, and txn_b writes last.
        assert reads == {"a": 1000, "b": 1000}
        assert balance == 1200


def test_seed_api_from_the_package_root() -> None:
    assert frontrun.Schedule is Schedule
    assert frontrun.Step is Step
    assert frontrun.TraceExecutor is TraceExecutor


def log_steps(log: list[str], tag: str) -> None:
    log.append(f"{tag}1")  # frontrun: m1
    log.append(f"{tag}2")  # frontrun: m2
    log.append(f"{tag}3")  # frontrun: m3


def test_interleaving_follows_the_schedule_exactly() -> None:
    schedule = Schedule([Step("a", "m2"), Step("b", "m1"), Step("a", "m3"), Step("b", "m3")])
    for _ in range(RUNS):
        log: list[str] = []
        executor = TraceExecutor(schedule)
        executor.run("a", log_steps, log, "a")
        executor.run("b", log_steps, log, tag="b")
        executor.wait(timeout=10.0)
        # a runs alone past m1 to its step at m2, then on to m3 where it
        # pauses; each later step runs its thread alone to its next marker.
        assert log == ["a1", "a2", "b1", "a3", "b2", "b3"]


def test_thread_started_late_still_gets_its_turn_first() -> None:
    schedule = Schedule([Step("b", "m2"), Step("a", "m3")])
    log: list[str] = []
    executor = TraceExecutor(schedule)
    # `a` starts first but only up to its first marker; b's step comes first.
    executor.run("a", log_steps, log, "a")
    executor.run("b", log_steps, log, "b")
    executor.wait(timeout=10.0)
    assert log == ["b1", "b2", "a1", "a2", "a3", "b3"]


def own_line_markers(log: list[str], tag: str) -> None:
    # frontrun: first

    # an ordinary comment between the marker and its line
    log.append(f"{tag}-first")
    # frontrun: second
    log.append(
        f"{tag}-second",
    )


def test_own_line_markers_tag_the_next_code_line() -> None:
    schedule = Schedule([Step("x", "first"), Step("y", "second"), Step("x", "second")])
    for _ in range(10):
        log: list[str] = []
        executor = TraceExecutor(schedule)
        executor.run(
            {"x": partial(own_line_markers, log, "x"), "y": partial(own_line_markers, log, "y")}
        )
        executor.wait(timeout=10.0)
        # x takes "first" and pauses before its second marked line; y runs
        # alone past its first marker to "second" and on to its end.
        assert log == ["x-first", "y-first", "y-second", "x-second"]


def test_threads_outside_the_schedule_run_after_it_in_run_order() -> None:
    log: list[str] = []

    def free(tag: str) -> None:
        log.append(f"{tag}-before")  # frontrun: gov_mark
        log.append(f"{tag}-after")

    def governed() -> None:
        log.append("g-before")  # frontrun: gov_mark
        log.append("g-after")  # frontrun: g_end

    schedule = Schedule([Step("g", "gov_mark")])
    for _ in range(10):
        log.clear()
        executor = TraceExecutor(schedule)
        executor.run("free1", free, "f1")
        executor.run("g", governed)
        executor.run("free2", free, "f2")
        executor.wait(timeout=10.0)
        # Each thread pauses at its first marker; g takes the only step and
        # runs to its end; then the others, one at a time in run() order.
        assert log == ["g-before", "g-after", "f1-before", "f1-after", "f2-before", "f2-after"]


def test_empty_schedule_runs_everything_freely() -> None:
    results: list[int] = []
    executor = TraceExecutor(Schedule([]))
    executor.run({f"t{i}": (lambda i=i: results.append(i)) for i in range(4)})
    executor.wait(timeout=10.0)
    # No step: threads run one at a time, in run() order.
    assert results == [0, 1, 2, 3]


def loop_body(log: list[str], tag: str) -> None:
    for i in range(3):
        log.append(f"{tag}{i}")  # frontrun: iteration


def test_marker_in_a_loop_alternates_iterations() -> None:
    schedule = Schedule(
        [Step("a", "iteration"), Step("b", "iteration")]
        + [Step(t, "iteration") for _ in range(2) for t in ("a", "b")]
    )
    log: list[str] = []
    executor = TraceExecutor(schedule)
    executor.run("a", loop_body, log, "a")
    executor.run("b", loop_body, log, "b")
    executor.wait(timeout=10.0)
    assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_markers_in_called_functions_are_found() -> None:
    log: list[str] = []

    def outer(tag: str) -> None:
        log_steps(log, tag)

    executor = TraceExecutor(Schedule([Step("a", "m3"), Step("b", "m2")]))
    executor.run("a", outer, "a")
    executor.run("b", outer, "b")
    executor.wait(timeout=10.0)
    assert log == ["a1", "a2", "a3", "b1", "b2", "b3"]


def test_schedule_and_step_values() -> None:
    step = Step("t", "m")
    assert step == Step("t", "m") and hash(step) == hash(Step("t", "m"))
    thread, marker = step
    assert (thread, marker) == ("t", "m")
    with pytest.raises(AttributeError):
        step.thread = "u"  # type: ignore[misc]
    with pytest.raises(TypeError, match="non-empty str"):
        Step("", "m")
    sched = Schedule([step, Step("u", "n")])
    assert len(sched) == 2 and sched[1] == Step("u", "n")
    assert list(sched) == [step, Step("u", "n")]
    assert sched[:1] == Schedule([step])
    assert sched.threads == ["t", "u"]
    with pytest.raises(TypeError, match="must be a Step"):
        Schedule([("t", "m")])  # type: ignore[list-item]


def write_module(path: Path, body: str) -> ModuleType:
    path.write_text(body)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


MODULE_V1 = """
def work(log):
    log.append("start")
    log.append("end")  # frontrun: v1
"""

MODULE_V2 = """
def work(log):
    log.append("start")
    # a longer file: the marker moved and was renamed
    log.append("middle")
    log.append("end")  # frontrun: v2_renamed
"""


def test_marker_cache_follows_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "frontrun_cache_probe.py"
    try:
        mod = write_module(path, MODULE_V1)
        assert _native.scan_markers(str(path)) == [("v1", 4)]
        log: list[str] = []
        other: list[str] = []
        executor = TraceExecutor(Schedule([Step("w", "v1"), Step("o", "v1")]))
        executor.run("w", mod.work, log)
        executor.run("o", mod.work, other)
        executor.wait(timeout=10.0)
        assert log == ["start", "end"] and other == ["start", "end"]

        mod = write_module(path, MODULE_V2)
        assert _native.scan_markers(str(path)) == [("v2_renamed", 6)]
        log = []
        executor = TraceExecutor(Schedule([Step("w", "v2_renamed")]))
        executor.run("w", mod.work, log)
        executor.wait(timeout=10.0)
        assert log == ["start", "middle", "end"]

        executor = TraceExecutor(Schedule([Step("w", "v1")]))
        executor.run("w", mod.work, [])
        with pytest.raises(MarkerNotFoundError, match="v1"):
            executor.wait(timeout=10.0)
    finally:
        sys.modules.pop(path.stem, None)


class Ledger:
    def __init__(self) -> None:
        self.entries: list[str] = []

    def record(self, who: str) -> None:
        self.entries.append(f"{who}:method")  # frontrun: in_method

    def entries_of(self, who: str) -> Iterator[str]:
        for n in range(2):
            yield f"{who}:gen{n}"  # frontrun: in_generator


def ledger_work(ledger: Ledger, who: str) -> None:
    ledger.entries.extend(ledger.entries_of(who))
    ledger.record(who)


def test_markers_in_methods_and_generators() -> None:
    for _ in range(10):
        ledger = Ledger()
        schedule = Schedule(
            [
                Step("a", "in_generator"),
                Step("b", "in_method"),
                Step("a", "in_generator"),
                Step("a", "in_method"),
            ]
        )
        executor = TraceExecutor(schedule)
        executor.run("a", ledger_work, ledger, "a")
        executor.run("b", ledger.record, "b")
        executor.wait(timeout=10.0)
        # a's generator pauses before each item (list.extend appends as it
        # goes); b's bound method runs at its step, between a's two items.
        assert ledger.entries == ["a:gen0", "b:method", "a:gen1", "a:method"]


def test_executor_is_freed_after_a_run() -> None:
    import gc
    import weakref

    executor = TraceExecutor(Schedule([Step("txn_a", "m2"), Step("txn_b", "m1")]))
    executor.run("txn_a", log_steps, [], "a")
    executor.run("txn_b", log_steps, [], "b")
    executor.wait(timeout=10.0)
    ref = weakref.ref(executor)
    del executor
    gc.collect()
    assert ref() is None
