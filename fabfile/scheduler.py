"""The scheduler: who renders what next, what to retry, whom to leave out.

Pure bookkeeping, no I/O and no clock of its own (callers pass `now`), so it
is tested without SSH. Work is handed out dynamically in guided sizes: a
free slot takes about remaining / (factor * slots) units, so parts start big
and shrink towards the end and no node is left with a long tail while the
others idle. A part that fails goes back to the queue; a node that fails
`max_failures` times is left out. A part running far longer than parts of
its size have taken is presumed hung: its units are handed to others and its
node gets nothing more until that part comes back.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    """Units first..last (indices into the plan), one attempt of them."""

    first: int
    last: int
    attempt: int = 1

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def units(self) -> range:
        return range(self.first, self.last + 1)


@dataclass
class Running:
    part: Part
    node: str
    started: float
    presumed_hung: bool = False


@dataclass
class Scheduler:
    unit_count: int
    slots: int = 1
    done: set[int] = field(default_factory=set)
    guided_factor: float = 2.0
    max_part_units: int | None = None
    max_failures: int = 2
    hang_grace: float = 10.0
    hang_factor: float = 4.0

    def __post_init__(self) -> None:
        self.done = set(self.done)
        self.pending: list[int] = [i for i in range(self.unit_count) if i not in self.done]
        self.running: list[Running] = []
        self.failures: Counter[str] = Counter()
        self.excluded: dict[str, str] = {}
        self.stalled: set[str] = set()
        self.seconds_per_unit: list[float] = []
        self._attempts: Counter[int] = Counter()

    # -- state -----------------------------------------------------------
    @property
    def finished(self) -> bool:
        return len(self.done) >= self.unit_count

    def usable(self, node: str) -> bool:
        return node not in self.excluded and node not in self.stalled

    def running_on(self, node: str) -> list[Running]:
        return [r for r in self.running if r.node == node]

    # -- handing out work ------------------------------------------------
    def next_part(self, node: str, now: float) -> Part | None:
        """The next part for a free slot of `node`, or None for now."""
        if not self.usable(node) or not self.pending:
            return None
        size = max(1, math.ceil(len(self.pending) / (self.guided_factor * max(1, self.slots))))
        if self.max_part_units:
            size = min(size, self.max_part_units)
        first = self.pending[0]
        last = first
        while last + 1 - first < size and (last + 1) in self.pending_set():
            last += 1
        for unit in range(first, last + 1):
            self.pending.remove(unit)
        attempt = max(self._attempts[u] for u in range(first, last + 1)) + 1
        for unit in range(first, last + 1):
            self._attempts[unit] = attempt
        part = Part(first, last, attempt)
        self.running.append(Running(part, node, now))
        return part

    def pending_set(self) -> set[int]:
        return set(self.pending)

    # -- outcomes --------------------------------------------------------
    def complete(self, part: Part, node: str, seconds: float) -> bool:
        """Record a finished part; False when every unit was done already."""
        self._forget(part, node)
        self.stalled.discard(node)
        new = [u for u in part.units if u not in self.done]
        if not new:
            return False
        self.done.update(part.units)
        self.pending = [u for u in self.pending if u not in self.done]
        self.seconds_per_unit.append(seconds / part.count)
        return True

    def fail(self, part: Part, node: str, reason: str, node_fault: bool = True) -> bool:
        """Requeue a failed part; True when the node is now left out."""
        self._forget(part, node)
        self.stalled.discard(node)
        self._requeue(part)
        if not node_fault:
            return False
        self.failures[node] += 1
        if self.failures[node] >= self.max_failures:
            self.exclude(node, reason)
            return True
        return False

    def exclude(self, node: str, reason: str) -> list[Part]:
        """Leave a node out; its running parts go back to the queue."""
        self.excluded.setdefault(node, reason)
        lost = [r.part for r in self.running if r.node == node]
        for part in lost:
            self._forget(part, node)
            self._requeue(part)
        return lost

    def expected_seconds(self, part: Part) -> float | None:
        """How long a part should take at the slowest pace seen, or None."""
        if not self.seconds_per_unit:
            return None
        return part.count * max(self.seconds_per_unit)

    def overdue(self, now: float) -> list[Running]:
        """Parts newly presumed hung; their units go back to the queue."""
        hung: list[Running] = []
        for run in self.running:
            if run.presumed_hung:
                continue
            expected = self.expected_seconds(run.part)
            if expected is None:
                continue
            if now - run.started > max(self.hang_grace, self.hang_factor * expected):
                run.presumed_hung = True
                self.stalled.add(run.node)
                self._requeue(run.part)
                hung.append(run)
        return hung

    # -- helpers ---------------------------------------------------------
    def _forget(self, part: Part, node: str) -> None:
        self.running = [r for r in self.running if not (r.part == part and r.node == node)]

    def _requeue(self, part: Part) -> None:
        busy = {u for r in self.running if not r.presumed_hung for u in r.part.units}
        back = [u for u in part.units if u not in self.done and u not in busy and u not in self.pending]
        self.pending = sorted(self.pending + back)
