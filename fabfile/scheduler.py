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
from fabfile.cutting import plan_cut

# -- parts ---------------------------------------------------------------------------


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

    @property
    def whole(self) -> range:
        """The units it renders across the full width."""
        return range(self.first, self.last) if self.columns else self.units


# -- events in -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class Progress:
    """A running part has finished `units_done` of its units (from its first, those
    restored from a state file included; fractions within a unit, and a last unit
    narrowed to some columns counting as one)."""

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
    """Stop `part`'s POV-Ray on `node`: it will continue over first..keep_last, or,
    with `keep_column`, over all its units with its last narrowed up to that column
    (a band of several units then renders on until it has that column)."""

    node: str
    part: Part
    keep_last: int
    keep_column: int | None = None


@dataclass(frozen=True)
class Stop:
    """End `part`'s POV-Ray on `node`: nobody will use what it renders."""

    node: str
    part: Part
    reason: str


@dataclass(frozen=True)
class Keep:
    """A finished part's output is new: record it and stitch it; `new_units` are
    the units it completed."""

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
    moving_window: float = 5.0  # a band is cut only if its progress grew this recently
    start_cost: float = 0.5  # seconds a POV-Ray start costs its core until one is measured
    latency_factor: float = 1.0  # frames: a part carries at least this many start-ups of work
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
    keep_column: int | None = None  # ... by columns: the last block column of its last unit it keeps

    def pace(self, now: float) -> float | None:
        """Seconds per unit of this run, or None before it has shown any."""
        if self.units_done <= self.units_before:
            return None
        return (now - self.started) / (self.units_done - self.units_before)

    def covers(self) -> tuple[range, tuple[int, range] | None]:
        """The units it will render across the full width, and the block columns of
        the one it renders narrowed (a band being cut keeps only its head)."""
        part = self.part
        first_column = part.columns[0] if part.columns else 0
        if self.keep_column is not None:
            return range(part.first, part.last), (part.last, range(first_column, self.keep_column + 1))
        if self.keep_last is not None:
            return range(part.first, self.keep_last + 1), None
        if part.columns:
            return part.whole, (part.last, range(part.columns[0], part.columns[1] + 1))
        return part.units, None


