"""Lost increments on a Postgres counter (read-modify-write), and SELECT … FOR UPDATE.

    python examples/counter_race.py --workers 3

N workers each run ``SELECT counter; UPDATE counts SET counter = <read + 1>;
COMMIT`` in their own READ COMMITTED transaction. A ``Schedule`` makes every
worker read before any writes, so every increment but one is lost. With
``FOR UPDATE`` the same forced overlap gives exactly N. A throwaway PostgreSQL
is started unless ``DATABASE_URL`` (or ``FRONTRUN_DATABASE_URL``) is set. Exits
0 only if both outcomes came out as expected.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2

from frontrun.common import Schedule, Step
from frontrun.testing import postgres_server
from frontrun.trace_markers import TraceExecutor

RULE = "=" * 70
THREAD_TIMEOUT = 10.0
UPDATE_SQL = "UPDATE counts SET counter = %s"


@dataclass
class CounterOutcome:
    """The value each worker read and the counter's final value."""

    workers: int
    for_update: bool
    reads: dict[str, int]
    final: int

    @property
    def as_expected(self) -> bool:
        if self.for_update:
            # Serialised by the row lock: each worker saw the previous one's write.
            return self.final == self.workers and sorted(self.reads.values()) == list(
                range(self.workers)
            )
        # Everyone read 0 before anyone wrote, so everyone wrote 1.
        return self.final == 1 and set(self.reads.values()) == {0}


def reset_counter(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS counts (counter integer NOT NULL)")
            cur.execute("TRUNCATE counts")
            cur.execute("INSERT INTO counts (counter) VALUES (0)")
    finally:
        conn.close()


def worker_names(workers: int) -> list[str]:
    return [f"w{i + 1}" for i in range(workers)]


def race_schedule(workers: int) -> list[Step]:
    """Every worker reads before any worker writes."""
    names = worker_names(workers)
    return [Step(w, "counter_read") for w in names] + [Step(w, "counter_write") for w in names]


def locked_schedule(workers: int) -> list[Step]:
    """All workers start; w1 reads (taking the row lock) and pauses; then all run."""
    names = worker_names(workers)
    return [Step(w, "counter_read") for w in names] + [Step(names[0], "counter_write")]


def run_counter(dsn: str, workers: int = 2, *, for_update: bool = False) -> CounterOutcome:
    """Run ``workers`` read-modify-write increments under the forcing schedule."""
    if workers < 2:
        raise ValueError(f"--workers must be at least 2 to race, got {workers}")
    reset_counter(dsn)
    select_sql = "SELECT counter FROM counts" + (" FOR UPDATE" if for_update else "")
    schedule = locked_schedule(workers) if for_update else race_schedule(workers)
    reads: dict[str, int] = {}
    conns = {name: psycopg2.connect(dsn) for name in worker_names(workers)}
    try:

        def make_increment(name: str) -> Callable[[], None]:
            conn = conns[name]

            def increment() -> None:
                with conn.cursor() as cur:
                    cur.execute(select_sql)  # frontrun: counter_read
                    curr_count = cur.fetchone()[0]
                    reads[name] = curr_count
                    new_count = curr_count + 1
                    cur.execute(UPDATE_SQL, (new_count,))  # frontrun: counter_write
                conn.commit()

            return increment

        executor = TraceExecutor(Schedule(schedule))
        for name in conns:
            executor.run(name, make_increment(name))
        executor.wait(timeout=THREAD_TIMEOUT)
    finally:
        for conn in conns.values():
            conn.close()
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT counter FROM counts")
            final = cur.fetchone()[0]
    finally:
        conn.close()
    return CounterOutcome(workers=workers, for_update=for_update, reads=reads, final=final)


def print_outcome(out: CounterOutcome) -> None:
    title = "Fix: SELECT … FOR UPDATE" if out.for_update else "Race: lost increments"
    print(RULE)
    print(f"{title}  ({out.workers} workers, TraceExecutor + psycopg2 + Postgres)")
    print(RULE)
    print()
    lock = " FOR UPDATE" if out.for_update else ""
    print("  Each worker (READ COMMITTED):")
    print(f"    BEGIN; SELECT counter FROM counts{lock};  -- READ")
    print("           new_count = counter + 1;  -- MODIFY")
    print("           UPDATE counts SET counter = new_count;  -- WRITE")
    print("    COMMIT;")
    print()
    for name, value in sorted(out.reads.items()):
        print(f"  {name} read counter = {value}, wrote {value + 1}")
    print(f"  Final counter: {out.final}  (expected {out.workers})")
    print()
    if not out.as_expected:
        print(f"  UNEXPECTED: {out}")
    elif out.for_update:
        print(f"  FIX confirmed: the row lock serialised the workers; counter is {out.final}.")
    else:
        lost = out.workers - out.final
        print(f"  LOST INCREMENTS confirmed: {lost} of {out.workers} increments lost;")
        print("  every worker read 0 before any wrote back.")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="concurrent workers (default 2)")
    args = parser.parse_args(argv)
    with postgres_server() as pg, pg.fresh_database("counter_race") as dsn:
        race = run_counter(dsn, args.workers)
        print_outcome(race)
        fixed = run_counter(dsn, args.workers, for_update=True)
        print_outcome(fixed)
    ok = race.as_expected and fixed.as_expected
    print(f"{int(race.as_expected) + int(fixed.as_expected)} of 2 outcomes as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
