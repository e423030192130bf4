"""Differential testing of frontrun's SQL model against the real PostgreSQL.

A *script* is 2-3 transactions of a few statements over one small table.
:func:`brute_force` runs every interleaving of its statements on the server
(a statement that waits for a row lock stays pending until its blocker ends,
as on a real server) and collects the outcomes; :func:`explore_outcomes` runs
the same script under ``frontrun.explore(..., stop_on_first=False)``. The two
outcome sets must be equal.

An *outcome* is the final table, plus for each transaction how it ended
(committed, rolled back, or failed with which SQLSTATE at which statement)
and what its SELECTs returned. Deadlocks end in whichever transaction the
server's detector picks (a matter of timing), so any outcome with a deadlock
is just ``DEADLOCK``, as is a frontrun execution that deadlocks.
"""

from __future__ import annotations

import random
import select
import time
from dataclasses import dataclass, field
from math import factorial
from typing import Any

import psycopg2
import psycopg2.extensions

import frontrun
from frontrun._native import ExplorationAborted
from frontrun.db.reset import SnapshotReset

SCHEMA = "CREATE TABLE t (id int PRIMARY KEY, u int UNIQUE, v int NOT NULL)"
ROWS = "INSERT INTO t VALUES (1, 10, 0), (2, 20, 0)"
LEVELS = ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
DEADLOCK = ("DEADLOCK",)

Outcome = tuple[Any, ...]


@dataclass
class Txn:
    level: str
    statements: list[str]
    """Ends with COMMIT or ROLLBACK."""


@dataclass
class Script:
    txns: list[Txn]

    def interleavings(self) -> int:
        """Interleavings of the statements when nothing blocks or fails."""
        n = [len(t.statements) for t in self.txns]
        out = factorial(sum(n))
        for k in n:
            out //= factorial(k)
        return out

    def text(self) -> str:
        return "\n".join(
            f"T{i} [{t.level}]: " + "; ".join(t.statements) for i, t in enumerate(self.txns)
        )


def _statement(rng: random.Random) -> str:
    k = rng.choice((1, 1, 2, 2, 3))
    c = rng.choice((10, 20, 30, 40))
    kind = rng.choice(
        (
            "select",
            "select",
            "for_update",
            "for_share",
            "update",
            "update_rel",
            "update_u",
            "insert",
            "insert_nothing",
            "delete",
            "select_all",
            "update_pred",
            "delete_pred",
            "select_pred",
        )
    )
    th = rng.choice((0, 4))
    return {
        "select": f"SELECT v FROM t WHERE id = {k}",
        "for_update": f"SELECT v FROM t WHERE id = {k} FOR UPDATE",
        "for_share": f"SELECT v FROM t WHERE id = {k} FOR SHARE",
        "select_all": "SELECT sum(v) FROM t",
        "update": f"UPDATE t SET v = {c} WHERE id = {k}",
        "update_rel": f"UPDATE t SET v = v + 1 WHERE id = {k}",
        "update_u": f"UPDATE t SET u = {c} WHERE id = {k}",
        "insert": f"INSERT INTO t (id, u, v) VALUES ({k}, {c}, 5)",
        "insert_nothing": f"INSERT INTO t (id, u, v) VALUES ({k}, {c}, 5) ON CONFLICT DO NOTHING",
        "delete": f"DELETE FROM t WHERE id = {k}",
        "update_pred": f"UPDATE t SET v = v + 1 WHERE v > {th}",
        "delete_pred": f"DELETE FROM t WHERE v > {th}",
        "select_pred": f"SELECT count(*) FROM t WHERE v > {th}",
    }[kind]


def generate(rng: random.Random, max_interleavings: int = 2000) -> Script:
    """A random script of 2-3 transactions of 1-3 statements plus their end,
    with at most ``max_interleavings`` interleavings."""
    while True:
        n = rng.choice((2, 2, 2, 3))
        txns = []
        for _ in range(n):
            body = [_statement(rng) for _ in range(rng.randint(1, 3 if n == 2 else 2))]
            if rng.random() < 0.1:
                # A transaction whose first statement touches no table.
                body[0] = "SELECT 1"
            end = "ROLLBACK" if rng.random() < 0.15 else "COMMIT"
            txns.append(Txn(rng.choice(LEVELS), [*body, end]))
        script = Script(txns)
        if script.interleavings() <= max_interleavings:
            return script