@dataclass
class Scheduler:
    unit_count: int
    slots: Mapping[str, int]  # parts a node runs at once
    capacity: int  # cores that render at once, all nodes together
    policy: Policy = field(default_factory=Policy)
    done: set[int] = field(default_factory=set)
    prior: Sequence[float] | None = None  # each unit's cost in an earlier render of this still
    cuttable: bool = False  # a still of more than one unit: its bands can be cut and continued
    columns: int = 1  # block columns in a unit: more than one lets a part of one unit be cut by them

    def __post_init__(self) -> None:
        self.done = set(self.done)
        self.runs: list[Run] = []
        self.failures: Counter[str] = Counter()
        self.excluded: dict[str, str] = {}
        self.stalled: set[str] = set()
        self.costs = UnitCosts(self.unit_count, self.prior)
        self.partial: dict[int, set[int]] = {}  # block columns done of a unit cut by columns
        self.seconds_per_unit: list[float] = []  # wall seconds per unit of finished parts
        self.startup: float | None = None  # the least idle start-up of a POV-Ray seen
        self.setup: float = 0.0  # the most a part spent before tracing
        self.longest_gap = 0.0  # the longest a streaming part was seen silent between two reports
        self.cuts = 0
        self._attempts: Counter[int] = Counter()
        self._wave = self._first_wave() if self.policy.cuts and self.cuttable else []
        self._over = False

    # -- what is known ---------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return len(self.done) >= self.unit_count

    @property
    def unit_cost(self) -> dict[int, float]:
        """The CPU seconds of each unit rendered so far."""
        return self.costs.measured

    def usable(self, node: str) -> bool:
        return node not in self.excluded and node not in self.stalled

    def free_slots(self, node: str) -> int:
        return self.slots[node] - sum(1 for run in self.runs if run.node == node)

    def pending(self) -> list[int]:
        """Units neither done, nor in a live part, nor cut by columns."""
        busy = set(self.partial)
        for run in self.runs:
            if not run.hung:
                whole, narrowed = run.covers()
                busy.update(whole)
                if narrowed:
                    busy.add(narrowed[0])
        return [u for u in range(self.unit_count) if u not in self.done and u not in busy]

    def pending_pieces(self) -> list[Part]:
        """The block columns of units cut by columns that nobody renders."""
        taken: dict[int, set[int]] = {}
        for run in self.runs:
            if not run.hung:
                whole, narrowed = run.covers()
                for unit in whole:
                    taken.setdefault(unit, set()).update(range(self.columns))
                if narrowed:
                    taken.setdefault(narrowed[0], set()).update(narrowed[1])
        pieces = []
        for unit, done in sorted(self.partial.items()):
            if unit in self.done:
                continue
            missing = [c for c in range(self.columns) if c not in done and c not in taken.get(unit, ())]
            for first, last in _ranges(missing):
                pieces.append(Part(unit, unit, self._attempts[unit] + 1, (first, last)))
        return pieces

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
            if run.grew_at is not None:
                self.longest_gap = max(self.longest_gap, event.now - run.grew_at)
            run.units_done = event.units_done
            run.grew_at = event.now
        return []

    def _part_done(self, event: PartDone) -> list[Command]:
        run = self._run(event.node, event.part)
        if run is None:
            return []
        self._end(run)
        part = event.part
        if event.startup is not None:
            self.startup = event.startup if self.startup is None else min(self.startup, event.startup)
        self.setup = max(self.setup, event.setup)
        new = [u for u in part.whole if u not in self.done]
        added: set[int] = set()  # block columns of a unit cut by columns that no part brought before
        if part.columns and part.last not in self.done:
            columns = self.partial.setdefault(part.last, set())
            added = set(range(part.columns[0], part.columns[1] + 1)) - columns
            columns |= added
            if len(columns) >= self.columns:
                new.append(part.last)
        if not new and not added:
            return []
        self.done.update(new)
        self._learn(run, event)
        commands: list[Command] = [Keep(event.node, part, tuple(new))]
        for other in list(self.runs):  # parts whose every unit is now done elsewhere
            whole, narrowed = other.covers()
            if all(u in self.done for u in whole) and (narrowed is None or self._columns_done(*narrowed)):
                self._end(other)
                commands.append(Stop(other.node, other.part, "its rows were rendered elsewhere"))
        return commands

    def _learn(self, run: Run, event: PartDone) -> None:
        """What a finished part tells of its units' cost and of the pace of parts."""
        part = event.part
        if part.columns:  # a piece: its share of a unit
            share = (part.columns[1] - part.columns[0] + 1) / self.columns
            self.seconds_per_unit.append((event.now - run.started) / (part.count - 1 + share))
            if part.count == 1 and event.cpu is not None and part.last not in self.costs.measured:
                self.costs.record(part.units, event.cpu / share)
            return
        measured = range(part.first + math.floor(run.units_before), part.last + 1)
        if measured:
            self.seconds_per_unit.append((event.now - run.started) / len(measured))
            if event.cpu is not None:
                share = 1.0 - (run.units_before - math.floor(run.units_before))
                self.costs.record(measured, event.cpu, event.weights, first_share=share)

    def _part_stopped(self, event: PartStopped) -> list[Command]:
        run = self._run(event.node, event.part)
        if run is None:
            return []
        self._end(run)
        part = event.part
        if run.hung or (run.keep_last is None and run.keep_column is None):
            return []  # not stopped for a cut: its units are pending again
        start, end = run.units_before, event.units_done
        if run.keep_column is not None:
            # A part of one unit continues over the columns it keeps: what it did of its
            # columns counts against those.
            first, last = part.columns or (0, self.columns - 1)
            kept = Part(part.first, part.last, part.attempt, (first, run.keep_column))
            units_before = min(1.0, end * (last - first + 1) / (run.keep_column - first + 1))
        else:
            whole = range(part.first + math.floor(start), min(part.first + math.ceil(end), run.keep_last + 1))
            if event.cpu and whole and end > start:
                last_share = end - math.floor(end) or 1.0
                self.costs.record(whole, event.cpu, event.weights, 1.0 - (start - math.floor(start)), last_share)
            kept = Part(part.first, run.keep_last, part.attempt)
            units_before = end
        self.runs.append(Run(kept, event.node, event.now, units_before, units_before))
        return [Start(event.node, kept, part, units_before)]

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
        """Parts newly presumed hung: handed on, their nodes given nothing more.

        A part whose log streams back (a still's) is hung once it has been silent
        `hang_factor` times longer than any gap seen between two of its reports, and
        at least `hang_grace`; before its first report (parsing, photons...), and a
        part that reports nothing (frames), once it has run `hang_factor` times
        longer than the slowest pace seen for its size, and at least `hang_grace`."""
        commands: list[Command] = []
        for run in self.runs:
            if run.hung or not self._silent(run, now):
                continue
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

    def _silent(self, run: Run, now: float) -> bool:
        grace, factor = self.policy.hang_grace, self.policy.hang_factor
        if run.grew_at is not None:
            return now - run.grew_at > max(grace, factor * self.longest_gap)
        if not self.seconds_per_unit:
            return False
        return now - run.started > max(grace, factor * max(self.seconds_per_unit) * run.part.count)

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
        """Columns cut off a unit first (the end of the job waits for them), then a run
        of pending units."""
        pieces = self.pending_pieces()
        if pieces:
            self._attempts[pieces[0].last] = pieces[0].attempt
            return pieces[0]
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
        """The dearest pending unit, grown into a run of about remaining / (factor x cores).

        Estimates far from any measurement can be wrong: a part takes no more than
        a share of such units (units next to measured ones are trusted)."""
        costs = {unit: self.costs.estimated(unit) for unit in pending}
        target = max(sum(costs.values()) / (self.policy.guided_factor * max(1, self.capacity)), self._min_cost())
        limit = math.ceil(len(pending) / (self.policy.guided_factor * max(1, sum(self.slots.values()))))
        seed = max(pending, key=lambda unit: costs[unit])
        first = last = seed
        total = costs[seed]
        guesses = 0 if self.costs.trusted(seed) else 1

        def fits(unit: int) -> bool:
            if unit not in costs or total + costs[unit] > target:
                return False
            return self.costs.trusted(unit) or guesses < limit

        while fits(last + 1) or fits(first - 1):
            added = last + 1 if fits(last + 1) else first - 1
            first, last = min(first, added), max(last, added)
            total += costs[added]
            guesses += 0 if self.costs.trusted(added) else 1
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
        left: dict[int, float] = {}  # a cuttable run (by index): its seconds left at its pace
        room: dict[int, int] = {}  # ... and the most pieces it can give
        for index, run in enumerate(self.runs):
            pace = run.pace(now)
            if run.hung or run.keep_last is not None or run.keep_column is not None or pace is None:
                continue
            if not self.usable(run.node) or run.grew_at is None or now - run.grew_at > self.policy.moving_window:
                continue  # only a band seen moving is cut: a frozen node is the hang detector's
            room[index] = self._room(run)
            if room[index]:
                left[index] = (run.part.count - run.units_done) * pace
        pieces: dict[int, int] = dict.fromkeys(left, 0)
        for _ in idle:
            open_runs = [i for i in left if pieces[i] < room[i]]
            if not open_runs:
                break
            chosen = max(open_runs, key=lambda i: (left[i] / (pieces[i] + 1), -i))
            pieces[chosen] += 1
        commands: list[Command] = []
        for index, count in pieces.items():
            if count:
                commands += self._cut(self.runs[index], now, count, idle)
        return commands

    def _room(self, run: Run) -> int:
        """How many pieces a run can give: the units after the one in progress, or, in
        its last unit, the block columns after the one in progress."""
        part = run.part
        in_progress = min(int(run.units_done), part.count - 1)
        if in_progress < part.count - 1 and not part.columns:
            return part.count - in_progress - 1
        # Only a part of one unit: narrowed at its right end, its blocks keep their numbers in
        # POV-Ray's state file. A band's would not (see NodeJob._povray_args).
        if self.columns < 2 or part.count > 1:
            return 0
        first, last = part.columns or (0, self.columns - 1)
        return last - self._column_position(run)[0]

    def _column_position(self, run: Run) -> tuple[int, float]:
        """The block column in progress of a part of one unit, and how far along it is."""
        first, last = run.part.columns or (0, self.columns - 1)
        position = first + run.units_done * (last - first + 1)
        in_progress = min(int(position), last)
        return in_progress, position - in_progress

    def _cut(self, run: Run, now: float, pieces: int, idle: list[str]) -> list[Command]:
        """Cut a run for up to `pieces` of the idle slots, if that pays (see fabfile.cutting).

        What is left of the band is forecast by an earlier render's costs scaled to
        this run's pace, else by this run's pace, and a last unit's block columns
        evenly by that pace: with nothing known of the rows to come, the rest is
        shared by count."""
        pace = run.pace(now) or 0.0
        part = run.part
        start_cost = max(self.startup or 0.0, self.policy.start_cost) + self.setup
        in_progress = min(int(run.units_done), part.count - 1)
        if in_progress < part.count - 1:
            kept_cost = self.policy.gated_start + self.setup if self.policy.gated else start_cost
            rest = range(part.first + in_progress + 1, part.last + 1)
            spent = self.costs.prior_between(part.first, run.units_before, run.units_done)
            if spent > 0:
                after = [self.costs.prior[u] * (now - run.started) / spent for u in rest]
            else:  # the pace so far: the rows to come are no likelier dearer than cheaper
                after = [pace] * len(rest)
            left = (in_progress + 1 - run.units_done) * pace
            plan = plan_cut(left, after, rest.start, pieces, start_cost, kept_cost, known=spent > 0)
            if plan is None:
                return []
            run.keep_last = plan.keep
            given = [Part(a, b, part.attempt + 1) for a, b in plan.given]
            commands: list[Command] = [Cut(run.node, part, plan.keep)]
        else:
            first, last = part.columns or (0, self.columns - 1)
            column, into = self._column_position(run)
            block = pace / (last - first + 1)
            after = [block] * (last - column)
            plan = plan_cut((1 - into) * block, after, column + 1, pieces, start_cost, start_cost, known=False)
            if plan is None:
                return []
            run.keep_column = plan.keep
            self.partial.setdefault(part.last, set())  # its columns go out in pieces from now on
            given = [Part(part.last, part.last, part.attempt + 1, (a, b)) for a, b in plan.given]
            commands = [Cut(run.node, part, part.last, plan.keep)]
        self.cuts += 1
        for piece in given:
            node = idle.pop(0)
            self.runs.append(Run(piece, node, now))
            commands.append(Start(node, piece))
        return commands

    # -- helpers ---------------------------------------------------------------------
    def _run(self, node: str, part: Part) -> Run | None:
        return next((r for r in self.runs if r.node == node and r.part == part), None)

    def _columns_done(self, unit: int, columns: range) -> bool:
        return unit in self.done or set(columns) <= self.partial.get(unit, set())

    def _end(self, run: Run) -> None:
        self.runs.remove(run)
        if run.hung and not any(r.hung for r in self.runs if r.node == run.node):
            self.stalled.discard(run.node)  # it answered: it may render again


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted numbers as runs of consecutive ones, (first, last)."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs
