"""What a still's units (row blocks) cost: measured, or known from an earlier render.

Pure bookkeeping for the scheduler: the CPU seconds of each unit rendered
(`measured`), from POV-Ray's own count when a part ends or is stopped,
shared among its units by its log's block times where the log tells. They
size later parts of this job and the first bands of the next render of the
same scene (`prior`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class UnitCosts:
    count: int
    prior: Sequence[float] | None = None  # each unit's cost in an earlier render
    measured: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prior is not None and (len(self.prior) != self.count or not sum(self.prior) > 0):
            self.prior = None
        self._begun: dict[int, float] = {}  # the cost of a unit's start, by a run cut inside it

    def estimated(self, unit: int) -> float:
        """A unit's CPU cost: measured, else the dearer of its nearest measured neighbours
        (a guess on the dear side keeps a part from swallowing an unseen nebula whole),
        else the earlier render's, else 1."""
        if unit in self.measured:
            return self.measured[unit]
        if not self.measured:
            # A row an earlier render found nearly free is nearly free (its log can put a
            # block's time on its last row): not the unknown 1 of a first render.
            return max(self.prior[unit], 1e-6) if self.prior else 1.0
        below = max((u for u in self.measured if u < unit), default=None)
        above = min((u for u in self.measured if u > unit), default=None)
        return max(self.measured[u] for u in (below, above) if u is not None)

    def trusted(self, unit: int) -> bool:
        """Measured, or next to a measured unit: its estimate can be trusted."""
        return any(u in self.measured for u in (unit - 1, unit, unit + 1))

    def prior_between(self, first_unit: int, start: float, end: float) -> float:
        """The earlier render's cost from `start` to `end` units of a band starting at
        `first_unit` (fractions of a unit count in share)."""
        if self.prior is None:
            return 0.0
        total = 0.0
        for index in range(math.floor(start), math.ceil(end)):
            share = min(end, index + 1) - max(start, index)
            if share > 0 and first_unit + index < self.count:
                total += self.prior[first_unit + index] * share
        return total

    def record(
        self,
        units: range,
        cpu: float,
        weights: Sequence[float] | None = None,
        first_share: float = 1.0,
        last_share: float = 1.0,
    ) -> None:
        """CPU seconds spent on `units`, shared by `weights` (what each took, as POV-Ray's
        log told), else by how much of each the run rendered: a run that continued a
        cut part rendered `first_share` of its first unit, a run cut inside its last
        unit `last_share` of it (the run continuing it adds the rest)."""
        if not units:
            return
        if weights is None or len(weights) != len(units) or not sum(weights) > 0:
            weights = [1.0] * len(units)
            weights[0] = first_share if len(units) > 1 else min(first_share, last_share)
            weights[-1] = min(weights[-1], last_share)
        total = sum(weights) or 1.0
        for unit, weight in zip(units, weights, strict=True):
            self.measured[unit] = max(cpu * weight / total, 1e-6) + self._begun.pop(unit, 0.0)
        if last_share < 1.0:
            self._begun[units[-1]] = self.measured[units[-1]]
