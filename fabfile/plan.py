"""The plan: what a job's units of work are, and how parts are named.

A still is cut into row blocks. With antialiasing they are POV-Ray's
render blocks (+BS, 32 rows by default): antialiasing looks across that
grid, so a band that starts off it would not match a whole-image render.
Without antialiasing every pixel is traced on its own and a band may start
or end on any row, also when it is cut and continued from POV-Ray's state
file (tested against POV-Ray alone with media, photons and focal blur):
units of a few rows let bands split evenly. An animation's unit is one
frame. A part is a run of consecutive units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROWS = "rows"
FRAMES = "frames"
PART_NAME = re.compile(r"^(rows|frames)-(-?\d+)-(-?\d+)$")


@dataclass(frozen=True)
class Span:
    """Rows (1-based, inclusive) or frame numbers (inclusive) of a part."""

    kind: str
    start: int
    end: int

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.start:04d}-{self.end:04d}"

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def label(self) -> str:
        return f"{self.kind} {self.start}-{self.end}" if self.size > 1 else f"{self.kind[:-1]} {self.start}"


@dataclass(frozen=True)
class Plan:
    """The ordered units of a job: row blocks of a still, or frames."""

    kind: str
    units: tuple[tuple[int, int], ...]

    @property
    def total(self) -> int:
        """Rows or frames in all."""
        return sum(end - start + 1 for start, end in self.units)

    def span(self, first: int, last: int) -> Span:
        """The rows or frames of units first..last (indices, inclusive)."""
        return Span(self.kind, self.units[first][0], self.units[last][1])

    def units_of(self, span: Span) -> range:
        """The unit indices a span covers whole."""
        indices = [
            i for i, (start, end) in enumerate(self.units) if start >= span.start and end <= span.end
        ]
        return range(indices[0], indices[-1] + 1) if indices else range(0)


FINE_ROWS = 4  # rows in a unit of a still without antialiasing


def still_unit_rows(antialias: bool, block_size: int = 32) -> int:
    """Rows in a still's unit: POV-Ray's render block with antialiasing, else a few."""
    return block_size if antialias else FINE_ROWS


def plan_still(height: int, block: int = 32) -> Plan:
    """Row blocks of `block` rows, the last one shorter."""
    if height < 1 or block < 1:
        raise ValueError("height and block must be positive")
    units = tuple((start, min(start + block - 1, height)) for start in range(1, height + 1, block))
    return Plan(ROWS, units)


def plan_frames(frames: tuple[int, ...]) -> Plan:
    """One unit per frame, in frame order."""
    if not frames:
        raise ValueError("an animation needs at least one frame")
    return Plan(FRAMES, tuple((frame, frame) for frame in frames))


def parse_part_name(name: str) -> Span | None:
    """The span a part file or folder is named after, or None."""
    match = PART_NAME.match(name)
    if not match:
        return None
    return Span(match.group(1), int(match.group(2)), int(match.group(3)))


def rescale_costs(old: Plan, old_costs: list[float], new: Plan) -> list[float]:
    """Each new row block's share of a still's cost, from another render of it.

    The old costs are spread evenly over their rows and read back by the
    fraction of the image height each new block covers, so a render at another
    size or block grid gets the same shape of cost.
    """
    old_height, new_height = old.total, new.total
    edges = [(start - 1) / old_height for start, _ in old.units] + [1.0]
    weights: list[float] = []
    first = 0  # both lists run top to bottom: one sweep, not every pair
    for start, end in new.units:
        low, high = (start - 1) / new_height, end / new_height
        while first < len(old_costs) and edges[first + 1] <= low:
            first += 1
        weight = 0.0
        index = first
        while index < len(old_costs) and edges[index] < high:
            overlap = min(high, edges[index + 1]) - max(low, edges[index])
            if overlap > 0:
                weight += old_costs[index] * overlap / (edges[index + 1] - edges[index])
            index += 1
        weights.append(weight)
    return weights
