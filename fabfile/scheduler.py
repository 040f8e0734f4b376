"""The scheduler: every decision of a job, as a pure state machine.

Events come in (a part made progress, finished, was stopped for a cut,
failed; a node was lost; the clock ticked), each with the time it happened;
commands go out (start a part, cut one, stop one, keep a finished part's
output, warn, leave a node out, finish, give up). There are no threads, no
clock and no I/O here: the coordinator (`fabfile.coordinator`) carries the
events in and the commands out, and `bench/simulate.py` drives the same
class with a simulated clock and a model of POV-Ray.

The events and commands are in `fabfile.events`; what is done, running and
pending in `fabfile.ledger` (pending is never stored, so a requeue is just
the end of a run); part sizes in `fabfile.sizing`, cut placement in
`fabfile.cutting`, unit costs in `fabfile.costs`. The decisions, each a
method below:

* the first wave (`_first_wave`): a still is split into one band per slot,
  equal in the cost an earlier render measured (else in rows), in order;
* a free slot's next part (`_next_part`): columns cut off a unit first,
  then the dearest pending unit grown into a run of about remaining cost /
  (factor x cores), so that parts shrink towards the end;
* cuts (`_cut_for`, `_cut`): with nothing pending and slots idle, the live
  bands that will end last are stopped; each keeps the unit in progress and
  some after it and continues from POV-Ray's state file (+C), and the rest
  goes to the idle slots in pieces, so that all end together; a part of one
  block row is cut by its block columns; only when that saves more than the
  cut costs;
* a hang (`_overdue`): a still's part whose log fell silent, or a part far
  past the slowest pace seen, is handed on, and its node gets nothing more
  until it answers;
* failures: a failed part's units are pending again; a node that fails
  `max_failures` times is left out, and with no node left the job gives up;
* an interrupt (`_wind_down`): each running band is cut after the units it has
  rendered, which its continuation writes out; the rest stops; nothing starts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fabfile.costs import UnitCosts
from fabfile.cutting import Costing, plan_cuts
from fabfile.events import (
    HUNG,
    Command,
    Cut,
    Event,
    Finish,
    GiveUp,
    Interrupt,
    Keep,
    LeaveOut,
    NodeLost,
    Part,
    PartDone,
    PartFailed,
    PartStopped,
    Progress,
    Start,
    Stop,
    Warn,
    kept_part,
)
from fabfile.ledger import Ledger, Run
from fabfile.sizing import costed_run, first_wave

# -- the decisions ---------------------------------------------------------------

RECENT = 2.0  # seconds of a run's progress kept: its recent pace (fabfile.eta)


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
class Scheduler:
    unit_count: int
    slots: Mapping[str, int]  # parts a node runs at once
    capacity: int  # cores that render at once, all nodes together
    policy: Policy = field(default_factory=Policy)
    done: set[int] = field(default_factory=set)
    prior: Sequence[float] | None = None  # each unit's cost in an earlier render of this still
    cuttable: bool = False  # a still of more than one unit, cut to balance: its bands can be cut and continued
    continuable: bool = False  # a still of more than one unit: an interrupt can keep what its bands rendered
    columns: int = 1  # block columns in a unit: more than one lets a part of one unit be cut by them

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.unit_count, self.columns, self.done)
        self.done = self.ledger.done  # one set: the ledger's
        self.failures: Counter[str] = Counter()
        self.excluded: dict[str, str] = {}
        self.stalled: set[str] = set()
        self.costs = UnitCosts(self.unit_count, self.prior)
        self.seconds_per_unit: list[float] = []  # wall seconds per unit of finished parts
        self.startup: float | None = None  # the least idle start-up of a POV-Ray seen
        self.setup: float = 0.0  # the most a part spent before tracing
        self.longest_gap = 0.0  # the longest a streaming part was seen silent between two reports
        self.finish_lags: list[float] = []  # from a part's last progress to its done: its write and fetch
        self.cuts = 0
        self._wave = self._first_wave() if self.policy.cuts and self.cuttable else []
        self._over = False
        self.winding_down = False  # interrupted: keeping what runs have rendered, starting nothing new

    # -- what is known ---------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.ledger.finished

    @property
    def runs(self) -> list[Run]:
        return self.ledger.runs

    @property
    def unit_cost(self) -> dict[int, float]:
        """The CPU seconds of each unit rendered so far."""
        return self.costs.measured

    @property
    def start_cost(self) -> float:
        """What a part costs its core before it renders: POV-Ray's start-up (the least seen,
        else the policy's guess) and the scene's parse."""
        return max(self.startup or 0.0, self.policy.start_cost) + self.setup

    def usable(self, node: str) -> bool:
        return node not in self.excluded and node not in self.stalled

    def free_slots(self, node: str) -> int:
        return self.slots[node] - self.ledger.running(node)

    def pending(self) -> list[int]:
        return self.ledger.pending()

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
        elif isinstance(event, Interrupt):
            commands = self._wind_down()
        elif self.winding_down:
            commands = []  # no hang is presumed while the job winds down
        else:
            commands = self._overdue(event.now)
        return commands + self._settle(event.now)

    def _progress(self, event: Progress) -> list[Command]:
        run = self.ledger.find(event.node, event.part)
        if run is not None and event.units_done > run.units_done:
            if run.grew_at is not None:
                self.longest_gap = max(self.longest_gap, event.now - run.grew_at)
            run.units_done = event.units_done
            run.grew_at = event.now
            run.marks.append((event.now, event.units_done))
            while run.marks[0][0] < event.now - RECENT:
                run.marks.popleft()
        return []

    def _part_done(self, event: PartDone) -> list[Command]:
        run = self.ledger.find(event.node, event.part)
        if run is None:
            return []
        self._end(run)
        part = event.part
        if run.grew_at is not None:
            self.finish_lags.append(event.now - run.grew_at)
        if event.startup is not None:
            self.startup = event.startup if self.startup is None else min(self.startup, event.startup)
        self.setup = max(self.setup, event.setup)
        new, added = self.ledger.complete(part)
        if not new and not added:
            return []
        learn(self.costs, self.seconds_per_unit, self.columns, run, event)
        commands: list[Command] = [Keep(event.node, part, tuple(new))]
        for other in list(self.runs):  # parts whose every unit is now done elsewhere
            if self.ledger.redundant(other):
                self._end(other)
                commands.append(Stop(other.node, other.part, "its rows were rendered elsewhere"))
        return commands

    def _part_stopped(self, event: PartStopped) -> list[Command]:
        run = self.ledger.find(event.node, event.part)
        if run is None:
            return []
        self._end(run)
        part = event.part
        if run.hung or (run.keep_last is None and run.keep_column is None):
            return []  # not stopped for a cut: its units are pending again
        start, end = run.units_before, event.units_done
        kept = kept_part(part, run.keep_last, run.keep_column)
        if run.keep_column is not None:
            # A part of one unit continues over the columns it keeps: what it did of its
            # columns counts against those.
            first, last = part.columns or (0, self.columns - 1)
            units_before = min(1.0, end * (last - first + 1) / (run.keep_column - first + 1))
        else:
            whole = range(part.first + math.floor(start), min(part.first + math.ceil(end), run.keep_last + 1))
            if event.cpu and whole and end > start:
                last_share = end - math.floor(end) or 1.0
                self.costs.record(whole, event.cpu, event.weights, 1.0 - (start - math.floor(start)), last_share)
            units_before = end
        self.runs.append(Run(kept, event.node, event.now, units_before, units_before))
        return [Start(event.node, kept, part, units_before)]

    def _part_failed(self, node: str, part: Part, reason: str, node_fault: bool) -> list[Command]:
        run = self.ledger.find(node, part)
        if run is None:
            return []
        self._end(run)
        if run.hung or not node_fault:
            return []
        self.failures[node] += 1
        commands: list[Command] = [Warn(f"{reason}; {{part}} goes back to the queue", part, node)]
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
            if run.hung or not silent(run, now, self.policy, self.longest_gap, self.seconds_per_unit):
                continue
            run.hung = True
            self.stalled.add(run.node)
            commands.append(Warn(f"node {run.node}: {{part}} is taking far longer than expected; "
                                 "handing it to other nodes", run.part, run.node))
            commands.append(Stop(run.node, run.part, HUNG))
        live = [n for n in self.slots if n not in self.excluded]
        if commands and live and all(n in self.stalled for n in live):
            commands.append(Warn("every node left is on a part taking far longer than expected; waiting "
                                 "for them (Ctrl-C keeps the finished parts for --resume)"))
        return commands

    def _wind_down(self) -> list[Command]:
        """Each running band is cut after its last whole unit (its continuation writes
        those out from its state file); a part with no whole unit stops; a cut already
        asked for goes on, and a part done but for its last moments ends."""
        self.winding_down = True
        commands: list[Command] = []
        for run in [r for r in self.runs if r.keep_last is None and r.keep_column is None]:
            whole = math.floor(run.units_done) if self.continuable and run.part.columns is None else 0
            if 1 <= whole < run.part.count:
                run.keep_last = run.part.first + whole - 1
                commands.append(Cut(run.node, run.part, run.keep_last))
            elif whole < 1:
                self._end(run)
                commands.append(Stop(run.node, run.part, "the job was interrupted"))
        return commands

    def _settle(self, now: float) -> list[Command]:
        """After any event: finish, give up, or hand out work."""
        if self.winding_down:
            self._over = not self.runs
            return [Finish()] if self._over else []
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
        of pending units: the first wave's, else a guided one."""
        pieces = self.ledger.pending_pieces()
        if pieces:
            piece = pieces[0]
            return self.ledger.new_part(piece.first, piece.last, piece.columns)
        pending = self.pending()
        if not pending:
            return None
        while self._wave:
            first, last = self._wave.pop(0)
            if all(u in pending for u in range(first, last + 1)):
                return self.ledger.new_part(first, last)
        costs = {unit: self.costs.estimated(unit) for unit in pending}
        factor = self.policy.guided_factor
        target = max(sum(costs.values()) / (factor * max(1, self.capacity)), self._min_cost())
        limit = math.ceil(len(pending) / (factor * max(1, sum(self.slots.values()))))
        return self.ledger.new_part(*costed_run(costs, target, limit, self.costs.trusted))

    def _first_wave(self) -> list[tuple[int, int]]:
        """A still's first parts: one per slot, in order, equal in an earlier render's
        cost, else in rows."""
        pending = self.pending()
        return first_wave(pending, {u: self.costs.estimated(u) for u in pending}, sum(self.slots.values()))

    def _min_cost(self) -> float:
        """The least work a part should carry: enough to hide POV-Ray's start-up behind
        the node's other parts, and ten times what parsing costs."""
        spare = sum(self.slots.values()) - self.capacity
        hide = (self.startup or 0.0) * self.policy.latency_factor * (self.capacity / spare if spare > 0 else 10.0)
        return max(hide, 10 * self.setup)

    # -- cutting running bands --------------------------------------------------------
    def _cut_for(self, idle: list[str], now: float) -> list[Command]:
        """Idle slots and nothing pending: the bands that will end last are cut into
        pieces for them, where a cut pays (see fabfile.cutting)."""
        # Only a band seen moving is cut: a frozen node is the hang detector's.
        moving = [r for r in self.runs if r.grew_at is not None and now - r.grew_at <= self.policy.moving_window]
        candidates = [r for r in moving if self.usable(r.node)]
        start_cost = self.start_cost
        kept_cost = self.policy.gated_start + self.setup if self.policy.gated else start_cost
        costs = Costing(now, self.costs, start_cost, kept_cost, self.columns)
        commands: list[Command] = []
        for run, plan, by_columns in plan_cuts(candidates, len(idle), costs):
            part = run.part
            if by_columns:
                run.keep_column = plan.keep
                self.ledger.partial.setdefault(part.last, set())  # its columns go out in pieces from now on
                given = [Part(part.last, part.last, part.attempt + 1, (a, b)) for a, b in plan.given]
                commands.append(Cut(run.node, part, part.last, plan.keep))
            else:
                run.keep_last = plan.keep
                given = [Part(a, b, part.attempt + 1) for a, b in plan.given]
                commands.append(Cut(run.node, part, plan.keep))
            self.cuts += 1
            for piece in given:
                node = idle.pop(0)
                self.runs.append(Run(piece, node, now))
                commands.append(Start(node, piece))
        return commands

    # -- helpers ---------------------------------------------------------------------
    def _end(self, run: Run) -> None:
        self.runs.remove(run)
        if run.hung and not any(r.hung for r in self.runs if r.node == run.node):
            self.stalled.discard(run.node)  # it answered: it may render again


