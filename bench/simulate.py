"""The scheduler in a simulated farm: makespans against the ideal, without a real render.

`python bench/simulate.py` drives povfarm's own scheduler (`fabfile.scheduler`)
with a simulated clock and a model of POV-Ray on each node, over a family
of cost profiles and farm sizes, and prints for each the makespan against
the ideal (the total work spread over every core, plus one POV-Ray start)
and the share of core time left idle, for a first render and for a render
again (sized by the costs the first one measured).

The model of a POV-Ray run, as measured on this project's machine
(bench/NOTES.md): it idles `startup` seconds starting, spends `parse`
seconds of CPU parsing, then traces its units in order, each costing the
profile's CPU seconds divided by its threads; its log reports progress in
bursts every `burst` seconds; every command pays an SSH round trip. The
CPU of a node is shared evenly by the POV-Rays tracing on it. A node's
speed can differ and drift; a node can die or freeze.

Deterministic: the same arguments give the same table.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fabfile.eta import ShownEta, remaining_seconds  # noqa: E402
from fabfile.events import (  # noqa: E402 - the repository's root goes on the path first
    Cut,
    Finish,
    GiveUp,
    NodeLost,
    Part,
    PartDone,
    PartFailed,
    PartStopped,
    Progress,
    Start,
    Stop,
    Tick,
)
from fabfile.scheduler import Policy, Scheduler  # noqa: E402


# -- cost profiles -------------------------------------------------------------------
def _density(shape: Callable[[float], float], units: int) -> list[float]:
    """A profile's cost of each of `units` row blocks, from a density over the height."""
    samples = 16
    return [sum(shape((u + (k + 0.5) / samples) / units) for k in range(samples)) / samples for u in range(units)]