def prepare(dsn: str) -> SnapshotReset:
    """Create the schema in the (empty) database and a reset for it."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute(ROWS)
    conn.close()
    return SnapshotReset(lambda: psycopg2.connect(dsn), ["t"])


def _final(cur: Any) -> tuple[tuple[int, ...], ...]:
    cur.execute("SELECT id, u, v FROM t ORDER BY id")
    return tuple(tuple(r) for r in cur.fetchall())


def _outcome(table: Any, ends: list[Any], reads: list[list[Any]]) -> Outcome:
    if any(e[0] == "error" and e[2] == "40P01" for e in ends):
        return DEADLOCK
    return (table, tuple(ends), tuple(tuple(r) for r in reads))


# --- brute force on the server ---------------------------------------------


class _Conn:
    """One asynchronous connection running one transaction's statements."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg2.connect(dsn, async_=1)
        self._wait(10.0)
        self.cur = self.conn.cursor()
        self.pid = self.conn.get_backend_pid()
        self.pending: str | None = None

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"connection {self.pid}: no answer within {timeout}s")
            select.select([self.conn.fileno()], [], [], 0.05)

    def send(self, sql: str) -> None:
        self.cur.execute(sql)
        self.pending = sql

    def poll(self) -> tuple[str, Any] | None:
        """``None`` while the statement runs; ``("ok", rows)`` or
        ``("error", sqlstate)`` once it finished."""
        try:
            state = self.conn.poll()
        except psycopg2.Error as exc:
            self.pending = None
            return ("error", exc.pgcode)
        if state != psycopg2.extensions.POLL_OK:
            return None
        self.pending = None
        rows = self.cur.fetchall() if self.cur.description is not None else None
        return ("ok", rows)

    def run_plain(self, sql: str) -> None:
        """Run one of the harness's own statements to completion."""
        self.send(sql)
        self.finish_plain()

    def finish_plain(self) -> None:
        sql = self.pending
        deadline = time.monotonic() + 10.0
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sql!r} on {self.pid} did not finish within 10s")
            select.select([self.conn.fileno()], [], [], 0.01)

    def close(self) -> None:
        self.conn.close()