def silent(run: Run, now: float, policy: Policy, longest_gap: float, seconds_per_unit: list[float]) -> bool:
    """Whether a run has gone quiet for too long (see Scheduler._overdue)."""
    grace, factor = policy.hang_grace, policy.hang_factor
    if run.grew_at is not None:
        return now - run.grew_at > max(grace, factor * longest_gap)
    if not seconds_per_unit:
        return False
    return now - run.started > max(grace, factor * max(seconds_per_unit) * run.part.count)


def learn(costs: UnitCosts, seconds_per_unit: list[float], columns: int, run: Run, event: PartDone) -> None:
    """What a finished part tells of its units' cost and of the pace of parts."""
    part = event.part
    if part.columns:  # a piece: its share of a unit
        share = (part.columns[1] - part.columns[0] + 1) / columns
        seconds_per_unit.append((event.now - run.started) / (part.count - 1 + share))
        if part.count == 1 and event.cpu is not None and part.last not in costs.measured:
            costs.record(part.units, event.cpu / share)
        return
    measured = range(part.first + math.floor(run.units_before), part.last + 1)
    if measured:
        seconds_per_unit.append((event.now - run.started) / len(measured))
        if event.cpu is not None:
            share = 1.0 - (run.units_before - math.floor(run.units_before))
            costs.record(measured, event.cpu, event.weights, first_share=share)
