"""Several threads traced at once, with the GIL switching between them."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from frontrun import _native

pytestmark = pytest.mark.skipif(not _native._tracer_supported(), reason="tracer unsupported")


class Account:
    def __init__(self) -> None:
        self.balance = 0
        self.log: list[int] = []


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(fns: list[Callable[[], object]], timeout: float = 30.0) -> list[object]:
    results: list[object] = [None] * len(fns)

    def worker(i: int) -> None:
        try:
            results[i] = _native._trace_thread(fns[i])
        except BaseException as e:  # reported to the test below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        raise TimeoutError(f"traced threads {stuck} did not finish within {timeout} s")
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


@pytest.mark.usefixtures("fast_switching")
def test_each_thread_sees_its_own_accesses_to_the_same_object() -> None:
    acct = Account()
    rounds = 300

    def deposit() -> None:
        for _ in range(rounds):
            acct.balance = acct.balance + 1

    def audit() -> None:
        for _ in range(rounds):
            acct.log.append(acct.balance)

    _native._trace_begin([acct])
    try:
        dep, aud = run_threads([deposit, audit])
    finally:
        _native._trace_end()
    assert isinstance(dep, list) and isinstance(aud, list)
    owner = {obj for _, obj, key in dep if key == "balance"}
    assert len(owner) == 1
    dep_balance = [(k, key) for k, obj, key in dep if obj in owner]
    aud_balance = [(k, key) for k, obj, key in aud if obj in owner]
    assert dep_balance == [("read", "balance"), ("write", "balance")] * rounds
    assert aud_balance == [("read", "log"), ("read", "balance")] * rounds
    assert len(acct.log) == rounds
    assert sys.gettrace() is None
