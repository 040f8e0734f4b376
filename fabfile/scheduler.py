"""The scheduler: every decision of a job, as a pure state machine.

Events come in (a part made progress, finished, was stopped for a cut,
failed; a node was lost; the clock ticked), each with the time it happened;
commands go out (start a part, cut one, stop one, keep a finished part's
output, warn, leave a node out, finish, give up). There are no threads, no
clock and no I/O here: the coordinator (`fabfile.coordinator`) carries the
events in and the commands out, and `bench/simulate.py` drives the same
class with a simulated clock and a model of POV-Ray.

What is pending is never stored: it is every unit that is neither done nor
in a live part (a part presumed hung is not live), so a requeue is just the
end of a run.

The decisions, each a method below:

* the first wave (`_first_wave`): a still is split into one band per slot,
  equal in the cost an earlier render measured (else in rows), in order;
* a free slot's next part (`_next_part`): the dearest pending unit grown
  into a run of about remaining cost / (factor x cores), so that parts
  shrink towards the end; a unit's unmeasured cost is the dearer of its
  measured neighbours';
* a cut (`_best_cut`): with nothing pending and a slot idle, the live band
  that will end last is stopped; it keeps the unit in progress and the
  first part of the rest and continues from POV-Ray's state file (+C), and
  the rest goes to the idle slot, where both end together by the pace seen
  (or by an earlier render's row costs); only when that saves more than the
  cut costs;
* a hang (`_overdue`): a part not seen moving and running `hang_factor`
  times longer than the slowest pace seen for its size is handed on, and its
  node gets nothing more until it answers;
* failures: a failed part's units are pending again; a node that fails
  `max_failures` times is left out, and with no node left the job gives up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fabfile.costs import UnitCosts

# -- parts ---------------------------------------------------------------------------


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


# -- events in -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class Progress:
    """A running part has finished `units_done` of its units (from its first, those
    restored from a state file included; fractions within a unit)."""

    node: str
    part: Part
    units_done: float
    now: float


@dataclass(frozen=True)
class PartDone:
    node: str
    part: Part
    now: float
    cpu: float | None = None  # POV-Ray's CPU seconds for the units this run rendered
    startup: float | None = None  # POV-Ray's idle seconds (wall minus CPU), its start-up
    setup: float = 0.0  # POV-Ray's seconds before tracing: parsing, photons...
    weights: tuple[float, ...] | None = None  # how that CPU fell on the units, if the log told


@dataclass(frozen=True)
class PartStopped:
    """A part's POV-Ray stopped as a cut asked; its state file holds `units_done`."""

    node: str
    part: Part
    units_done: float
    now: float
    cpu: float | None = None
    weights: tuple[float, ...] | None = None  # how that CPU fell on the units it rendered, if the log told


@dataclass(frozen=True)
class PartFailed:
    node: str
    part: Part
    reason: str
    now: float
    node_fault: bool = True  # False: the scene's or the user's fault, not the node's


@dataclass(frozen=True)
class NodeLost:
    node: str
    reason: str
    now: float


Event = Tick | Progress | PartDone | PartStopped | PartFailed | NodeLost


# -- commands out --------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Render `part` on `node`; with `resume_from`, continue that part's state file."""

    node: str
    part: Part
    resume_from: Part | None = None
    units_before: float = 0.0  # units of the part in that state file


@dataclass(frozen=True)
class Cut:
    """Stop `part`'s POV-Ray on `node`: it will continue over first..keep_last."""

    node: str
    part: Part
    keep_last: int


@dataclass(frozen=True)
class Stop:
    """End `part`'s POV-Ray on `node`: nobody will use what it renders."""

    node: str
    part: Part
    reason: str


@dataclass(frozen=True)
class Keep:
    """A finished part's output is new: record it and stitch it."""

    node: str
    part: Part
    new_units: tuple[int, ...]


@dataclass(frozen=True)
class Warn:
    text: str  # "{part}" in it stands for the rows or frames of `part`
    part: Part | None = None


