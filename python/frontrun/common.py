"""Schedules of trace markers: which thread runs to which marker, in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

__all__ = ["Schedule", "Step"]


@dataclass(frozen=True)
class Step:
    """Let ``thread`` run until it is about to execute the line tagged
    ``# frontrun: <marker>``, then pause it there."""

    thread: str
    marker: str

    def __post_init__(self) -> None:
        for field, value in (("thread", self.thread), ("marker", self.marker)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"Step.{field} must be a non-empty str, got {value!r}")

    def __iter__(self) -> Iterator[str]:
        """Unpack like a pair: ``thread, marker = step``."""
        return iter((self.thread, self.marker))


class Schedule(Sequence[Step]):
    """An ordered list of steps. When it is used up, every thread runs freely."""

    __slots__ = ("_steps",)

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        items = tuple(steps)
        for i, step in enumerate(items):
            if not isinstance(step, Step):
                raise TypeError(f"Schedule item {i} must be a Step, got {step!r}")
        self._steps: tuple[Step, ...] = items

    @overload
    def __getitem__(self, index: int) -> Step: ...
    @overload
    def __getitem__(self, index: slice) -> Schedule: ...
    def __getitem__(self, index: int | slice) -> Step | Schedule:
        if isinstance(index, slice):
            return Schedule(self._steps[index])
        return self._steps[index]

    def __len__(self) -> int:
        return len(self._steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self._steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self._steps == other._steps

    def __hash__(self) -> int:
        return hash(self._steps)

    def __repr__(self) -> str:
        return f"Schedule([{', '.join(map(repr, self._steps))}])"

    @property
    def threads(self) -> list[str]:
        """Thread names in order of first appearance."""
        return list(dict.fromkeys(step.thread for step in self._steps))
