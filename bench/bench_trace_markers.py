"""TraceExecutor cost per run: the seed's 4-step lost-update schedule on a
Python object, against the same two functions on plain threads.

    python bench/run.py bench_trace_markers
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable

from frontrun.common import Schedule, Step
from frontrun.trace_markers import AsyncTraceExecutor, TraceExecutor

REPEATS = 7
RUNS_PER_REPEAT = 200
TARGET_MS = 1.0

SCHEDULE = Schedule(
    [
        Step("txn_a", "pg_select"),
        Step("txn_b", "pg_select"),
        Step("txn_a", "pg_update"),
        Step("txn_b", "pg_update"),
    ]
)


class Account:
    def __init__(self) -> None:
        self.balance = 1000


def make_txns(acct: Account) -> tuple[Callable[[], None], Callable[[], None]]:
    def txn_a() -> None:
        old = acct.balance  # frontrun: pg_select
        new = old + 100
        acct.balance = new  # frontrun: pg_update

    def txn_b() -> None:
        old = acct.balance  # frontrun: pg_select
        new = old + 200
        acct.balance = new  # frontrun: pg_update

    return txn_a, txn_b


def one_traced_run() -> int:
    acct = Account()
    txn_a, txn_b = make_txns(acct)
    executor = TraceExecutor(SCHEDULE)
    executor.run("txn_a", txn_a)
    executor.run("txn_b", txn_b)
    executor.wait(timeout=10.0)
    return acct.balance


async def async_txn(acct: Account, amount: int) -> None:
    old = acct.balance  # frontrun: pg_select
    await asyncio.sleep(0)
    acct.balance = old + amount  # frontrun: pg_update


def one_async_run() -> int:
    acct = Account()
    executor = AsyncTraceExecutor(SCHEDULE)
    executor.run("txn_a", async_txn, acct, 100)
    executor.run("txn_b", async_txn, acct, 200)
    executor.wait(timeout=10.0)
    return acct.balance


def one_plain_async_run() -> int:
    acct = Account()

    async def both() -> None:
        await asyncio.gather(async_txn(acct, 100), async_txn(acct, 200))

    asyncio.run(both())
    return acct.balance


def one_plain_run() -> int:
    acct = Account()
    txn_a, txn_b = make_txns(acct)
    threads = [threading.Thread(target=txn_a), threading.Thread(target=txn_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10.0)
    return acct.balance


def per_run_ms(fn: Callable[[], int], repeats: int = REPEATS) -> tuple[float, list[int]]:
    """Median over `repeats` of the mean time of RUNS_PER_REPEAT runs."""
    samples = []
    balances = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(RUNS_PER_REPEAT):
            balances.append(fn())
        samples.append((time.perf_counter() - start) / RUNS_PER_REPEAT * 1e3)
    return statistics.median(samples), balances


def main() -> None:
    one_traced_run()  # warm the marker cache and the imports
    one_plain_run()
    traced, traced_balances = per_run_ms(one_traced_run)
    plain, plain_balances = per_run_ms(one_plain_run)
    async_traced, async_balances = per_run_ms(one_async_run, repeats=3)
    async_plain, _ = per_run_ms(one_plain_async_run, repeats=3)
    lost = sum(b != 1300 for b in traced_balances) / len(traced_balances)
    plain_lost = sum(b != 1300 for b in plain_balances) / len(plain_balances)
    print(f"TraceExecutor, 4-step schedule : {traced:.3f} ms/run (target <= {TARGET_MS} ms)")
    print(f"plain threading.Thread x2      : {plain:.3f} ms/run")
    print(f"ratio traced / plain           : {traced / plain:.2f}x")
    print(
        f"lost update reproduced         : {lost:.0%} of traced runs, {plain_lost:.0%} of plain runs"
    )

    async_lost = sum(b != 1300 for b in async_balances) / len(async_balances)
    print(f"AsyncTraceExecutor, same steps : {async_traced:.3f} ms/run")
    print(f"plain asyncio.run + gather     : {async_plain:.3f} ms/run")
    print(f"ratio async traced / plain     : {async_traced / async_plain:.2f}x")
    print(f"async lost update reproduced   : {async_lost:.0%} of traced runs")


if __name__ == "__main__":
    main()
