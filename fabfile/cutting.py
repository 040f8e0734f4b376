"""Where to cut a running band: pure arithmetic over what its rest is forecast to cost.

A band is cut after the unit (or, in its last unit, the block column) in
progress: it keeps that one and some after it, and continues from POV-Ray's
state file; the rest goes out in pieces, one per idle slot. The split is
placed so that every side ends together, each paying a POV-Ray start, and
the cut is made only when the band then ends sooner by more than the cut
costs its own core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CutPlan:
    keep: int  # the last unit (or block column) the band keeps
    given: list[tuple[int, int]]  # the first and last of each piece given away


def plan_cut(
    left: float,
    after: Sequence[float],
    first_after: int,
    pieces: int,
    start_cost: float,
    kept_cost: float,
    known: bool = True,
) -> CutPlan | None:
    """The cut of a band with `left` seconds of the unit in progress, then units
    `first_after`, ... costing `after`, for up to `pieces` idle slots; None if no
    cut pays. The band's continuation costs `kept_cost`, a piece `start_cost`.

    When the costs are not `known` (only the pace so far), the rest is shared by
    count and the band keeps no more than its share: a piece that proves dear can
    be cut again from its start, while a band left with its last unit cannot."""
    for count in range(min(pieces, len(after)), 0, -1):
        bounds = split_evenly(left, after, count, start_cost, kept_cost) if known else split_by_count(len(after), count)
        if bounds is None:
            continue
        edges = [*bounds, len(after)]
        ends = [left + sum(after[: bounds[0]]) + kept_cost]
        ends += [sum(after[a:b]) + start_cost for a, b in zip(edges, edges[1:], strict=False)]
        if left + sum(after) - max(ends) >= kept_cost:
            given = [(first_after + a, first_after + b - 1) for a, b in zip(edges, edges[1:], strict=False)]
            return CutPlan(first_after - 1 + bounds[0], given)
    return None


def split_by_count(units: int, pieces: int) -> list[int] | None:
    """`units` after the one in progress shared by count among the band and `pieces`
    others, the band keeping the smallest share: each piece's first index."""
    if units < pieces:
        return None
    kept = units // (pieces + 1)
    given = units - kept
    return [kept + (given * index) // pieces for index in range(pieces)]


def split_evenly(
    left: float, after: Sequence[float], pieces: int, start_cost: float, kept_cost: float
) -> list[int] | None:
    """Where the units `after` a band's unit in progress are split, so that the band
    (with `left` seconds of that unit, then the units it keeps, then `kept_cost` for
    its continuation's start) and each of `pieces` others (each paying `start_cost`)
    end as near together as can be: the index of each piece's first unit, or None
    if some piece would be empty."""
    total = left + sum(after)
    finish = (total + kept_cost + pieces * start_cost) / (pieces + 1)
    bounds: list[int] = []
    spent = left + kept_cost
    for index, cost in enumerate(after):
        if len(bounds) < pieces and spent + cost / 2 > finish:
            bounds.append(index)
            spent = start_cost
        spent += cost
    if len(bounds) < pieces:
        return None
    return bounds