def _random_profile(units: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    level = 1.0
    costs = []
    for _ in range(units):
        level = min(20.0, max(0.2, level * math.exp(rng.gauss(0, 0.4))))
        costs.append(level)
    return costs


PROFILES: dict[str, Callable[[int], list[float]]] = {
    "even": lambda n: [1.0] * n,
    "top": lambda n: _density(lambda y: 1.0 + 20.0 * (y < 1 / 3), n),
    "bottom": lambda n: _density(lambda y: 0.5 + 10.0 * y**3, n),
    "middle peak": lambda n: _density(lambda y: 0.5 + 30.0 * math.exp(-(((y - 0.5) / 0.08) ** 2)), n),
    "two peaks": lambda n: _density(
        lambda y: 0.5 + 20.0 * math.exp(-(((y - 0.25) / 0.05) ** 2)) + 20.0 * math.exp(-(((y - 0.8) / 0.05) ** 2)), n
    ),
    "one dear row": lambda n: [1.0] * (n // 3) + [10.0] + [1.0] * (n - n // 3 - 1),
    "random": lambda n: _random_profile(n, 7),
}


def recorded_profiles(folder: Path) -> dict[str, tuple[list[float], int]]:
    """Row-block costs recorded by real renders (`unit_costs` of a job.json, in the files
    of bench/profiles/), by file name, with the block columns of a row (`columns`, 1
    for a still without antialiasing)."""
    import json

    found = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        costs = [max(0.001, float(c)) for c in record.get("unit_costs") or []]  # a log's 0 is a short cost
        columns, rows = int(record.get("columns", 1)), int(record.get("rows", 1))
        if columns == 1 and rows > 1:  # a band measured whole, spread over its rows (povfarm's units)
            costs = [cost / rows for cost in costs for _ in range(rows)]
        if costs:
            found[path.stem] = (costs, columns)
    return found


# -- the model --------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    startup: float = 0.35  # idle seconds before a POV-Ray parses (measured: bench/NOTES.md)
    parse: float = 0.05  # CPU seconds of parsing
    round_trip: float = 0.02  # an SSH command's round trip
    burst: float = 0.2  # POV-Ray's log reports progress this often
    tick: float = 0.5  # the coordinator's clock events
    gated: bool = True  # a cut band's continuation started up before the band stopped
    settle: float = 0.05  # ... and then idles this long: the state file moved, the gate opened


@dataclass(frozen=True)
class FarmShape:
    nodes: int
    cores: int  # per node
    speeds: tuple[float, ...] = ()  # per node; 1.0 if not given
    drift: float = 0.0  # each node's speed swings by this share, slowly
    dies: tuple[str, float] | None = None  # (node, when)
    freezes: tuple[str, float, float] | None = None  # (node, from, until)


@dataclass
class Proc:
    """One POV-Ray run on a node."""

    node: str
    part: Part
    costs: list[float]  # its units' CPU seconds at speed 1
    threads: int
    ready_at: float  # start-up over
    parse_left: float
    position: float  # units done, from the part's first (a narrowed last unit counts as one)
    started_at: float = 0.0  # ... when this run began (a continuation's state file)

    def __post_init__(self) -> None:
        self.started_at = self.position


@dataclass
class Outcome:
    makespan: float
    ideal: float
    idle_share: float
    cuts: int
    parts: int
    unit_costs: list[float] = field(default_factory=list)
    eta_error: float = 0.0  # the ETA shown, once a quarter of the work is done: its worst error, as a share
    eta_within: float = 1.0  # ... and the share of that time it was within 30% of the truth

    @property
    def ratio(self) -> float:
        return self.makespan / self.ideal


class Simulation:
    """One job: the scheduler, the nodes and their POV-Rays, on a simulated clock."""

    def __init__(
        self,
        costs: Sequence[float],
        farm: FarmShape,
        model: Model = Model(),
        prior: Sequence[float] | None = None,
        frames: bool = False,
        policy: Policy | None = None,
        columns: int = 1,
    ) -> None:
        self.costs = list(costs)
        self.farm = farm
        self.model = model
        self.frames = frames
        self.names = [f"n{i}" for i in range(farm.nodes)]
        self.threads = 1 if frames else farm.cores
        self.columns = columns
        capacity = farm.cores // self.threads
        slots = capacity + (1 if frames else 0)
        self.scheduler = Scheduler(
            unit_count=len(costs),
            slots=dict.fromkeys(self.names, slots),
            capacity=capacity * farm.nodes,
            policy=policy or Policy(gated=model.gated),
            prior=prior,
            cuttable=not frames and len(costs) > 1,
            columns=columns,
        )
        self.now = 0.0
        self.procs: list[Proc] = []
        self.queue: list[tuple[float, int, object]] = []  # (when, order, event or action)
        self.order = 0
        self.busy = 0.0  # core-seconds spent tracing or parsing
        self.parts = 0
        self.dead: set[str] = set()
        self.finished_at: float | None = None
        self.etas: list[tuple[float, float | None, float]] = []  # (when, ETA shown, core-seconds done)
        self.shown_eta = ShownEta()

    # -- the clock -------------------------------------------------------------------
    def at(self, when: float, item: object) -> None:
        self.order += 1
        heapq.heappush(self.queue, (when, self.order, item))

    def speed(self, node: str, now: float) -> float:
        index = self.names.index(node)
        base = self.farm.speeds[index] if index < len(self.farm.speeds) else 1.0
        if self.farm.drift:
            base *= 1.0 + self.farm.drift * math.sin(now / 7.0 + index * 1.7)
        frozen = self.farm.freezes
        if frozen and frozen[0] == node and frozen[1] <= now < frozen[2]:
            return 0.0
        return base

    def rates(self) -> dict[int, float]:
        """Units (or parse seconds) per second of each running POV-Ray now."""
        demand: dict[str, int] = {}
        for proc in self.procs:
            if self.now >= proc.ready_at:
                demand[proc.node] = demand.get(proc.node, 0) + proc.threads
        rates = {}
        for index, proc in enumerate(self.procs):
            if self.now < proc.ready_at:
                rates[index] = 0.0
                continue
            share = min(1.0, self.farm.cores / demand[proc.node]) * proc.threads * self.speed(proc.node, self.now)
            rates[index] = share
        return rates

    def advance(self, until: float) -> None:
        """Run the POV-Rays on to `until`, stepping at their milestones."""
        while self.now < until - 1e-12:
            rates = self.rates()
            step = until - self.now
            for index, proc in enumerate(self.procs):
                if self.now < proc.ready_at:
                    step = min(step, proc.ready_at - self.now)
                elif rates[index] > 0:
                    step = min(step, self._to_milestone(proc, rates[index]))
            step = max(step, 1e-9)
            for index, proc in enumerate(self.procs):
                if self.now >= proc.ready_at and rates[index] > 0:
                    self._work(proc, rates[index] * step)
                    cores_used = rates[index] / max(self.speed(proc.node, self.now), 1e-9)
                    self.busy += step * min(cores_used, proc.threads)
            self.now += step
            for proc in [p for p in self.procs if p.position >= p.part.count - 1e-9 and p.parse_left <= 0]:
                self.procs.remove(proc)
                self.at(self.now + self.model.round_trip / 2, ("done", proc))

    def _to_milestone(self, proc: Proc, rate: float) -> float:
        if proc.parse_left > 0:
            return proc.parse_left / rate
        unit = min(int(proc.position), proc.part.count - 1)
        return max((unit + 1.0 - proc.position) * proc.costs[unit] / rate, 1e-9)

    def _work(self, proc: Proc, amount: float) -> None:
        if proc.parse_left > 0:
            used = min(amount, proc.parse_left)
            proc.parse_left -= used
            amount -= used
        while amount > 1e-12 and proc.position < proc.part.count - 1e-12:
            unit = min(int(proc.position), proc.part.count - 1)
            left = (unit + 1 - proc.position) * proc.costs[unit]
            if amount >= left - 1e-12:
                proc.position = unit + 1.0
                amount -= left
            else:
                proc.position += amount / proc.costs[unit]
                amount = 0.0

    # -- commands --------------------------------------------------------------------
    def obey(self, commands: list) -> None:
        for command in commands:
            if isinstance(command, Start):
                self.parts += 1
                self.at(self.now + self.model.round_trip / 2, ("start", command))
            elif isinstance(command, Cut):
                self.at(self.now + self.model.round_trip / 2, ("cut", command))
            elif isinstance(command, Stop):
                self.at(self.now + self.model.round_trip / 2, ("stop", command))
            elif isinstance(command, Finish):
                self.finished_at = self.now
            elif isinstance(command, GiveUp):
                raise RuntimeError(command.reason)

    def act(self, item: tuple) -> None:
        kind, payload = item
        if kind == "start":
            if payload.node in self.dead:
                self.at(self.now + self.model.round_trip, ("event", PartFailed(payload.node, payload.part, "dead", 0)))
                return
            part = payload.part
            costs = [self.costs[u] for u in part.units]
            if part.columns:  # its last unit narrowed to some block columns
                costs[-1] *= (part.columns[1] - part.columns[0] + 1) / self.columns
            gated = self.model.gated and payload.resume_from is not None
            ready = self.now + (self.model.settle if gated else self.model.startup)
            self.procs.append(Proc(payload.node, part, costs, self.threads, ready, self.model.parse,
                                   payload.units_before))
        elif kind in ("cut", "stop"):
            proc = next((p for p in self.procs if p.node == payload.node and p.part == payload.part), None)
            if proc is None:
                return
            self.procs.remove(proc)
            if kind == "cut":
                self.stopped(proc)
        elif kind == "done":
            start, end = payload.started_at, float(payload.part.count)
            done = PartDone(payload.node, payload.part, 0, cpu=sum(_shares(payload.costs, start, end)),
                            startup=self.model.startup, weights=self.weights(payload, start, end))
            self.at(self.now + self.model.round_trip / 2, ("event", done))

    def stopped(self, proc: Proc) -> None:
        # POV-Ray's state file keeps finished blocks: of a unit's block columns, or of a narrowed one's.
        blocks = max(self.columns, 60) if not proc.part.columns else proc.part.columns[1] - proc.part.columns[0] + 1
        kept = math.floor(proc.position * blocks + 1e-9) / blocks
        start = proc.started_at
        cpu = sum(_shares(proc.costs, start, kept))
        self.at(self.now + self.model.round_trip / 2,
                ("event", PartStopped(proc.node, proc.part, kept, 0, cpu, self.weights(proc, start, kept))))

    def weights(self, proc: Proc, start: float, end: float) -> tuple[float, ...] | None:
        """What each unit this run rendered cost, as a one-thread POV-Ray's log tells
        (its blocks come in order); None for several threads, as in a real log."""
        return tuple(_shares(proc.costs, start, end)) if proc.threads == 1 else None

    # -- the job ---------------------------------------------------------------------
    def run(self, limit: float = 100000.0) -> Outcome:
        self.obey(self.scheduler.begin(0.0))
        next_burst, next_tick = self.model.burst, self.model.tick
        if self.farm.dies:
            self.at(self.farm.dies[1], ("die", self.farm.dies[0]))
        while self.finished_at is None and self.now < limit:
            when = min(next_burst, next_tick, self.queue[0][0] if self.queue else math.inf)
            self.advance(when)
            if when == next_burst:
                next_burst += self.model.burst
                for proc in [] if self.frames else self.procs:  # frames' logs do not stream back
                    if self.now >= proc.ready_at and proc.parse_left <= 0 and self.speed(proc.node, self.now) > 0:
                        self.feed(Progress(proc.node, proc.part, proc.position, self.now))
            elif when == next_tick:
                next_tick += self.model.tick
                self.feed(Tick(self.now))
                shown = self.shown_eta.update(self.now, remaining_seconds(self.scheduler, self.now))
                self.etas.append((self.now, shown, self.busy))
            else:
                _, _, item = heapq.heappop(self.queue)
                if item[0] == "event":
                    self.feed(item[1])
                elif item[0] == "die":
                    self.kill(item[1])
                else:
                    self.act(item)
        total = sum(self.costs)
        cores = self.farm.nodes * self.farm.cores
        ideal = total / cores + self.model.startup + self.model.parse
        makespan = self.finished_at if self.finished_at is not None else math.inf
        idle = 1.0 - self.busy / (cores * makespan)
        costs = [self.scheduler.unit_cost.get(u, 0.0) for u in range(len(self.costs))]
        return Outcome(makespan, ideal, idle, self.scheduler.cuts, self.parts, costs, *self.eta_errors(makespan, total))

    def eta_errors(self, makespan: float, total: float) -> tuple[float, float]:
        """How far the ETA shown once a quarter of the work was done (and a second or more
        remained) was from the time that really remained, as a share of it: the worst,
        and the share of that time it was within 30%."""
        errors = [abs(eta - (makespan - when)) / (makespan - when) for when, eta, busy in self.etas
                  if eta is not None and busy >= total / 4 and makespan - when >= 1.0]
        return max(errors, default=0.0), sum(e <= 0.3 for e in errors) / len(errors) if errors else 1.0

    def feed(self, event: object) -> None:
        event = _stamped(event, self.now)
        if isinstance(event, (PartDone, PartStopped, PartFailed)) and event.node in self.dead:
            return
        self.obey(self.scheduler.handle(event))

    def kill(self, node: str) -> None:
        self.dead.add(node)
        lost = [p for p in self.procs if p.node == node]
        for proc in lost:
            self.procs.remove(proc)
        self.obey(self.scheduler.handle(NodeLost(node, "the connection was lost", self.now)))


def _shares(costs: Sequence[float], start: float, end: float) -> list[float]:
    """The CPU each unit from floor(start) to ceil(end) took between those positions."""
    shares = []
    for index in range(math.floor(start), math.ceil(end)):
        shares.append(costs[index] * (min(end, index + 1) - max(start, index)))
    return shares


def _stamped(event: object, now: float) -> object:
    from dataclasses import replace

    return replace(event, now=now)


# -- the table ---------------------------------------------------------------------------
FARMS = [(nodes, cores) for cores in (1, 4) for nodes in (2, 4, 8, 16)]
WORK_PER_CORE = 30.0  # seconds of one core's work per core of the farm: a job worth a farm
STILL_UNITS = 1440  # a 1920x1440 still without antialiasing (1-row units)
AA_UNITS, AA_COLUMNS = 45, 60  # ... with antialiasing: 32x32 blocks


def scaled(costs: Sequence[float], total: float) -> list[float]:
    factor = total / sum(costs)
    return [c * factor for c in costs]


def render_twice(
    profile: Sequence[float], farm: FarmShape, model: Model = Model(), columns: int = 1
) -> tuple[Outcome, Outcome]:
    """A first render, and a render again sized by the costs the first measured."""
    costs = scaled(profile, WORK_PER_CORE * farm.nodes * farm.cores)
    first = Simulation(costs, farm, model, columns=columns).run()
    again = Simulation(costs, farm, model, prior=first.unit_costs, columns=columns).run()
    return first, again


def table(
    profiles: dict[str, tuple[list[float], int]], farms: Sequence[tuple[int, int]], model: Model = Model()
) -> list[str]:
    """A line per profile and farm; a profile comes with the block columns of its rows."""
    lines = [f"{'profile':<22} {'nodes x cores':>13}  {'first/ideal':>11} {'idle':>5} {'cuts':>4} {'ETA ok':>6}"
             f"  {'again/ideal':>11} {'idle':>5} {'cuts':>4} {'ETA ok':>6}"]
    for name, (profile, columns) in profiles.items():
        for nodes, cores in farms:
            first, again = render_twice(profile, FarmShape(nodes, cores), model, columns)
            lines.append(f"{name:<22} {f'{nodes} x {cores}':>13}  {first.ratio:>10.3f}x {first.idle_share:>5.1%}"
                         f" {first.cuts:>4} {first.eta_within:>6.0%}  {again.ratio:>10.3f}x {again.idle_share:>5.1%}"
                         f" {again.cuts:>4} {again.eta_within:>6.0%}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--antialias", action="store_true",
                        help=f"a still with antialiasing: {AA_UNITS} block rows of {AA_COLUMNS} block columns")
    parser.add_argument("--units", type=int, default=STILL_UNITS,
                        help="row blocks in the still (45: 1440 rows with AA)")
    parser.add_argument("--profiles", default="", help="comma-separated profile names (default: all)")
    parser.add_argument("--recorded", type=Path, default=Path(__file__).parent / "profiles",
                        help="a folder of job.json files whose unit_costs join the profiles")
    args = parser.parse_args(argv)
    columns = 1
    if args.antialias:
        args.units, columns = AA_UNITS, AA_COLUMNS
    profiles = {name: (make(args.units), columns) for name, make in PROFILES.items()}
    profiles.update(recorded_profiles(args.recorded) if args.recorded.is_dir() else {})
    if args.profiles:
        wanted = set(args.profiles.split(","))
        profiles = {name: costs for name, costs in profiles.items() if name in wanted}
    print(f"makespan against the ideal (work / cores + one start), {WORK_PER_CORE:.0f} s of work per core; "
          f"{args.units} units of {columns} block column(s), recorded profiles as recorded; ETA ok: the share "
          "of the time after a quarter of the work when the ETA shown was within 30% of the truth")
    for line in table(profiles, FARMS):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
