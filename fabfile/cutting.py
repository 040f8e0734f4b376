"""Where to cut a running band: pure arithmetic over what its rest is forecast to cost.

A band is cut after the unit (or, in a part of one unit, the block column)
in progress: it keeps that one and some after it, and continues from
POV-Ray's state file; the rest goes to an idle slot. The split is placed so
that both sides end together, each paying a POV-Ray start, and the cut is
made only when the band then ends sooner by more than the cut costs its own
core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fabfile.costs import UnitCosts
from fabfile.ledger import Run


@dataclass(frozen=True)
class CutPlan:
    keep: int  # the last unit (or block column) the band keeps
    given: list[tuple[int, int]]  # the first and last of each piece given away


@dataclass(frozen=True)
class Costing:
    """What a cut is weighed with."""

    now: float
    costs: UnitCosts  # an earlier render's costs, if any
    start_cost: float  # seconds a POV-Ray start costs a piece's core
    kept_cost: float  # ... and a cut band's continuation (less when it started early)
    columns: int  # block columns in a unit


def plan_cuts(runs: Sequence[Run], idle: int, costing: Costing) -> list[tuple[Run, CutPlan, bool]]:
    """The cuts to make for `idle` slots among running bands: the bands that will end
    last, one piece each, where a cut pays. Each comes as (run, plan, whether by block
    columns). (A band cut into several pieces at once, for several idle slots, did no
    better in the simulator: bench/NOTES.md.)"""
    left: list[tuple[float, int]] = []  # a cuttable run's seconds left at its pace, and its index
    for index, run in enumerate(runs):
        pace = run.pace(costing.now)
        if run.hung or run.keep_last is not None or run.keep_column is not None or pace is None:
            continue
        if _room(run, costing.columns):
            left.append(((run.part.count - run.units_done) * pace, index))
    plans = []
    for _, index in sorted(left, key=lambda item: (-item[0], item[1])):
        if len(plans) == idle:
            break
        plan = _plan_run(runs[index], costing)
        if plan is not None:
            plans.append((runs[index], *plan))
    return plans


def _room(run: Run, columns: int) -> int:
    """How many pieces a run can give: the units after the one in progress, or, in a
    part of one unit, the block columns after the one in progress."""
    part = run.part
    in_progress = min(int(run.units_done), part.count - 1)
    if in_progress < part.count - 1 and not part.columns:
        return part.count - in_progress - 1
    # Only a part of one unit: narrowed at its right end, its blocks keep their numbers in
    # POV-Ray's state file. A band's would not (see NodeJob._povray_args).
    if columns < 2 or part.count > 1:
        return 0
    last = part.columns[1] if part.columns else columns - 1
    return last - _column_position(run, columns)[0]


def _column_position(run: Run, columns: int) -> tuple[int, float]:
    """The block column in progress of a part of one unit, and how far along it is."""
    first, last = run.part.columns or (0, columns - 1)
    position = first + run.units_done * (last - first + 1)
    in_progress = min(int(position), last)
    return in_progress, position - in_progress


def _plan_run(run: Run, costing: Costing) -> tuple[CutPlan, bool] | None:
    """A run's cut for an idle slot, and whether it is by block columns.

    What is left of a band is forecast by an earlier render's costs scaled to this
    run's pace, else by this run's pace, and a unit's block columns evenly by that
    pace: with nothing known of the rows to come, the rest is shared by count."""
    pace = run.pace(costing.now) or 0.0
    part = run.part
    in_progress = min(int(run.units_done), part.count - 1)
    if in_progress < part.count - 1:
        rest = range(part.first + in_progress + 1, part.last + 1)
        costs = costing.costs
        spent = costs.prior_between(part.first, run.units_before, run.units_done)
        if spent > 0 and costs.prior is not None:
            after = [costs.prior[u] * (costing.now - run.started) / spent for u in rest]
        else:  # the pace so far: the rows to come are no likelier dearer than cheaper
            after = [pace] * len(rest)
        left = (in_progress + 1 - run.units_done) * pace
        plan = plan_cut(left, after, rest.start, costing.start_cost, costing.kept_cost, known=spent > 0)
        return None if plan is None else (plan, False)
    first, last = part.columns or (0, costing.columns - 1)
    column, into = _column_position(run, costing.columns)
    block = pace / (last - first + 1)
    cost = costing.start_cost
    plan = plan_cut((1 - into) * block, [block] * (last - column), column + 1, cost, cost, known=False)
    return None if plan is None else (plan, True)


def plan_cut(
    left: float,
    after: Sequence[float],
    first_after: int,
    start_cost: float,
    kept_cost: float,
    known: bool = True,
) -> CutPlan | None:
    """The cut of a band with `left` seconds of the unit in progress, then units
    `first_after`, ... costing `after`, for an idle slot; None if no cut pays. The
    band's continuation costs `kept_cost`, the piece `start_cost`.

    When the costs are not `known` (only the pace so far), the rest is shared by
    count and the band keeps no more than its share: a piece that proves dear can
    be cut again from its start, while a band left with its last unit cannot."""
    bounds = split_evenly(left, after, 1, start_cost, kept_cost) if known else split_by_count(len(after), 1)
    if not after or bounds is None:
        return None
    kept, given = left + sum(after[: bounds[0]]) + kept_cost, sum(after[bounds[0] :]) + start_cost
    if left + sum(after) - max(kept, given) < kept_cost:
        return None
    return CutPlan(first_after - 1 + bounds[0], [(first_after + bounds[0], first_after + len(after) - 1)])


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
