"""The job's books as the scheduler keeps them: what is done, what runs where, what is pending.

Nothing pending is stored: it is every unit neither done nor in a live part
(a part presumed hung is not live), so a part that ends, fails or is left
behind gives its units back by no longer being there. A unit cut by its
block columns is done once pieces have brought all of them (`partial`).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from fabfile.events import Part


@dataclass
class Run:
    """A part running on a node."""

    part: Part
    node: str
    started: float
    units_before: float = 0.0  # restored from a state file: not this run's work
    units_done: float = 0.0
    grew_at: float | None = None  # when its progress last grew
    hung: bool = False
    keep_last: int | None = None  # a cut is under way: the last unit it keeps
    keep_column: int | None = None  # ... by columns: the last block column of its last unit it keeps
    marks: deque[tuple[float, float]] = field(default_factory=deque)  # (when, units done): its recent pace

    def pace(self, now: float) -> float | None:
        """Seconds per unit of this run, or None before it has shown any."""
        if self.units_done <= self.units_before:
            return None
        return (now - self.started) / (self.units_done - self.units_before)

    def covers(self) -> tuple[range, tuple[int, range] | None]:
        """The units it will render across the full width, and the block columns of
        the one it renders narrowed (a band being cut keeps only its head)."""
        part = self.part
        first_column = part.columns[0] if part.columns else 0
        if self.keep_column is not None:
            return range(part.first, part.last), (part.last, range(first_column, self.keep_column + 1))
        if self.keep_last is not None:
            return range(part.first, self.keep_last + 1), None
        if part.columns:
            return part.whole, (part.last, range(part.columns[0], part.columns[1] + 1))
        return part.units, None


class Ledger:
    def __init__(self, unit_count: int, columns: int = 1, done: set[int] | None = None) -> None:
        self.unit_count = unit_count
        self.columns = columns  # block columns in a unit
        self.done: set[int] = set(done or ())
        self.runs: list[Run] = []
        self.partial: dict[int, set[int]] = {}  # block columns done of a unit cut by columns
        self._attempts: Counter[int] = Counter()

    @property
    def finished(self) -> bool:
        return len(self.done) >= self.unit_count

    def pending(self) -> list[int]:
        """Units neither done, nor in a live part, nor cut by columns."""
        busy = set(self.partial)
        for run in self.runs:
            if not run.hung:
                whole, narrowed = run.covers()
                busy.update(whole)
                if narrowed:
                    busy.add(narrowed[0])
        return [u for u in range(self.unit_count) if u not in self.done and u not in busy]

    def pending_pieces(self) -> list[Part]:
        """The block columns of units cut by columns that nobody renders."""
        taken: dict[int, set[int]] = {}
        for run in self.runs:
            if not run.hung:
                whole, narrowed = run.covers()
                for unit in whole:
                    taken.setdefault(unit, set()).update(range(self.columns))
                if narrowed:
                    taken.setdefault(narrowed[0], set()).update(narrowed[1])
        pieces = []
        for unit, done in sorted(self.partial.items()):
            if unit in self.done:
                continue
            missing = [c for c in range(self.columns) if c not in done and c not in taken.get(unit, ())]
            for first, last in _ranges(missing):
                pieces.append(Part(unit, unit, self._attempts[unit] + 1, (first, last)))
        return pieces

    def new_part(self, first: int, last: int, columns: tuple[int, int] | None = None) -> Part:
        """The next attempt at units first..last."""
        attempt = max(self._attempts[u] for u in range(first, last + 1)) + 1
        for unit in range(first, last + 1):
            self._attempts[unit] = attempt
        return Part(first, last, attempt, columns)

    def running(self, node: str) -> int:
        return sum(1 for run in self.runs if run.node == node)

    def find(self, node: str, part: Part) -> Run | None:
        return next((r for r in self.runs if r.node == node and r.part == part), None)

    def complete(self, part: Part) -> tuple[list[int], set[int]]:
        """Record a finished part: the units it completed, and the block columns it brought
        that no part brought before (of a unit cut by columns)."""
        new = [u for u in part.whole if u not in self.done]
        added: set[int] = set()
        if part.columns and part.last not in self.done:
            columns = self.partial.setdefault(part.last, set())
            added = set(range(part.columns[0], part.columns[1] + 1)) - columns
            columns |= added
            if len(columns) >= self.columns:
                new.append(part.last)
        self.done.update(new)
        return new, added

    def redundant(self, run: Run) -> bool:
        """Whether every unit and column a run renders is done already."""
        whole, narrowed = run.covers()
        if narrowed is not None:
            unit, columns = narrowed
            if unit not in self.done and not set(columns) <= self.partial.get(unit, set()):
                return False
        return all(u in self.done for u in whole)


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted numbers as runs of consecutive ones, (first, last)."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs
