"""The scheduler: who renders what next, what to retry, whom to leave out.

Pure bookkeeping, no I/O and no clock of its own (callers pass `now`), so it
is tested without SSH.

Rows are not equally dear (a nebula in one corner can make some rows 50x
dearer than the rest), so parts are sized by estimated cost, not by rows:

* a unit's estimated cost is that of the dearer of its nearest measured
  neighbours, and a free slot takes the dearest pending region first, grown
  into a run of about remaining cost / (factor * capacity): big parts early,
  small ones near the end, so that no node is left finishing long after the
  others; units far from any measurement are guesses, and a part takes only
  a share of them;
* an optional first wave of `probes` single units spread over the image maps
  the cost early (off by default: each pays a POV-Ray start-up);
* a part's cost is measured as POV-Ray's CPU seconds, which do not swell
  when several parts share a core.

When nothing is left to hand out and a core is idle, a running still part
can be cut: POV-Ray is interrupted, keeps the rows it has (its state file)
and continues the first half of what is left (`+C`), while the second half
goes to the idle core. `cut_point` decides from the part's progress whether
that pays for the extra POV-Ray start.

A part in its last unit cannot be cut by rows. With a core idle and the part
far from its end, that unit's block columns are cut instead
(`column_cut_point`, `cut_columns`): the part keeps the columns left of the
cut, and the rest goes out as a piece of its own, before anything else. A
unit split so is done once its pieces have covered all its columns.

A part that fails goes back to the queue; a node that fails `max_failures`
times is left out. A part running far longer than parts of its size have
taken is presumed hung: its units are handed to others and its node gets
nothing more until that part comes back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    """Units first..last (indices into the plan), one attempt of them; `columns`
    (block column indices, inclusive) narrows its last unit to those columns."""

    first: int
    last: int
    attempt: int = 1
    columns: tuple[int, int] | None = None

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
    slots: int = 1  # parts that may run at once, all nodes together
    done: set[int] = field(default_factory=set)
    guided_factor: float = 1.5
    max_part_units: int | None = None
    max_failures: int = 2
    hang_grace: float = 10.0
    hang_factor: float = 4.0
    capacity: int | None = None  # cores that render at once; slots beyond them only hide start-up
    min_part_cost: float = 0.0  # seconds of work below which a part is not worth its own start
    probes: int = 0  # single-unit parts spread over the image first (each pays a POV-Ray start-up)
    even_start: bool = False  # before anything is measured, one equal part per slot (cuts balance later)
    prior: list[float] | None = None  # each unit's cost in an earlier render, to make the even start even in cost
    column_blocks: int = 1  # block columns in a unit: more than one lets a unit be split (cut_columns)

    def __post_init__(self) -> None:
        self.done = set(self.done)
        self.pending: list[int] = [i for i in range(self.unit_count) if i not in self.done]
        self.running: list[Running] = []
        self.failures: Counter[str] = Counter()
        self.excluded: dict[str, str] = {}
        self.stalled: set[str] = set()
        self.seconds_per_unit: list[float] = []
        self.unit_cost: dict[int, float] = {}
        self._attempts: Counter[int] = Counter()
        self._probes = self._probe_order()
        self._retry: set[int] = set()
        self._first_wave = self._even_runs() if self.even_start else []
        self.pieces: list[Part] = []  # the columns cut off units, to hand out before anything else
        self.partial: dict[int, set[int]] = {}  # block columns done of a unit split by columns
        self._begun: dict[int, float] = {}  # the cost of a unit's start, by a run cut inside it

    # -- state -----------------------------------------------------------
    @property
    def finished(self) -> bool:
        return len(self.done) >= self.unit_count

    @property
    def waiting(self) -> bool:
        """Whether anything is left to hand out."""
        return bool(self.pending or self.pieces)

    def usable(self, node: str) -> bool:
        return node not in self.excluded and node not in self.stalled

    # -- handing out work ------------------------------------------------
    def next_part(self, node: str, now: float) -> Part | None:
        """The next part for a free slot of `node`, or None for now."""
        if not self.usable(node):
            return None
        if self.pieces:  # the columns cut off a unit: the end of the job waits for them
            piece = self.pieces.pop(0)
            self.running.append(Running(piece, node, now))
            return piece
        if not self.pending:
            return None
        pending = set(self.pending)
        retry = sorted(self._retry & pending)
        if retry:  # work taken back from a failed or hung node goes out first, as it was
            first = last = retry[0]
            while last + 1 in self._retry and last + 1 in pending:
                last += 1
            self._retry -= set(range(first, last + 1))
        elif (probe := self._next_probe(pending)) is not None:
            first = last = probe
        else:
            first, last = self._costed_run(pending)
        for unit in range(first, last + 1):
            self.pending.remove(unit)
        attempt = max(self._attempts[u] for u in range(first, last + 1)) + 1
        for unit in range(first, last + 1):
            self._attempts[unit] = attempt
        part = Part(first, last, attempt)
        self.running.append(Running(part, node, now))
        return part

    def estimated_cost(self, unit: int) -> float:
        """A unit's cost: its own if measured, else the dearer of the nearest
        measured units on either side (a guess on the dear side keeps a part
        from swallowing an unseen nebula whole)."""
        if unit in self.unit_cost:
            return self.unit_cost[unit]
        if not self.unit_cost:
            return 1.0
        below = [m for m in self.unit_cost if m < unit]
        above = [m for m in self.unit_cost if m > unit]
        sides = ([max(below)] if below else []) + ([min(above)] if above else [])
        return max(self.unit_cost[m] for m in sides)

    def _trusted(self, unit: int) -> bool:
        """Measured, or next to a measured unit: its estimate can be trusted."""
        return any(u in self.unit_cost for u in (unit - 1, unit, unit + 1))

    def _even_runs(self) -> list[tuple[int, int]]:
        """The first wave of an even start: the pending units, in order, in one run
        per slot of about equal cost (as an earlier render measured it, else equal
        in units); a run also ends where pending units do."""
        weights = {u: self.prior[u] if self.prior and u < len(self.prior) else 1.0 for u in self.pending}
        if self.prior and not sum(weights.values()) > 0:
            weights = dict.fromkeys(self.pending, 1.0)
        share = sum(weights.values()) / max(1, self.slots)
        runs: list[tuple[int, int]] = []
        first = last = None
        total = 0.0
        for unit in self.pending:
            if first is not None and (unit != last + 1 or total + weights[unit] / 2 > share * (len(runs) + 1)):
                runs.append((first, last))
                first = None
            if first is None:
                first = unit
            last = unit
            total += weights[unit]
        if first is not None:
            runs.append((first, last))
        return runs

    def _probe_order(self) -> list[int]:
        # Optional single units spread over the image: a first wave that maps where the
        # cost is. Off by default: measured here, their start-ups cost more than they save.
        count = min(self.probes, len(self.pending))
        if count <= 0:
            return []
        return sorted({self.pending[int((k + 0.5) * len(self.pending) / count)] for k in range(count)})

    def _next_probe(self, pending: set[int]) -> int | None:
        while self._probes:
            unit = self._probes.pop(0)
            if unit in pending:
                return unit
        return None

    def _costed_run(self, pending: set[int]) -> tuple[int, int]:
        costs = {unit: self.estimated_cost(unit) for unit in pending}
        capacity = self.capacity or self.slots
        target = max(sum(costs.values()) / (self.guided_factor * max(1, capacity)), self.min_part_cost)
        # Estimates far from any measurement can be wrong: a part takes no more than
        # a share of such units. Units next to measured ones are trusted.
        limit = math.ceil(len(pending) / (self.guided_factor * max(1, self.slots)))
        while self._first_wave and not self.unit_cost:
            first, last = self._first_wave.pop(0)
            if all(unit in pending for unit in range(first, last + 1)):
                return first, last
        seed = max(sorted(pending), key=lambda unit: costs[unit])  # the dearest first: no late giant
        first = last = seed
        total = costs[seed]
        guesses = 0 if self._trusted(seed) else 1

        def fits(unit: int) -> bool:
            if unit not in pending or total + costs[unit] > target:
                return False
            return self._trusted(unit) or guesses < limit

        while not self.max_part_units or last - first + 1 < self.max_part_units:
            if fits(last + 1):
                last += 1
                added = last
            elif fits(first - 1):
                first -= 1
                added = first
            else:
                break
            total += costs[added]
            guesses += 0 if self._trusted(added) else 1
        return first, last

    # -- cutting a running part ------------------------------------------
    def cut_point(
        self,
        run: Running,
        units_done: float,
        now: float,
        start_cost: float,
        units_before: float = 0.0,
        kept_cost: float | None = None,
    ) -> int | None:
        """The last unit a running part should keep if cutting it pays, else None.

        `units_done` is its progress in units (POV-Ray renders a band's blocks
        in order), `units_before` how many of them were done before this run
        started (a continued part). The rest goes to an idle core, where a new
        POV-Ray first costs `start_cost` seconds; the part's own continuation
        costs `kept_cost` (a start too, unless it was started early: see
        NodeJob.launch_gated). The part keeps the unit in progress and half the
        rest, or, when an earlier render measured what its rows cost (`prior`),
        as many as end both sides together by that cost. It pays when both
        sides end sooner than the part alone would, by what the cut costs the
        part's own core.
        """
        seconds_per_unit = self.pace(run, units_done, now, units_before)
        if run.presumed_hung or seconds_per_unit is None or run.part.count < 2 or run.part.columns:
            return None
        kept_cost = start_cost if kept_cost is None else kept_cost
        in_progress = min(int(units_done), run.part.count - 1)
        rest = run.part.count - in_progress - 1
        if rest < 1:
            return None
        known = self.prior and len(self.prior) == self.unit_count
        if known and self._prior_between(run.part, units_before, units_done) > 0:
            return self._cut_by_prior(run, units_done, now, units_before, start_cost, kept_cost)
        remaining = (run.part.count - units_done) * seconds_per_unit
        # Half the rows after the unit in progress: the pace so far says little about
        # the cost of rows not rendered yet (a nebula's rows differ tenfold).
        given = rest - rest // 2
        after = max(remaining - given * seconds_per_unit + kept_cost, given * seconds_per_unit + start_cost)
        if remaining - after < kept_cost:
            return None
        return run.part.last - given

    def _cut_by_prior(
        self, run: Running, units_done: float, now: float, units_before: float, start_cost: float, kept_cost: float
    ) -> int | None:
        """cut_point placed by an earlier render's row costs (`prior`), scaled to this
        run's pace: the last unit to keep, or None if no cut pays.

        Rows next to each other cost alike, but a band's rows do not: on a render of
        the nebula again, a band still in its dear rows gave away half of what was
        left by count, its cheap tail, and was cut four times over (the idle core
        came back for more each second or so, paying a POV-Ray start each time)."""
        part = run.part
        # This run's seconds per unit of earlier cost (the cores' speed may have changed since).
        scale = (now - run.started) / self._prior_between(part, units_before, units_done)
        in_progress = min(int(units_done), part.count - 1)
        left_of_unit = self._prior_between(part, units_done, in_progress + 1) * scale
        after = [self.prior[unit] * scale for unit in range(part.first + in_progress + 1, part.last + 1)]
        keep = _balanced_keep(left_of_unit, after, len(after) - 1, start_cost, kept_cost)
        return None if keep is None else part.first + in_progress + keep

    def _prior_between(self, part: Part, start: float, end: float) -> float:
        """The earlier render's cost of a part's units from `start` to `end` (fractions
        of a unit count in share), counted from the part's first unit."""
        prior = self.prior or []
        total = 0.0
        for index in range(math.floor(start), math.ceil(end)):
            share = min(end, index + 1) - max(start, index)
            if share > 0 and part.first + index < len(prior):
                total += prior[part.first + index] * share
        return total

    @staticmethod
    def pace(run: Running, units_done: float, now: float, units_before: float = 0.0) -> float | None:
        """Seconds per unit of a running part's current run of POV-Ray, or None before
        that run has shown any (units restored from a state file are not its work)."""
        if units_done <= units_before:
            return None
        return (now - run.started) / (units_done - units_before)

    def cut(self, part: Part, node: str, keep_last: int, now: float) -> Part | None:
        """Shrink a running part to units first..keep_last; the rest goes out next, whole."""
        run = next((r for r in self.running if r.part == part and r.node == node), None)
        if run is None or run.presumed_hung or part.columns or not part.first <= keep_last < part.last:
            return None
        kept = Part(part.first, keep_last, part.attempt)
        run.part, run.started = kept, now
        given = [u for u in range(keep_last + 1, part.last + 1) if u not in self.done]
        self.pending = sorted(set(self.pending) | set(given))
        self._retry.update(given)
        return kept

    def column_cut_point(
        self,
        run: Running,
        position: float,
        block_costs: Sequence[float],
        start_cost: float,
        kept_cost: float,
        known_costs: bool = False,
    ) -> int | None:
        """The last block column a running part in its last unit should keep if
        cutting that unit by columns pays, else None.

        `position` is how far the part is along its last unit, in block columns
        (POV-Ray renders a block row left to right); `block_costs` the seconds
        each block column of that unit is expected to take. As in `cut_point`,
        the part keeps the block in progress, and the cut pays when both sides
        end sooner than the part alone would, by what the cut costs the part's
        own core. Costs forecast from a neighbouring row (`known_costs`) place the
        cut where both sides end together; costs that are only the pace so far
        keep at most half of the blocks after the one in progress (in a nebula's
        dear rows the right half costs six times the left or more).
        """
        if run.presumed_hung or self.column_blocks < 2:
            return None
        first, last = run.part.columns or (0, self.column_blocks - 1)
        if not first <= position < last + 1 or len(block_costs) <= last:
            return None
        in_progress = int(position)
        rest = last - in_progress
        if rest < 1 or any(cost < 0 for cost in block_costs) or sum(block_costs[in_progress:last + 1]) <= 0:
            return None
        left_of_block = (in_progress + 1 - position) * block_costs[in_progress]
        most = min(rest - 1, rest if known_costs else rest // 2)
        keep = _balanced_keep(left_of_block, block_costs[in_progress + 1 : last + 1], most, start_cost, kept_cost)
        return None if keep is None else in_progress + keep

    def cut_columns(self, part: Part, node: str, keep_column: int, now: float) -> Part | None:
        """Shrink a running part's last unit to its block columns up to keep_column; the
        rest goes out next, as a piece of its own."""
        run = next((r for r in self.running if r.part == part and r.node == node), None)
        first, last = part.columns or (0, self.column_blocks - 1)
        if run is None or run.presumed_hung or not first <= keep_column < last or part.last in self.done:
            return None
        kept = Part(part.first, part.last, part.attempt, (first, keep_column))
        run.part, run.started = kept, now
        self.pieces.append(self.columns_after(part, keep_column))
        return kept

    def columns_after(self, part: Part, keep_column: int) -> Part:
        """The piece a cut of a part's last unit after block column keep_column gives away."""
        last = part.columns[1] if part.columns else self.column_blocks - 1
        return Part(part.last, part.last, part.attempt, (keep_column + 1, last))

    # -- outcomes --------------------------------------------------------
    def complete(
        self,
        part: Part,
        node: str,
        seconds: float,
        cost: float | None = None,
        measured: range | None = None,
        weights: Sequence[float] | None = None,
    ) -> bool:
        """Record a finished part (wall seconds, and its work if known); False for a duplicate.

        `measured` names the units the work was spent on when it was not all of
        them (a part continued after a cut rendered only its tail); `weights`, if
        known, how that work was shared among them (see record_cost).
        """
        self._forget(part, node)
        self.stalled.discard(node)
        new = [u for u in _whole_units(part) if u not in self.done]
        added: set[int] = set()  # block columns of a split unit that no part brought before
        if part.columns and part.last not in self.done:
            columns = self.partial.setdefault(part.last, set())
            added = set(range(part.columns[0], part.columns[1] + 1)) - columns
            columns |= added
            if len(columns) >= self.column_blocks:
                new.append(part.last)
        if not new and not added:
            return False
        self.done.update(new)
        self.pending = [u for u in self.pending if u not in self.done]
        self._retry -= self.done
        spent_on = measured if measured else part.units
        if part.columns and not measured:  # a piece: its share of the unit's columns
            share = (part.columns[1] - part.columns[0] + 1) / self.column_blocks
            self.seconds_per_unit.append(seconds / share)
            if part.first == part.last and part.last not in self.unit_cost:
                self.record_cost(part.units, (seconds if cost is None else cost) / share)
            return True
        self.seconds_per_unit.append(seconds / len(spent_on))
        self.record_cost(spent_on, seconds if cost is None else cost, weights)
        return True

    def record_cost(
        self, units: range, cost: float, weights: Sequence[float] | None = None, last_share: float = 1.0
    ) -> None:
        """Work measured on units, shared by `weights` (what each unit took, as POV-Ray's
        log told), else evenly. A run cut inside its last unit rendered `last_share` of
        it: the run that continues it adds the rest of that unit's cost."""
        if not units:
            return
        if weights is None or len(weights) != len(units) or not sum(weights) > 0:
            weights = [1.0] * (len(units) - 1) + [last_share]
        total = sum(weights)
        for unit, weight in zip(units, weights, strict=True):
            share = max(cost * weight / total, 1e-6)
            self.unit_cost[unit] = share + self._begun.pop(unit, 0.0)
        if last_share < 1.0:
            self._begun[units[-1]] = self.unit_cost[units[-1]]

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

    def overdue(self, now: float, moving: Collection[tuple[str, Part]] = ()) -> list[Running]:
        """Parts newly presumed hung; their units go back to the queue.

        `moving` names the (node, part) seen making progress lately: such a part is
        dear, not hung (a band of a nebula's rows can take many times the pace of
        the cheap band that finished first), and handing it on would only render
        it twice and keep it from being cut.
        """
        hung: list[Running] = []
        for run in self.running:
            if run.presumed_hung or (run.node, run.part) in moving:
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
        # A part cut while it finished anyway is known here by its first unit and column.
        self.running = [r for r in self.running if not (part_origin(r.part) == part_origin(part) and r.node == node)]

    def _requeue(self, part: Part) -> None:
        busy = {u for r in self.running if not r.presumed_hung for u in _whole_units(r.part)}
        whole = _whole_units(part)
        back = [u for u in whole if u not in self.done and u not in busy and u not in self.pending]
        self.pending = sorted(self.pending + back)
        self._retry.update(back)
        if part.columns and part.last not in self.done:
            # Its columns go out again as a piece (the columns cut off it are out already).
            done = self.partial.get(part.last, set())
            todo = [c for c in range(part.columns[0], part.columns[1] + 1) if c not in done]
            if todo:
                self.pieces.append(Part(part.last, part.last, part.attempt, (todo[0], todo[-1])))


def _balanced_keep(
    left_of_current: float, after: Sequence[float], most: int, start_cost: float, kept_cost: float
) -> int | None:
    """How many of the units (or blocks) `after` the one in progress a cut part keeps,
    at most `most`, so that it and the core given the rest end soonest: the part has
    `left_of_current` seconds left of the one in progress, then those it keeps, plus
    `kept_cost`; the other core starts a POV-Ray (`start_cost`) for the rest. None if
    the cut does not save what it costs the part's own core."""
    kept, given = left_of_current, sum(after)
    remaining = kept + given
    best = (max(kept + kept_cost, given + start_cost), 0)  # (when both sides end, kept), keeping none first
    for keep in range(1, most + 1):
        kept += after[keep - 1]
        given -= after[keep - 1]
        best = min(best, (max(kept + kept_cost, given + start_cost), keep))
    if remaining - best[0] < kept_cost:
        return None
    return best[1]


def _whole_units(part: Part) -> range:
    """The units a part renders across the full width."""
    return range(part.first, part.last) if part.columns else part.units


def part_origin(part: Part) -> tuple[int, int]:
    """What stays of a part through its cuts: its first unit and its first column."""
    return part.first, part.columns[0] if part.columns else 0
