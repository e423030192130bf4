"""A suite of small concurrent programs with known answers, SCTBench-style:
atomicity, order and deadlock bugs that need 0 to 3 preemptions, some with
10 to 100 threads, each next to its fixed version.

Used by `tests/test_bug_suite.py` (every strategy must find every bug and
raise no false alarm) and `bench/bench_bugs.py` (strategies side by side).
Each program is `Program(name, setup, threads, invariant, buggy, kind,
preemptions)`; `preemptions` is the fewest a failing schedule needs (0 for a
bug that a plain thread order shows), checked by the test with bounded DPOR.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Program:
    name: str
    setup: Callable[[], Any]
    threads: list[Callable[[Any], Any]]
    invariant: Callable[[Any], Any]
    buggy: bool
    kind: str  # "atomicity", "order", "deadlock", or "safe"
    preemptions: int | None = None


# -- lost update ----------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()


def racy_inc(c: Counter) -> None:
    v = c.value
    c.value = v + 1


def locked_inc(c: Counter) -> None:
    with c.lock:
        v = c.value
        c.value = v + 1


def counter(n: int) -> Callable[[Counter], bool]:
    def inv(c: Counter) -> bool:
        return c.value == n

    return inv


# -- check then act ---------------------------------------------------------


class Registry:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}
        self.created = 0
        self.lock = threading.Lock()


def racy_get_or_create(r: Registry) -> None:
    if "k" not in r.items:
        r.created += 1
        r.items["k"] = r.created


def locked_get_or_create(r: Registry) -> None:
    with r.lock:
        if "k" not in r.items:
            r.created += 1
            r.items["k"] = r.created


def created_once(r: Registry) -> bool:
    return r.created == 1


# -- overdraft ----------------------------------------------------------------


class Bank:
    def __init__(self) -> None:
        self.balance = 100
        self.lock = threading.Lock()


def racy_withdraw(amount: int) -> Callable[[Bank], None]:
    def w(b: Bank) -> None:
        if b.balance >= amount:
            b.balance -= amount

    w.__name__ = f"withdraw_{amount}"
    return w


def locked_withdraw(amount: int) -> Callable[[Bank], None]:
    def w(b: Bank) -> None:
        with b.lock:
            if b.balance >= amount:
                b.balance -= amount

    w.__name__ = f"locked_withdraw_{amount}"
    return w


# -- order: use before init -------------------------------------------------


class Service:
    def __init__(self) -> None:
        self.config: dict[str, int] | None = None
        self.ready = threading.Event()
        self.result = 0


def init_service(s: Service) -> None:
    s.config = {"limit": 3}
    s.ready.set()


def use_unready(s: Service) -> None:
    assert s.config is not None, "used before init"
    s.result = s.config["limit"]


def use_after_ready(s: Service) -> None:
    s.ready.wait()
    assert s.config is not None, "used before init"
    s.result = s.config["limit"]


# -- order: publish before the data -----------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.ready = False
        self.data: int | None = None
        self.seen: int | None = 0


def publish_flag_first(m: Mailbox) -> None:
    m.ready = True
    m.data = 42


def publish_data_first(m: Mailbox) -> None:
    m.data = 42
    m.ready = True


def consume(m: Mailbox) -> None:
    if m.ready:
        m.seen = m.data


def consistent(m: Mailbox) -> bool:
    return m.seen is not None


# -- deadlock: lock order -------------------------------------------------------


class Locks:
    def __init__(self, n: int = 2) -> None:
        self.locks = [threading.Lock() for _ in range(n)]
        # One append per thread: appends never lose each other, so only a
        # deadlock can break `all_done` (not a lost update of a counter).
        self.finished: list[int] = []


def take(first: int, second: int) -> Callable[[Locks], None]:
    def t(s: Locks) -> None:
        with s.locks[first]:
            with s.locks[second]:
                s.finished.append(first)

    t.__name__ = f"take_{first}_{second}"
    return t


def all_done(n: int) -> Callable[[Locks], bool]:
    return lambda s: len(s.finished) == n


def philosophers(n: int) -> Callable[[], Locks]:
    return lambda: Locks(n)


# -- bluetooth driver (SCTBench) -----------------------------------------------


class Device:
    def __init__(self) -> None:
        self.pending_io = 1
        self.stopping_flag = False
        self.stopping_event = False
        self.stopped = False
        self.lock = threading.Lock()


def _io_decrement(d: Device) -> None:
    d.pending_io -= 1
    if d.pending_io == 0:
        d.stopping_event = True


def bt_worker(d: Device) -> None:
    if d.stopping_flag:
        return
    d.pending_io += 1
    assert not d.stopped, "I/O on a stopped device"
    _io_decrement(d)


def bt_worker_locked(d: Device) -> None:
    with d.lock:
        if d.stopping_flag:
            return
        d.pending_io += 1
    assert not d.stopped, "I/O on a stopped device"
    with d.lock:
        _io_decrement(d)


def bt_stopper(d: Device) -> None:
    d.stopping_flag = True
    _io_decrement(d)
    if d.stopping_event:
        d.stopped = True


def bt_stopper_locked(d: Device) -> None:
    with d.lock:
        d.stopping_flag = True
        _io_decrement(d)
        stop = d.stopping_event
    if stop:
        d.stopped = True


# -- two stage (SCTBench twostage_N) -------------------------------------------


class TwoStage:
    def __init__(self) -> None:
        self.m1 = threading.Lock()
        self.m2 = threading.Lock()
        self.data1 = 0
        self.data2 = 0
        self.bad = False


def stage_racy(s: TwoStage) -> None:
    with s.m1:
        s.data1 = 1
    with s.m2:
        s.data2 = s.data1 + 1


def stage_atomic(s: TwoStage) -> None:
    with s.m1:
        s.data1 = 1
        with s.m2:
            s.data2 = s.data1 + 1


def stage_reader(s: TwoStage) -> None:
    with s.m1:
        if s.data1 == 1:
            with s.m2:
                if s.data2 != s.data1 + 1:
                    s.bad = True


def not_bad(s: Any) -> bool:
    return not s.bad


# -- wrong lock ------------------------------------------------------------------


class Shared:
    def __init__(self) -> None:
        self.a = threading.Lock()
        self.b = threading.Lock()
        self.value = 0


def inc_under_a(s: Shared) -> None:
    with s.a:
        v = s.value
        s.value = v + 1


def inc_under_b(s: Shared) -> None:
    with s.b:
        v = s.value
        s.value = v + 1


# -- pop from a shared stack --------------------------------------------------


class Stack:
    def __init__(self) -> None:
        self.items = [1]
        self.lock = threading.Lock()
        self.popped = 0


def racy_pop(s: Stack) -> None:
    if len(s.items) > 0:
        s.items.pop()
        s.popped += 1


def locked_pop(s: Stack) -> None:
    with s.lock:
        if len(s.items) > 0:
            s.items.pop()
            s.popped += 1


# -- reorder (SCTBench reorder_N) --------------------------------------------------


class Pair:
    def __init__(self) -> None:
        self.a = 0
        self.b = 0
        self.lock = threading.Lock()
        self.bad = False


def set_pair(p: Pair) -> None:
    p.a = 1
    p.b = -1


def set_pair_locked(p: Pair) -> None:
    with p.lock:
        p.a = 1
        p.b = -1


def check_pair(p: Pair) -> None:
    a, b = p.a, p.b
    if not ((a == 0 and b == 0) or (a == 1 and b == -1)):
        p.bad = True


def check_pair_locked(p: Pair) -> None:
    with p.lock:
        a, b = p.a, p.b
    if not ((a == 0 and b == 0) or (a == 1 and b == -1)):
        p.bad = True


# -- transfer between two fields -------------------------------------------------


class Accounts:
    def __init__(self) -> None:
        self.x = 50
        self.y = 50
        self.lock = threading.Lock()
        self.seen_total = 100


def transfer(a: Accounts) -> None:
    a.x -= 10
    a.y += 10


def transfer_locked(a: Accounts) -> None:
    with a.lock:
        a.x -= 10
        a.y += 10


def audit(a: Accounts) -> None:
    a.seen_total = a.x + a.y


def audit_locked(a: Accounts) -> None:
    with a.lock:
        a.seen_total = a.x + a.y


def total_kept(a: Accounts) -> bool:
    return a.seen_total == 100


# -- event set before the data is written -------------------------------------------


class Handoff:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.payload: str | None = None
        self.got: str | None = "none"


def produce_early(h: Handoff) -> None:
    h.event.set()
    h.payload = "data"


def produce(h: Handoff) -> None:
    h.payload = "data"
    h.event.set()


def consume_handoff(h: Handoff) -> None:
    h.event.wait()
    h.got = h.payload


def got_data(h: Handoff) -> bool:
    return h.got == "data"


# -- a value seen mid-update, twice (2 and 3 preemptions) ---------------------


class Flicker:
    def __init__(self) -> None:
        self.x = 0
        self.lock = threading.Lock()
        self.bad = False


def write_steps(f: Flicker) -> None:
    f.x = 1
    f.x = 2
    f.x = 3


def write_steps_locked(f: Flicker) -> None:
    with f.lock:
        f.x = 1
        f.x = 2
        f.x = 3


def read_twice(first: int, second: int) -> Callable[[Flicker], None]:
    """Bad when it reads `first` then `second`: 1 then 3 needs the writer
    stopped after its first write and the reader after its first read (2
    preemptions); 1 then 2 also needs the writer stopped after its second."""

    def r(f: Flicker) -> None:
        a = f.x
        b = f.x
        if (a, b) == (first, second):
            f.bad = True

    r.__name__ = f"read_{first}_then_{second}"
    return r


def read_twice_locked(first: int, second: int) -> Callable[[Flicker], None]:
    def r(f: Flicker) -> None:
        with f.lock:
            a = f.x
        with f.lock:
            b = f.x
        if (a, b) == (first, second):
            f.bad = True

    r.__name__ = f"locked_read_{first}_then_{second}"
    return r


def _suite() -> list[Program]:
    P = Program
    ps: list[Program] = []

    def pair(bug: Program, fixed: Program | None = None) -> None:
        ps.append(bug)
        if fixed is not None:
            ps.append(fixed)

    for n in (2, 3, 4, 10):
        inv = counter(n)
        pair(
            P(f"lost_update_{n}x", Counter, [racy_inc] * n, inv, True, "atomicity", 1),
            P(f"locked_counter_{n}x", Counter, [locked_inc] * n, inv, False, "safe"),
        )
    pair(
        P(
            "flicker_1_then_3",
            Flicker,
            [write_steps, read_twice(1, 3)],
            not_bad,
            True,
            "atomicity",
            2,
        ),
        P(
            "flicker_locked",
            Flicker,
            [write_steps_locked, read_twice_locked(1, 3)],
            not_bad,
            False,
            "safe",
        ),
    )
    pair(
        P(
            "flicker_1_then_2",
            Flicker,
            [write_steps, read_twice(1, 2)],
            not_bad,
            True,
            "atomicity",
            3,
        )
    )
    pair(
        P("check_then_act", Registry, [racy_get_or_create] * 2, created_once, True, "atomicity", 1),
        P(
            "check_then_act_locked",
            Registry,
            [locked_get_or_create] * 3,
            created_once,
            False,
            "safe",
        ),
    )
    pair(
        P("overdraft", Bank, [racy_withdraw(80), racy_withdraw(50)], solvent, True, "atomicity", 1),
        P(
            "overdraft_locked",
            Bank,
            [locked_withdraw(80), locked_withdraw(50)],
            solvent,
            False,
            "safe",
        ),
    )
    pair(
        P("use_before_init", Service, [use_unready, init_service], configured, True, "order", 0),
        P("use_after_ready", Service, [use_after_ready, init_service], configured, False, "safe"),
    )
    pair(
        P(
            "publish_flag_first",
            Mailbox,
            [publish_flag_first, consume],
            consistent,
            True,
            "order",
            1,
        ),
        P("publish_data_first", Mailbox, [publish_data_first, consume], consistent, False, "safe"),
    )
    pair(
        P("lock_order_deadlock", Locks, [take(0, 1), take(1, 0)], all_done(2), True, "deadlock", 1),
        P("lock_order_fixed", Locks, [take(0, 1), take(0, 1)], all_done(2), False, "safe"),
    )
    # A blocked thread is switched away from for free, so a deadlock cycle of
    # any length needs only one preemption.
    for n in (3, 4):
        ring = [take(i, (i + 1) % n) for i in range(n)]
        ordered = [take(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n)]
        pair(
            P(f"philosophers_{n}", philosophers(n), ring, all_done(n), True, "deadlock", 1),
            P(f"philosophers_{n}_ordered", philosophers(n), ordered, all_done(n), False, "safe"),
        )
    pair(
        P("bluetooth_driver", Device, [bt_worker, bt_stopper], anything, True, "atomicity", 1),
        P(
            "bluetooth_driver_locked",
            Device,
            [bt_worker_locked, bt_stopper_locked],
            anything,
            False,
            "safe",
        ),
    )
    for n in (10, 100):
        pair(
            P(
                f"twostage_{n}",
                TwoStage,
                [stage_racy] * (n - 1) + [stage_reader],
                not_bad,
                True,
                "atomicity",
                1,
            ),
            P(
                f"twostage_{n}_atomic",
                TwoStage,
                [stage_atomic] * (n - 1) + [stage_reader],
                not_bad,
                False,
                "safe",
            ),
        )
    pair(
        P("wrong_lock", Shared, [inc_under_a, inc_under_b], counted_twice, True, "atomicity", 1),
        P("right_lock", Shared, [inc_under_a, inc_under_a], counted_twice, False, "safe"),
    )
    pair(
        P("stack_pop", Stack, [racy_pop, racy_pop], popped_once, True, "atomicity", 1),
        P("stack_pop_locked", Stack, [locked_pop] * 3, popped_once, False, "safe"),
    )
    for n in (2, 10):
        pair(
            P(
                f"reorder_{n}",
                Pair,
                [set_pair] * (n - 1) + [check_pair],
                not_bad,
                True,
                "atomicity",
                1,
            ),
            P(
                f"reorder_{n}_locked",
                Pair,
                [set_pair_locked] * (n - 1) + [check_pair_locked],
                not_bad,
                False,
                "safe",
            ),
        )
    pair(
        P("torn_transfer", Accounts, [transfer, audit], total_kept, True, "atomicity", 1),
        P("locked_transfer", Accounts, [transfer_locked, audit_locked], total_kept, False, "safe"),
    )
    pair(
        P(
            "event_before_data",
            Handoff,
            [consume_handoff, produce_early],
            got_data,
            True,
            "order",
            1,
        ),
        P("event_after_data", Handoff, [consume_handoff, produce], got_data, False, "safe"),
    )
    return ps


def solvent(b: Bank) -> bool:
    return b.balance >= 0


def configured(s: Service) -> bool:
    return s.result == 3


def anything(_: object) -> bool:
    return True


def counted_twice(s: Shared) -> bool:
    return s.value == 2


def popped_once(s: Stack) -> bool:
    return s.popped == 1


SUITE: list[Program] = _suite()
