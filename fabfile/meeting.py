"""Two parts that render a still toward each other and meet where its cost says.

On two part slots, a still's first render (no costs known yet) starts with
one part over the whole image from the top, as POV-Ray renders, and one
over the whole image from the bottom: POV-Ray's block step `+RS<blocks - 1>`
visits block 0 first, then the last block, the one before it, and so on, so
that part renders its block rows bottom-up, each from right to left. When
the two are about to meet, the farm picks the block where both end together
by what the blocks next to them cost, stops each there (by its POV-Ray's
count of pixels) and continues each from its state file (+C) over its own
side, which renders nothing more and writes every block it has. No cut has
to guess the cost of rows not rendered yet, and no third POV-Ray starts.

The bottom-up part's continuation renders the rows below the block row where
they met, with the block step of that smaller area: its blocks keep their
numbers, since the area is the tail of the first one in POV-Ray's order (all
but block 0, which the top-down part renders too; its copy is not used).

Pure: the arithmetic of block counts and of where to meet, tested alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Grid:
    """A band's POV-Ray blocks: the pixel rows of each block row (top to bottom) and
    the pixel columns of each block column (left to right). Blocks are numbered in
    POV-Ray's default order: row by row from the top, each row from the left."""

    rows: tuple[int, ...]
    widths: tuple[int, ...]

    @property
    def columns(self) -> int:
        return len(self.widths)

    @property
    def blocks(self) -> int:
        return len(self.rows) * len(self.widths)

    def pixels(self, block: int) -> int:
        return self.rows[block // self.columns] * self.widths[block % self.columns]

    def pixels_before(self, block: int) -> int:
        """Pixels in blocks 0..block-1."""
        row, column = divmod(block, self.columns)
        return sum(self.rows[:row]) * sum(self.widths) + (self.rows[row] * sum(self.widths[:column]) if column else 0)

    @property
    def total(self) -> int:
        return sum(self.rows) * sum(self.widths)

    def top_down_count(self, kept: int) -> int:
        """A top-down POV-Ray's count once it has finished blocks 0..kept-1."""
        return self.pixels_before(kept)

    def bottom_up_count(self, kept_from: int) -> int:
        """A bottom-up POV-Ray's count once it has finished blocks kept_from..the last
        (block 0 came first, kept_from >= 1)."""
        return self.pixels(0) + self.total - self.pixels_before(kept_from)

    def top_down_done(self, pixels: int) -> int:
        """Blocks a top-down POV-Ray has finished at that count."""
        return self._blocks_within(pixels, self.top_down_count)

    def bottom_up_from(self, pixels: int) -> int:
        """The first of the blocks a bottom-up POV-Ray has finished, from the last, at
        that count (blocks when it has finished only block 0, or nothing)."""
        return self.blocks - self._blocks_within(pixels, lambda done: self.bottom_up_count(self.blocks - done))

    def _blocks_within(self, pixels: int, count: Callable[[int], int]) -> int:
        """The most blocks done whose `count` is within `pixels` (count grows with them)."""
        low, high = 0, self.blocks
        while low < high:
            middle = (low + high + 1) // 2
            if count(middle) <= pixels:
                low = middle
            else:
                high = middle - 1
        return low


def block_step(blocks: int) -> int | None:
    """POV-Ray's block step that renders an area of `blocks` blocks bottom-up, block 0
    first; None where there are too few for a step (two blocks or fewer keep their order)."""
    return blocks - 1 if blocks >= 3 else None


def meeting_block(
    done_top: int, bottom_from: int, top_costs: Sequence[float], bottom_costs: Sequence[float]
) -> tuple[int, float]:
    """Where two parts meet: how many blocks the top-down one keeps (0..k-1; the
    bottom-up one keeps k..the last), so that both end soonest, and when that is
    (seconds from now).

    `done_top` blocks are done from the top, and from `bottom_from` on from the
    bottom; `top_costs[i]` and `bottom_costs[i]` are what block i of the blocks
    between them (`done_top` + i) should cost each side. Parts that have passed
    each other meet where the top-down one is.
    """
    gap = bottom_from - done_top
    if gap <= 0:
        return done_top, 0.0
    top, bottom = 0.0, sum(bottom_costs[:gap])
    best = (max(top, bottom), done_top)
    for index in range(gap):
        top += top_costs[index]
        bottom -= bottom_costs[index]
        best = min(best, (max(top, bottom), done_top + index + 1))
    return best[1], best[0]