class BruteForce:
    """Every interleaving of a script, run on the server."""

    def __init__(self, dsn: str, reset: SnapshotReset, n_conns: int = 3) -> None:
        self.dsn = dsn
        self.reset = reset
        self.monitor = psycopg2.connect(dsn)
        self.monitor.autocommit = True
        self.conns = [_Conn(dsn) for _ in range(n_conns)]
        for c in self.conns:
            c.run_plain("SET statement_timeout = '10s'")

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.monitor.close()

    def _blocked(self, c: _Conn) -> bool:
        with self.monitor.cursor() as cur:
            cur.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (c.pid,))
            return bool(cur.fetchone()[0])

    def _settle(
        self, c: _Conn, timeout: float = 10.0, patience: float = 0.002
    ) -> tuple[str, Any] | None:
        """Wait until `c`'s statement finished (its result) or waits for a
        lock (``None``). Most statements answer within `patience`: only then
        is the server asked (a round trip) whether it waits for a lock."""
        deadline = time.monotonic() + timeout
        while True:
            done = c.poll()
            if done is not None:
                return done
            if patience > 0:
                select.select([c.conn.fileno()], [], [], patience)
                done = c.poll()
                if done is not None:
                    return done
            if self._blocked(c):
                return None
            if time.monotonic() > deadline:
                raise TimeoutError(f"statement {c.pending!r} neither finished nor waited")
            patience = 0.001

    def run(self, script: Script, prefix: list[int]) -> tuple[Outcome, list[tuple[int, int]]]:
        """One execution following `prefix` (indices into the sorted runnable
        transactions at each step), then the first runnable one. Returns the
        outcome and, per step, (choice, number of runnable transactions)."""
        self.reset.reset()
        n = len(script.txns)
        conns = self.conns[:n]
        for c, t in zip(conns, script.txns, strict=True):
            c.send(f"BEGIN ISOLATION LEVEL {t.level}")
        for c in conns:
            c.finish_plain()
        nxt = [0] * n
        ends: list[Any] = [None] * n
        reads: list[list[Any]] = [[] for _ in range(n)]
        waiting = [False] * n
        steps: list[tuple[int, int]] = []

        def finish(i: int, result: tuple[str, Any]) -> None:
            kind, value = result
            sql = script.txns[i].statements[nxt[i]]
            if kind == "error":
                ends[i] = ("error", nxt[i], value)
                conns[i].run_plain("ROLLBACK")
                nxt[i] = len(script.txns[i].statements)
                return
            if sql.startswith("SELECT"):
                reads[i].append(tuple(tuple(r) for r in value))
            nxt[i] += 1
            if nxt[i] == len(script.txns[i].statements):
                ends[i] = (sql.lower(),)

        def settle_waiters(timeout: float = 10.0) -> None:
            for i in range(n):
                if waiting[i]:
                    # Still waiting, most likely: ask the server at once.
                    res = self._settle(conns[i], timeout, patience=0)
                    if res is not None:
                        waiting[i] = False
                        finish(i, res)

        while True:
            runnable = [i for i in range(n) if not waiting[i] and ends[i] is None]
            if not runnable:
                if not any(waiting):
                    break
                # Everyone waits: a deadlock the server's detector will break.
                self._await_any(conns, waiting)
                settle_waiters()
                continue
            k = prefix[len(steps)] if len(steps) < len(prefix) else 0
            steps.append((k, len(runnable)))
            i = runnable[k]
            conns[i].send(script.txns[i].statements[nxt[i]])
            res = self._settle(conns[i])
            if res is None:
                waiting[i] = True
            else:
                finish(i, res)
            settle_waiters()
        with self.monitor.cursor() as cur:
            table = _final(cur)
        return _outcome(table, ends, reads), steps

    def _await_any(self, conns: list[_Conn], waiting: list[bool]) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            for i, c in enumerate(conns):
                if waiting[i] and not self._blocked(c):
                    return
            time.sleep(0.005)
        raise TimeoutError("every transaction waits and the server broke no deadlock in 10s")

    def outcomes(self, script: Script) -> tuple[set[Outcome], int]:
        """The outcomes of every interleaving, and how many there were."""
        out: set[Outcome] = set()
        prefix: list[int] = []
        runs = 0
        while True:
            outcome, steps = self.run(script, prefix)
            runs += 1
            out.add(outcome)
            # The deepest step with an untried alternative.
            j = len(steps) - 1
            while j >= 0 and steps[j][0] + 1 >= steps[j][1]:
                j -= 1
            if j < 0:
                return out, runs
            prefix = [k for k, _ in steps[:j]] + [steps[j][0] + 1]


# --- the same script under frontrun ------------------------------------------


@dataclass
class _State:
    conns: list[Any]
    ends: list[Any] = field(default_factory=list)
    reads: list[list[Any]] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    pruned: bool = False
    """The search abandoned this execution (it adds nothing new): not an
    outcome."""


def _thread(i: int, txn: Txn) -> Any:
    def run(state: _State) -> None:
        conn = state.conns[i]
        reads = state.reads[i]
        cur = conn.cursor()
        try:
            cur.execute(f"BEGIN ISOLATION LEVEL {txn.level}")
            for j, sql in enumerate(txn.statements):
                try:
                    cur.execute(sql)
                except psycopg2.Error as exc:
                    state.ends[i] = ("error", j, exc.pgcode)
                    cur.execute("ROLLBACK")
                    return
                if sql.startswith("SELECT"):
                    reads.append(tuple(tuple(r) for r in cur.fetchall()))
            state.ends[i] = (txn.statements[-1].lower(),)
        except ExplorationAborted:
            state.pruned = True
            raise
        finally:
            cur.close()

    return run


@dataclass
class ExploreRun:
    outcomes: set[Outcome]
    executions: int
    exhausted: bool
    property_holds: bool | None
    explanation: str


