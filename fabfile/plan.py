"""The plan: what a job's units of work are, and how parts are named.

A still is cut into row blocks. With antialiasing they are POV-Ray's
render blocks (+BS, 32 rows by default): antialiasing looks across that
grid, so a band that starts off it would not match a whole-image render.
Without antialiasing every pixel is traced on its own and a band may start
or end on any row, also when it is cut and continued from POV-Ray's state
file (tested against POV-Ray alone with media, photons and focal blur):
units of a few rows let bands split evenly. An animation's unit is one
frame. A part is a run of consecutive units.

Near the end of a still, the last block row of a running band can be split by
columns (POV-Ray's +SC/+EC, on the same block grid): the band keeps the left
of it, and the rest goes to an idle core as a rectangle of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROWS = "rows"
FRAMES = "frames"
PART_NAME = re.compile(r"^(rows|frames)-(-?\d+)-(-?\d+)(?:-c(\d+)-(\d+)-(\d+))?$")


@dataclass(frozen=True)
class Span:
    """Rows (1-based, inclusive) or frame numbers (inclusive) of a part.

    `columns` (1-based, inclusive) narrows rows `columns_from`..end to those
    columns: a band whose last block row was split, or a rectangle of one.
    """

    kind: str
    start: int
    end: int
    columns: tuple[int, int] | None = None
    columns_from: int = 0

    @property
    def name(self) -> str:
        name = f"{self.kind}-{self.start:04d}-{self.end:04d}"
        if self.columns:
            name += f"-c{self.columns_from:04d}-{self.columns[0]:04d}-{self.columns[1]:04d}"
        return name

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def label(self) -> str:
        label = f"{self.kind} {self.start}-{self.end}" if self.size > 1 else f"{self.kind[:-1]} {self.start}"
        if self.columns:
            label += f" (columns {self.columns[0]}-{self.columns[1]} of rows {self.columns_from}-{self.end})"
        return label

    def narrowed(self, first_column: int, last_column: int, from_row: int) -> Span:
        """This span with rows from_row..end narrowed to the given columns."""
        return Span(self.kind, self.start, self.end, (first_column, last_column), from_row)

    def pieces(self) -> list[Span]:
        """Whole-width bands and rectangles that make up this span (a band whose last
        block row was split is the rows above it, and a rectangle)."""
        if not self.columns or self.columns_from <= self.start:
            return [self]
        return [Span(self.kind, self.start, self.columns_from - 1),
                Span(self.kind, self.columns_from, self.end, self.columns, self.columns_from)]


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
        """The unit indices a span covers whole (across the full width)."""
        last = span.columns_from - 1 if span.columns else span.end
        indices = [i for i, (start, end) in enumerate(self.units) if start >= span.start and end <= last]
        return range(indices[0], indices[-1] + 1) if indices else range(0)


FINE_ROWS = 1  # rows in a unit of a still without antialiasing: a band starts or is cut on any row


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
    span = Span(match.group(1), int(match.group(2)), int(match.group(3)))
    if match.group(4):
        span = span.narrowed(int(match.group(5)), int(match.group(6)), int(match.group(4)))
    return span


def column_ranges(width: int, block: int) -> list[tuple[int, int]]:
    """The image's block columns, as (first, last) pixel columns, 1-based."""
    return [(start, min(start + block - 1, width)) for start in range(1, width + 1, block)]


def covered_units(plan: Plan, spans: list[Span], width: int) -> set[int]:
    """Units the spans cover: whole, or by rectangles whose columns join up across the width."""
    pieces = [piece for span in spans for piece in span.pieces()]
    done = {unit for piece in pieces if not piece.columns for unit in plan.units_of(piece)}
    for rows in joined_rectangles(pieces, width):
        done.update(plan.units_of(rows))
    return done


def joined_rectangles(spans: list[Span], width: int) -> dict[Span, list[Span]]:
    """The rectangles among spans, by the rows they narrow, for the rows whose
    rectangles' columns join up across the width."""
    groups: dict[Span, list[Span]] = {}
    for span in spans:
        if span.columns:
            groups.setdefault(Span(span.kind, span.start, span.end), []).append(span)
    return {rows: pieces for rows, pieces in groups.items() if joined([p.columns for p in pieces], width)}


def joined(columns: list[tuple[int, int]], width: int) -> bool:
    """Whether column ranges cover 1..width."""
    reach = 0
    for first, last in sorted(columns):
        if first > reach + 1:
            return False
        reach = max(reach, last)
    return reach >= width


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