@dataclass(frozen=True)
class LeaveOut:
    node: str
    reason: str


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class GiveUp:
    reason: str


Command = Start | Cut | Stop | Keep | Warn | LeaveOut | Finish | GiveUp


# -- the state -------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How the scheduler decides; each number is a knob in invoke.yaml."""

    cuts: bool = True  # a still: one band per slot, then cut the band that ends last
    guided_factor: float = 1.5  # a free slot takes about remaining cost / (factor x cores)
    max_failures: int = 2
    hang_grace: float = 20.0  # seconds before any part can be presumed hung
    hang_factor: float = 4.0  # ... and how many times the slowest pace seen for its size
    moving_window: float = 5.0  # a part whose progress grew this recently is dear, not hung
    start_cost: float = 0.5  # seconds a POV-Ray start costs its core until one is measured
    latency_factor: float = 1.0  # frames: a part carries at least this many start-ups of work
    forecast: bool = True  # a first render's cuts placed by the costs bands showed, not by count
    gated: bool = False  # a cut band's continuation starts up before the band stops (NodeJob.launch_gated)
    gated_start: float = 0.1  # ... and then costs its core this much: the state file, settling


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

    @property
    def live(self) -> bool:
        return not self.hung

    def pace(self, now: float) -> float | None:
        """Seconds per unit of this run, or None before it has shown any."""
        if self.units_done <= self.units_before:
            return None
        return (now - self.started) / (self.units_done - self.units_before)