def explore_outcomes(
    dsn: str,
    reset: SnapshotReset,
    script: Script,
    max_executions: int = 20000,
    strategy: Any = "dpor",
) -> ExploreRun:
    n = len(script.txns)
    seen: set[Outcome] = set()
    monitor = psycopg2.connect(dsn)
    monitor.autocommit = True

    def setup() -> _State:
        reset.reset()
        conns = [psycopg2.connect(dsn) for _ in range(n)]
        for c in conns:
            c.autocommit = True
        return _State(conns, [None] * n, [[] for _ in range(n)])

    def invariant(state: _State) -> bool:
        return True

    def teardown(state: _State) -> None:
        try:
            if state.pruned:
                return
            if any(e is None for e in state.ends):
                # Some thread did not finish: the execution deadlocked.
                seen.add(DEADLOCK)
                return
            with monitor.cursor() as cur:
                table = _final(cur)
            seen.add(_outcome(table, state.ends, state.reads))
        finally:
            for c in state.conns:
                c.close()

    try:
        result = frontrun.explore(
            setup,
            [_thread(i, t) for i, t in enumerate(script.txns)],
            invariant,
            teardown=teardown,
            stop_on_first=False,
            # Plain DPOR: one execution per class of equivalent interleavings
            # (the default iterative search repeats executions in passes of
            # growing preemption bounds; its last pass is this search).
            strategy=strategy,
            max_executions=max_executions,
            reproduce_on_failure=0,
            timeout_per_run=10.0,
        )
    finally:
        monitor.close()
    return ExploreRun(
        seen,
        result.executions_explored,
        result.exhausted,
        result.property_holds,
        result.explanation,
    )


# --- comparing the two --------------------------------------------------------


@dataclass
class Stats:
    """The comparison of a run of scripts, script by script."""

    scripts: int = 0
    distinct: int = 0
    """Scripts not seen before in the run (a repeat reuses both results)."""
    exact: int = 0
    server_seconds: float = 0.0
    explore_seconds: float = 0.0
    server_runs: int = 0
    executions: int = 0
    wrong: list[str] = field(default_factory=list)
    """Outcomes missed under a proof, or invented, or a search not exhausted."""
    unproved: list[str] = field(default_factory=list)
    """Outcomes missed, but frontrun's verdict was None (no proof)."""
    _seen: dict[str, tuple[set[Outcome], int, ExploreRun]] = field(default_factory=dict)

    def compare(
        self, i: int, script: Script, brute: BruteForce, dsn: str, reset: SnapshotReset
    ) -> str | None:
        """Run `script` both ways; a report if they differ."""
        self.scripts += 1
        key = script.text()
        if key not in self._seen:
            t0 = time.monotonic()
            real, runs = brute.outcomes(script)
            t1 = time.monotonic()
            self._seen[key] = (real, runs, explore_outcomes(dsn, reset, script))
            self.server_seconds += t1 - t0
            self.explore_seconds += time.monotonic() - t1
            self.distinct += 1
        real, runs, ex = self._seen[key]
        self.server_runs += runs
        self.executions += ex.executions
        missed = real - ex.outcomes
        invented = ex.outcomes - real
        if not missed and not invented and ex.exhausted:
            self.exact += 1
            return None
        if not invented and ex.exhausted and ex.property_holds is None:
            self.unproved.append(f"script {i} (missed {len(missed)}): {ex.explanation}")
            return None
        report = (
            f"script {i}:\n{script.text()}\n missed {sorted(missed, key=repr)}"
            f"\n invented {sorted(invented, key=repr)}\n exhausted {ex.exhausted}, "
            f"verdict {ex.property_holds}: {ex.explanation}"
        )
        self.wrong.append(report)
        return report

    def summary(self) -> str:
        return (
            f"{self.scripts} scripts ({self.distinct} distinct): {self.exact} exact, "
            f"{len(self.unproved)} missed outcomes under a verdict of None, "
            f"{len(self.wrong)} wrong; {self.server_runs} server interleavings, "
            f"{self.executions} frontrun executions; {self.server_seconds:.0f}s on the "
            f"server, {self.explore_seconds:.0f}s exploring"
        )
