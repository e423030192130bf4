"""SQL-level analyses built on exploration.

:func:`isolation_report` explores a database workload at READ COMMITTED,
REPEATABLE READ and SERIALIZABLE and says which interleavings fail at each,
which isolation anomaly each failure is, and the weakest level at which the
invariant holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from frontrun._explore import ExploreResult, explore
from frontrun.db import _hooks
from frontrun.db.script import DEADLOCK, SERIALIZATION_FAILURE

__all__ = ["LEVELS", "IsolationReport", "LevelOutcome", "isolation_report"]

LEVELS = ("read committed", "repeatable read", "serializable")


@dataclass
class LevelOutcome:
    """What exploring the workload at one isolation level found."""

    level: str
    result: ExploreResult
    anomaly: str | None
    """For a failure: ``lost update``, ``read skew``, ``write skew``,
    ``predicate write skew``, ``serialization failure``, ``deadlock``, or
    ``unclassified``; ``None`` when the invariant held."""

    @property
    def holds(self) -> bool | None:
        return self.result.property_holds

    def describe(self) -> str:
        r = self.result
        if r.property_holds is True:
            proof = "every interleaving" if r.exhausted else "the interleavings explored"
            return f"{self.level}: holds ({proof}, {r.executions_explored} executions)"
        if r.property_holds is None:
            return f"{self.level}: inconclusive ({r.explanation.splitlines()[0]})"
        return (
            f"{self.level}: FAILS after {r.executions_explored} executions: {self.anomaly}\n"
            + _indent(r.explanation)
        )


@dataclass
class IsolationReport:
    """The outcome at each level and the weakest level that is safe."""

    outcomes: list[LevelOutcome]
    weakest_safe: str | None
    """The weakest level at which the invariant held, or ``None``."""

    def __str__(self) -> str:
        lines = [o.describe() for o in self.outcomes]
        lines.append(
            f"weakest safe level: {self.weakest_safe}"
            if self.weakest_safe
            else "the invariant fails at every level"
        )
        return "\n".join(lines)

    def outcome(self, level: str) -> LevelOutcome:
        for o in self.outcomes:
            if o.level == level:
                return o
        raise KeyError(
            f"no outcome for level {level!r}; levels: {[o.level for o in self.outcomes]}"
        )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _classify(result: ExploreResult) -> str:
    """Name the failure from the last execution's statement log."""
    if result.failure_kind == "deadlock" or DEADLOCK in result.explanation:
        return "deadlock"
    if SERIALIZATION_FAILURE in result.explanation or "could not serialize" in result.explanation:
        return "serialization failure"
    session = _hooks.last_session()
    if session is not None:
        for database, model in session.models().items():
            found = model.anomaly()
            if found is not None:
                kind, first, second, rows = found
                a = session.label_of(database, first)
                b = session.label_of(database, second)
                return f"{kind} ({a}, {b}: {rows})"
    return "unclassified"


def isolation_report(
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Callable[[Any], Any],
    *,
    levels: Sequence[str] = LEVELS,
    **explore_options: Any,
) -> IsolationReport:
    """Explore the workload with every connection at each level in turn.

    Connections opened during the exploration (``psycopg2.connect``,
    ``psycopg.connect``) get the level set; a transaction that asks for its
    own level with ``BEGIN ISOLATION LEVEL …`` keeps it. Options are passed
    to :func:`frontrun.explore` (``stop_on_first`` is forced on, so that the
    failing execution is the one classified).
    """
    for level in levels:
        if level not in LEVELS:
            raise ValueError(f"unknown isolation level {level!r}; use one of {LEVELS}")
    explore_options["stop_on_first"] = True
    outcomes = []
    for level in levels:
        with _hooks.overrides(isolation=level):
            result = explore(setup, threads, invariant, **explore_options)
        anomaly = None if result.property_holds is not False else _classify(result)
        outcomes.append(LevelOutcome(level, result, anomaly))
    safe = [o.level for o in outcomes if o.holds is True]
    weakest = min(safe, key=LEVELS.index) if safe else None
    return IsolationReport(outcomes, weakest)