@dataclass
class Scheduler:
    unit_count: int
    slots: Mapping[str, int]  # parts a node runs at once
    capacity: int  # cores that render at once, all nodes together
    policy: Policy = field(default_factory=Policy)
    done: set[int] = field(default_factory=set)
    prior: Sequence[float] | None = None  # each unit's cost in an earlier render of this still
    cuttable: bool = False  # a still of more than one unit: its bands can be cut and continued

    def __post_init__(self) -> None:
        self.done = set(self.done)
        self.runs: list[Run] = []
        self.failures: Counter[str] = Counter()
        self.excluded: dict[str, str] = {}
        self.stalled: set[str] = set()
        self.costs = UnitCosts(self.unit_count, self.prior)
        self.seconds_per_unit: list[float] = []  # wall seconds per unit of finished parts
        self.startup: float | None = None  # the least idle start-up of a POV-Ray seen
        self.setup: float = 0.0  # the most a part spent before tracing
        self.cuts = 0
        self._attempts: Counter[int] = Counter()
        self._wave = self._first_wave() if self.policy.cuts and self.cuttable else []
        self._over = False

    # -- what is known ---------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return len(self.done) >= self.unit_count

    def usable(self, node: str) -> bool:
        return node not in self.excluded and node not in self.stalled

    def pending(self) -> list[int]:
        """Units neither done nor in a live part."""
        busy = {u for run in self.runs if run.live for u in self._covers(run)}
        return [u for u in range(self.unit_count) if u not in self.done and u not in busy]

    def free_slots(self, node: str) -> int:
        return self.slots[node] - sum(1 for run in self.runs if run.node == node)

    @property
    def unit_cost(self) -> dict[int, float]:
        """The CPU seconds of each unit rendered so far."""
        return self.costs.measured

    # -- events ----------------------------------------------------------------------
    def begin(self, now: float) -> list[Command]:
        """The first wave of parts."""
        return self._assign(now)

    def handle(self, event: Event) -> list[Command]:
        """What to do now that `event` happened."""
        if self._over:  # a part that reports after the end was told to stop already
            return []
        if isinstance(event, Progress):
            commands = self._progress(event)
        elif isinstance(event, PartDone):
            commands = self._part_done(event)
        elif isinstance(event, PartStopped):
            commands = self._part_stopped(event)
        elif isinstance(event, PartFailed):
            commands = self._part_failed(event.node, event.part, event.reason, event.node_fault)
        elif isinstance(event, NodeLost):
            commands = self._leave_out(event.node, event.reason)
        else:
            commands = self._overdue(event.now)
        return commands + self._settle(event.now)

    def _progress(self, event: Progress) -> list[Command]:
        run = self._run(event.node, event.part)
        if run is not None and event.units_done > run.units_done:
            if run.grew_at is not None:  # the pace between two looks: what these rows cost
                self.costs.observe(run.part.first, run.units_done, event.units_done, event.now - run.grew_at)
            run.units_done = event.units_done
            run.grew_at = event.now
        return []

    def _part_done(self, event: PartDone) -> list[Command]:
        run = self._run(event.node, event.part)
        if run is None:
            return []
        self._end(run)
        if event.startup is not None:
            self.startup = event.startup if self.startup is None else min(self.startup, event.startup)
        self.setup = max(self.setup, event.setup)
        new = tuple(u for u in event.part.units if u not in self.done)
        if not new:
            return []
        self.done.update(new)
        measured = range(event.part.first + math.floor(run.units_before), event.part.last + 1)
        if measured:
            self.seconds_per_unit.append((event.now - run.started) / len(measured))
            if event.cpu is not None:
                share = 1.0 - (run.units_before - math.floor(run.units_before))
                self.costs.record(measured, event.cpu, event.weights, first_share=share)
        commands: list[Command] = [Keep(event.node, event.part, new)]
        for other in list(self.runs):  # parts whose every unit is now done elsewhere
            if all(u in self.done for u in self._covers(other)):
                self._end(other)
                commands.append(Stop(other.node, other.part, "its rows were rendered elsewhere"))
        return commands

    def _part_stopped(self, event: PartStopped) -> list[Command]:
        run = self._run(event.node, event.part)
        if run is None:
            return []
        self._end(run)
        if run.keep_last is None or run.hung:  # not stopped for a cut: its units are pending again
            return []
        start, end = run.units_before, event.units_done
        whole = range(event.part.first + math.floor(start), min(event.part.first + math.ceil(end), run.keep_last + 1))
        if event.cpu and whole and end > start:
            last_share = end - math.floor(end) or 1.0
            self.costs.record(whole, event.cpu, event.weights, 1.0 - (start - math.floor(start)), last_share)
        kept = Part(event.part.first, run.keep_last, event.part.attempt)
        self.runs.append(Run(kept, event.node, event.now, event.units_done, event.units_done))
        return [Start(event.node, kept, event.part, event.units_done)]

    def _part_failed(self, node: str, part: Part, reason: str, node_fault: bool) -> list[Command]:
        run = self._run(node, part)
        if run is None:
            return []
        self._end(run)
        if run.hung or not node_fault:
            return []
        self.failures[node] += 1
        commands: list[Command] = [Warn(f"{reason}; {{part}} goes back to the queue", part)]
        if self.failures[node] >= self.policy.max_failures:
            commands += self._leave_out(node, reason)
        return commands

    def _leave_out(self, node: str, reason: str) -> list[Command]:
        if node in self.excluded:
            return []
        self.excluded[node] = reason
        for run in [r for r in self.runs if r.node == node]:
            self.runs.remove(run)
        return [LeaveOut(node, reason)]

    def _overdue(self, now: float) -> list[Command]:
        """Parts newly presumed hung: handed on, their nodes given nothing more."""
        if not self.seconds_per_unit:
            return []
        slowest = max(self.seconds_per_unit)
        commands: list[Command] = []
        for run in self.runs:
            if run.hung or (run.grew_at is not None and now - run.grew_at <= self.policy.moving_window):
                continue
            limit = max(self.policy.hang_grace, self.policy.hang_factor * slowest * run.part.count)
            if now - run.started > limit:
                run.hung = True
                self.stalled.add(run.node)
                commands.append(Warn(f"node {run.node}: {{part}} is taking far longer than expected; "
                                     "handing it to other nodes", run.part))
                commands.append(Stop(run.node, run.part, "presumed hung"))
        live = [n for n in self.slots if n not in self.excluded]
        if commands and live and all(n in self.stalled for n in live):
            commands.append(Warn("every node left is on a part taking far longer than expected; waiting "
                                 "for them (Ctrl-C keeps the finished parts for --resume)"))
        return commands

    def _settle(self, now: float) -> list[Command]:
        """After any event: finish, give up, or hand out work."""
        if self.finished:
            self._over = True
            commands: list[Command] = [Stop(r.node, r.part, "the job is finished") for r in self.runs]
            self.runs.clear()
            return [*commands, Finish()]
        if all(node in self.excluded for node in self.slots):
            self._over = True
            reasons = "; ".join(f"{node}: {reason}" for node, reason in self.excluded.items())
            return [GiveUp(f"no node is left to render on: {reasons}")]
        return self._assign(now)

    # -- handing out work ---------------------------------------------------------------
    def _assign(self, now: float) -> list[Command]:
        commands: list[Command] = []
        for node in self.slots:
            while self.usable(node) and self.free_slots(node) > 0:
                part = self._next_part()
                if part is None:
                    break
                self.runs.append(Run(part, node, now))
                commands.append(Start(node, part))
        idle = [node for node in self.slots if self.usable(node) for _ in range(self.free_slots(node))]
        if idle and self.policy.cuts and self.cuttable and not self.pending():
            commands += self._cut_for(idle, now)
        return commands

    def _next_part(self) -> Part | None:
        pending = self.pending()
        if not pending:
            return None
        while self._wave:
            first, last = self._wave.pop(0)
            if all(u in pending for u in range(first, last + 1)):
                return self._part(first, last)
        return self._part(*self._costed_run(pending))

    def _part(self, first: int, last: int) -> Part:
        attempt = max(self._attempts[u] for u in range(first, last + 1)) + 1
        for unit in range(first, last + 1):
            self._attempts[unit] = attempt
        return Part(first, last, attempt)

    def _first_wave(self) -> list[tuple[int, int]]:
        """One run per slot, in order, of about equal cost (an earlier render's, else
        equal in units); a run also ends where the pending units do."""
        pending = self.pending()
        weights = {u: self.costs.estimated(u) for u in pending}
        share = sum(weights.values()) / max(1, sum(self.slots.values()))
        runs: list[tuple[int, int]] = []
        first = last = None
        total = 0.0
        for unit in pending:
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

    def _costed_run(self, pending: list[int]) -> tuple[int, int]:
        """The dearest pending unit, grown into a run of about remaining / (factor x cores)."""
        costs = {unit: self.costs.estimated(unit) for unit in pending}
        target = max(sum(costs.values()) / (self.policy.guided_factor * max(1, self.capacity)), self._min_cost())
        seed = max(pending, key=lambda unit: costs[unit])
        first = last = seed
        total = costs[seed]
        while True:
            if last + 1 in costs and total + costs[last + 1] <= target:
                last += 1
                total += costs[last]
            elif first - 1 in costs and total + costs[first - 1] <= target:
                first -= 1
                total += costs[first]
            else:
                return first, last

    def _min_cost(self) -> float:
        """The least work a part should carry: enough to hide POV-Ray's start-up behind
        the node's other parts, and ten times what parsing costs."""
        spare = sum(self.slots.values()) - self.capacity
        hide = (self.startup or 0.0) * self.policy.latency_factor * (self.capacity / spare if spare > 0 else 10.0)
        return max(hide, 10 * self.setup)

    # -- cutting running bands --------------------------------------------------------
    def _cut_for(self, idle: list[str], now: float) -> list[Command]:
        """Idle slots and nothing pending: the bands that will end last are cut into
        pieces for them, a band that will end later into more (each slot goes to the
        band whose pieces would still take longest), where a cut pays."""
        if not idle:
            return []
        start_cost = max(self.startup or 0.0, self.policy.start_cost) + self.setup
        left: dict[int, float] = {}  # a cuttable run (by index): its seconds left at its pace
        for index, run in enumerate(self.runs):
            pace = run.pace(now)
            if run.hung or run.keep_last is not None or not self.usable(run.node) or pace is None:
                continue
            if run.grew_at is None or now - run.grew_at > self.policy.moving_window:
                continue  # only a band seen moving is cut: a frozen node is the hang detector's
            if run.part.count - min(int(run.units_done), run.part.count - 1) > 1:
                left[index] = (run.part.count - run.units_done) * pace
        pieces: dict[int, int] = dict.fromkeys(left, 0)
        for _ in idle:
            open_runs = [i for i in left if pieces[i] + 1 < self.runs[i].part.count - int(self.runs[i].units_done)]
            if not open_runs:
                break
            chosen = max(open_runs, key=lambda i: (left[i] / (pieces[i] + 1), -i))
            pieces[chosen] += 1
        commands: list[Command] = []
        for index, count in pieces.items():
            run = self.runs[index]
            plan = self.cut_plan(run, now, count, start_cost) if count else None
            if plan is None:
                continue
            keep_last, given = plan
            run.keep_last = keep_last
            self.cuts += 1
            commands.append(Cut(run.node, run.part, keep_last))
            for first, last in given:
                piece = Part(first, last, run.part.attempt + 1)
                node = idle.pop(0)
                self.runs.append(Run(piece, node, now))
                commands.append(Start(node, piece))
        return commands

    def cut_plan(
        self, run: Run, now: float, pieces: int, start_cost: float
    ) -> tuple[int, list[tuple[int, int]]] | None:
        """Where to cut a running band for up to `pieces` idle slots: the last unit it
        keeps, and the units of each piece given away; None if no cut pays.

        It keeps the unit in progress and continues from its state file; the rest
        is shared so that every side ends together, by what its units are forecast
        to cost: an earlier render's costs scaled to this run's pace, else the costs
        bands showed as they went (`UnitCosts.forecast`), else this run's pace. Each
        side pays a POV-Ray start; the cut pays when the band ends sooner by more
        than that costs its own core."""
        pace = run.pace(now)
        part = run.part
        in_progress = min(int(run.units_done), part.count - 1)
        rest = range(part.first + in_progress + 1, part.last + 1)
        if pace is None or not rest:
            return None
        left = (in_progress + 1 - run.units_done) * pace
        spent = self.costs.prior_between(part.first, run.units_before, run.units_done)
        if spent > 0:
            scale = (now - run.started) / spent
            after = [self.costs.prior[u] * scale for u in rest]
        elif self.policy.forecast:
            after = [self.costs.forecast(u, pace) for u in rest]
        else:
            after = [pace] * len(rest)
        kept_cost = self.policy.gated_start + self.setup if self.policy.gated else start_cost
        for count in range(min(pieces, len(rest)), 0, -1):
            groups = split_evenly(left, after, count, start_cost, kept_cost)
            if groups is None:
                continue
            ends = [left + sum(after[: groups[0]]) + kept_cost]
            ends += [sum(after[a:b]) + start_cost for a, b in zip(groups, [*groups[1:], len(after)], strict=True)]
            if left + sum(after) - max(ends) >= kept_cost:
                bounds = [*groups, len(after)]
                given = [(rest[a], rest[b - 1]) for a, b in zip(bounds, bounds[1:], strict=False)]
                return part.first + in_progress + groups[0], given
        return None

    # -- helpers ---------------------------------------------------------------------
    def _run(self, node: str, part: Part) -> Run | None:
        return next((r for r in self.runs if r.node == node and r.part == part), None)

    def _end(self, run: Run) -> None:
        self.runs.remove(run)
        if run.hung and not any(r.hung for r in self.runs if r.node == run.node):
            self.stalled.discard(run.node)  # it answered: it may render again

    @staticmethod
    def _covers(run: Run) -> range:
        """The units a run will render: a band being cut keeps only its head."""
        last = run.part.last if run.keep_last is None else run.keep_last
        return range(run.part.first, last + 1)


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
