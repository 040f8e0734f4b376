"""How long a job has left, from the pace its parts have shown: a pure estimate.

The work left is every pending unit and what each live part has still to do
of its own, weighed by what units cost (an earlier render's costs, else
those measured so far, else all alike). Each live part does its share at
the pace it has shown lately (its last 2 s of progress, `Run.marks`: a band
that reached dear rows is slow from then on; once it has run a moment),
pending work goes at the mean pace, and a still's cuts spread it all over
the slots, except a band's last few start-ups' worth, which no cut pays to
share; without cuts, the job ends no sooner than its slowest part. A job
whose parts do not report progress (frames) is paced by its finished parts.
The coordinator shows it; the simulator (`bench/simulate.py`) judges it
against the end it knows (bench/NOTES.md has what it found).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from fabfile.ledger import Run
from fabfile.scheduler import Scheduler

MIN_EVIDENCE = 1.0  # seconds a part runs before its own pace is trusted
CUT_FLOOR = 3.0  # start-ups: a band with less left than this is not worth cutting, so it ends alone


def unit_weights(scheduler: Scheduler) -> list[float]:
    """Each unit's relative cost: an earlier render's, else measured (the mean where not), else 1."""
    costs = scheduler.costs
    if costs.prior is not None:
        return [max(c, 0.0) for c in costs.prior]
    if costs.measured:
        mean = statistics.fmean(costs.measured.values())
        return [costs.measured.get(unit, mean) for unit in range(scheduler.unit_count)]
    return [1.0] * scheduler.unit_count


def span_weight(weights: Sequence[float], first: int, start: float, end: float) -> float:
    """The weight from `start` to `end` units into a part beginning at unit `first` (fractions count)."""
    total = 0.0
    for index in range(max(0, math.floor(start)), math.ceil(end)):
        share = min(end, index + 1) - max(start, index)
        if share > 0 and first + index < len(weights):
            total += weights[first + index] * share
    return total


def remaining_seconds(scheduler: Scheduler, now: float) -> float | None:
    """Seconds until the job ends, or None before any pace is known."""
    if scheduler.finished:
        return 0.0
    weights = unit_weights(scheduler)
    runs = [run for run in scheduler.runs if not run.hung]
    paces = {id(run): pace for run in runs if (pace := _pace(run, weights, now)) is not None}
    if paces:
        mean_pace = statistics.fmean(paces.values())
    elif scheduler.seconds_per_unit:  # frames: nothing streams back; finished parts tell
        mean_pace = statistics.fmean(weights) / statistics.fmean(scheduler.seconds_per_unit)
    else:
        return None
    # Each live part finishes its own share at its own pace (a dear band is slow all along);
    # pending work goes at the mean pace. Cuts spread it all over the slots.
    if paces:  # a part with no pace yet goes at the mean pace once its start-up is paid
        startup = scheduler.startup or 0.0
        own = [_left(run, weights) / paces[id(run)] if id(run) in paces
               else _left(run, weights) / mean_pace + max(0.0, startup - (now - run.started)) for run in runs]
    else:  # frames: the finished parts' wall time per unit holds their start-up
        own = [max(0.0, _left(run, weights) / mean_pace - (now - run.started)) for run in runs]
    pending = sum(weights[unit] for unit in scheduler.pending()) / mean_pace
    spread = (sum(own) + pending) / max(1, scheduler.capacity)
    # The last part still writes its image and is fetched after its last row.
    finish = statistics.median(scheduler.finish_lags) if scheduler.finish_lags and runs else 0.0
    # A still that is cut to balance ends when its work is spread, but no sooner than a band
    # too short to be worth cutting ends by itself (a piece cut off pays a start-up first);
    # anything else ends no sooner than its slowest part.
    if scheduler.cuttable:
        floor = CUT_FLOOR * scheduler.start_cost
        return finish + max(spread, *(min(o, floor) for o in own), 0.0)
    return finish + max(spread, *own, 0.0)


def _left(run: Run, weights: Sequence[float]) -> float:
    units, _ = run.covers()
    end = (units.stop - run.part.first) if units else run.part.count
    return span_weight(weights, run.part.first, run.units_done, max(end, run.units_done))


def _pace(run: Run, weights: Sequence[float], now: float) -> float | None:
    """Weight per wall second this run has shown lately (its last few seconds: a band that
    reached dear rows is slow from then on); None until it has shown enough: a part just
    started has paid its start-up and little else, and would look far slower than it is."""
    elapsed = now - run.started
    if elapsed < MIN_EVIDENCE or run.units_done <= run.units_before:
        return None
    if len(run.marks) >= 2 and run.marks[-1][0] - run.marks[0][0] >= MIN_EVIDENCE / 2:
        (then, before), (_, latest) = run.marks[0], run.marks[-1]
        done = span_weight(weights, run.part.first, before, latest)
        return done / max(1e-9, now - then) if done > 0 else None
    done = span_weight(weights, run.part.first, run.units_before, run.units_done)
    return done / elapsed if done > 0 else None


SETTLE = 1.0  # seconds: how fast the end shown follows a new estimate (bench/NOTES.md)


class ShownEta:
    """The ETA shown: the end it implies follows each new estimate over a second or two,
    so one noisy look (a piece just cut, a band between dear rows) does not swing it."""

    def __init__(self, settle: float = SETTLE) -> None:
        self.settle = settle
        self.end: float | None = None  # the job's end as shown, on the scheduler's clock
        self.at = 0.0

    def update(self, now: float, seconds: float | None) -> float | None:
        """What to show at `now` for this estimate of the seconds left."""
        if seconds is None or seconds <= 0.0:
            self.end = None if seconds is None else now
            return seconds
        end = now + seconds
        if self.end is None or self.settle <= 0:
            self.end = end
        else:
            self.end += (1.0 - math.exp(-(now - self.at) / self.settle)) * (end - self.end)
        self.at = now
        return max(0.0, self.end - now)
