"""The coordinator: one loop that carries the workers' reports to the scheduler and
its commands back out, and keeps the job's books.

The loop runs on the caller's thread and owns all of a job's state: the
scheduler, the job record, the per-node figures and the progress shown. It
takes one report at a time from the workers' queue (or, when none comes
within a tick, the clock), turns it into the scheduler's event (pixels into
units, POV-Ray's times into costs), and carries out the commands that come
back: a part to a node's worker, a cut or a stop to its control thread, a
kept part into job.json and onto the canvas. Nothing here blocks on a node;
stitching runs on a thread of its own (`Stitcher`), fed through a queue.
Nodes' workers (`fabfile.workers`) only run commands and report.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fabfile import merge
from fabfile.errors import JobError, NodeError, OptionsError
from fabfile.eta import ShownEta, remaining_seconds
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
    Part,
    PartDone,
    PartFailed,
    PartStopped,
    Progress,
    Start,
    Stop,
    Tick,
    Warn,
)
from fabfile.jobs import Job
from fabfile.plan import FRAMES, Span
from fabfile.prepare import RADIOSITY
from fabfile.preview import Preview
from fabfile.progress import Reporter
from fabfile.scheduler import Scheduler
from fabfile.trace import PixelTrace, block_costs
from fabfile.workers import Failed, Interrupted, Logged, NodeWorker, PartJob, Rendered, Report

SETUP_PHASES = ("parse", "bounding", "photon", "radiosity")  # POV-Ray's work before tracing
SHOW_EVERY = 0.2  # seconds between showing the progress of running parts (the screen redraws at 2 Hz)


class Stitcher:
    """Adds kept parts to the canvas on a thread of its own, in the order they came."""

    def __init__(self, canvas: merge.BandCanvas, preview: Preview | None = None) -> None:
        self.canvas = canvas
        self.preview = preview
        self.seconds = 0.0
        self.error: Exception | None = None
        self._queue: queue.Queue[tuple[Span, Path] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, span: Span, path: Path) -> None:
        self._queue.put((span, path))

    def close(self) -> None:
        """Wait for every part given so far; raise what went wrong."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        if self.preview is not None:
            self.preview.flush(force=True)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue
            started = time.monotonic()
            try:
                self.canvas.add(*item)
                if self.preview is not None:
                    self.preview.flush()
            except Exception as exc:  # noqa: BLE001 - raised in the loop's thread by close()
                self.error = exc
            self.seconds += time.monotonic() - started


@dataclass
class RunInfo:
    """What the coordinator keeps of a part a worker runs."""

    started: float  # since the render began; a continuation keeps its band's first start
    units_before: float  # restored from a state file
    cut: Cut | None = None  # a cut was asked of it
    rows: int = 0  # rows (or frames) finished so far, for the progress shown
    continued: bool = False  # from a state file: POV-Ray counts only the pixels it adds


@dataclass
class Geometry:
    """How a job's parts map to rows, block columns and pixels."""

    job: Job
    threads: int  # POV-Ray threads per part
    columns: list[tuple[int, int]] = field(default_factory=list)  # block columns' pixel columns, 1-based

    def __post_init__(self) -> None:
        self.plan = self.job.plan
        self.width = int(self.job.settings.get("width") or 0)
        self.still = self.plan.kind != FRAMES
        self.unit_rows = self.plan.span(0, 0).size
        self.pixels_per_unit = max(1, self.width * self.unit_rows)

    def span(self, part: Part) -> Span:
        """The rows (or frames) of a part, its last unit narrowed to its block columns."""
        span = self.plan.span(part.first, part.last)
        if part.columns is None:
            return span
        first, last = part.columns
        return span.narrowed(self.columns[first][0], self.columns[last][1], self.plan.units[part.last][0])

    def part_pixels(self, part: Part) -> int:
        """Pixels in a part's unit, as its progress counts them (a narrowed one's only)."""
        if part.columns is None:
            return self.pixels_per_unit
        span = self.span(part)
        return max(1, span.size * (span.columns[1] - span.columns[0] + 1))

    def region_pixels(self, part: Part) -> int:
        """Pixels in the region POV-Ray renders for a part: its rows, as wide as its columns."""
        span = self.span(part)
        wide = span.columns[1] - span.columns[0] + 1 if span.columns else self.width
        return span.size * wide

    def unrendered(self, part: Part, pixels: tuple[int, int] | None, continued: bool) -> str | None:
        """Why a still's finished part cannot be trusted, from the pixels POV-Ray says it rendered."""
        expected = self.region_pixels(part)
        if pixels is None:
            if continued:
                return None  # its state file held every pixel: it rendered none, and says nothing
            return f"POV-Ray did not say how many pixels of {self.span(part).label()} it rendered"
        rendered, region = pixels
        if region != expected or (rendered != region and not continued) or rendered > region:
            return (f"POV-Ray rendered {rendered} of {region} pixels for {self.span(part).label()}, "
                    f"which has {expected}")
        return None

    def rows(self, units: tuple[int, ...] | range) -> int:
        return sum(self.plan.span(u, u).size for u in units)

    def weights(self, trace: PixelTrace | None, part: Part, offset: int, units: range) -> tuple[float, ...] | None:
        """The seconds each of `units` took in a one-thread run, from its log's trace
        (a run with several threads renders blocks out of order); `offset` is the
        pixels it found in its state file."""
        latest = trace.latest() if trace is not None else None
        if latest is None or not units or self.threads != 1:
            return None
        ends = [min(self.plan.span(part.first, unit).size * self.width - offset, latest[1]) for unit in units]
        start = max(0, (units.start - part.first) * self.pixels_per_unit - offset)
        costs = block_costs(trace, start, ends)
        return None if costs is None else tuple(costs)


@dataclass
class Coordinator:
    job: Job
    scheduler: Scheduler
    geometry: Geometry
    reporter: Reporter
    reports: queue.Queue
    workers: dict[str, NodeWorker] = field(default_factory=dict)
    stitcher: Stitcher | None = None
    tick: float = 0.5
    resume_hint: str = ""
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.runs: dict[tuple[str, Part], RunInfo] = {}
        self.outcomes: dict[tuple[str, Part], Rendered] = {}
        self.shown_eta = ShownEta()  # what the screen shows follows the estimates over a second
        self.left_out: dict[str, str] = {}
        self.timings: Counter[str] = Counter()
        self.began = self.clock()
        self.over = False
        self.shown_at = -math.inf  # when the running parts' progress was last shown

    def run(self) -> None:
        """Until every unit is done; raises when the job cannot finish."""
        self.began = self.clock()
        self.job.begin_session()
        self.apply(self.scheduler.begin(0.0))
        self._loop(math.inf)

    def wind_down(self, limit: float) -> bool:
        """The user stopped the job: each running band writes out what it has rendered
        (see Scheduler._wind_down), for at most `limit` seconds. True if all did."""
        self.apply(self.scheduler.handle(Interrupt(self.now())))
        self._loop(self.now() + limit)
        return self.over

    def _loop(self, deadline: float) -> None:
        next_tick = self.now() + self.tick
        while not self.over and self.now() < deadline:
            try:
                report = self.reports.get(timeout=self.tick)
            except queue.Empty:
                report = None
            now = self.now()
            if report is not None:
                event = self.event(report, now)
                if event is not None:
                    self.apply(self.scheduler.handle(event))
            if not self.over and now >= next_tick:
                next_tick = now + self.tick
                self.apply(self.scheduler.handle(Tick(now)))
                self.reporter.eta(self.shown_eta.update(now, remaining_seconds(self.scheduler, now)))

    def now(self) -> float:
        return self.clock() - self.began

    # -- reports in -------------------------------------------------------------------
    def event(self, report: Report, now: float) -> Event | None:
        """The scheduler's event for a worker's report."""
        key = (report.node, report.part)
        info = self.runs.get(key)
        if info is None:
            return None  # a part the scheduler has already let go
        geometry = self.geometry
        if isinstance(report, Logged):
            units_done = info.units_before + report.pixels / geometry.part_pixels(report.part)
            info.rows = min(geometry.span(report.part).size, int(units_done * geometry.unit_rows))
            if now - self.shown_at >= SHOW_EVERY:  # a log line comes per block: the screen needs fewer
                self._show_running()
            return Progress(report.node, report.part, units_done, now)
        if info.cut is not None and not isinstance(report, Interrupted):  # it ended, or failed, before its cut
            self.workers[report.node].drop_early(geometry.span(info.cut.kept))
        if isinstance(report, Failed):
            del self.runs[key]
            self._show_running()
            if report.fatal:
                args = self.job.options.get("args")
                if isinstance(report.error, OptionsError) and args:
                    raise OptionsError(f"{report.error} {args!r}")
                raise report.error
            return PartFailed(report.node, report.part, str(report.error), now)
        offset = round(info.units_before * geometry.part_pixels(report.part))
        part = report.part
        if isinstance(report, Interrupted):
            units_done = info.units_before + report.pixels / geometry.part_pixels(part)
            last = info.cut.kept.last if info.cut is not None else part.last
            units = range(part.first + math.floor(info.units_before), min(part.first + math.ceil(units_done), last + 1))
            by_columns = part.columns or (info.cut is not None and info.cut.keep_column is not None)
            weights = None if by_columns else geometry.weights(report.trace, part, offset, units)
            return PartStopped(report.node, part, units_done, now, report.cpu, weights)
        if geometry.still:
            problem = geometry.unrendered(part, report.outcome.pixels, info.continued)
            if problem is not None:  # never stitched: rendered again
                del self.runs[key]
                return PartFailed(report.node, part, f"node {report.node}: {problem}; rendering it again", now)
        self.outcomes[key] = report
        times = report.outcome.povray_times or {}
        self._count(times, report.outcome)
        startup = times["wall"] - times["cpu"] / geometry.threads if "wall" in times and "cpu" in times else None
        # A part that shot the photons a node's later parts load (fabfile.photons) tells
        # nothing of what those cost before tracing.
        shared = self.job.options.get("shared_photons")
        setup = sum(times.get(phase, 0.0) for phase in SETUP_PHASES if not (shared and phase == "photon"))
        units = range(part.first + math.floor(info.units_before), part.last + 1)
        weights = None if part.columns else geometry.weights(report.trace, part, offset, units)
        return PartDone(report.node, part, now, times.get("cpu"), startup, setup, weights)

    def _count(self, times: dict[str, float], outcome) -> None:
        self.timings["parts"] += 1
        self.timings["part_commands"] += outcome.seconds
        self.timings["fetch"] += outcome.fetch_seconds
        for phase, seconds in times.items():
            self.timings[f"povray_{phase}"] += seconds
        if "radiosity" in times and not self.timings["radiosity_unseen"] and _banded_without_radiosity(self.job):
            # POV-Ray did a pretrace povfarm did not see in the scene's code: its bands may show seams.
            self.timings["radiosity_unseen"] = 1
            text = ("POV-Ray used radiosity, which povfarm did not find in the scene's code: the bands may show "
                    "seams; render it again with --exact, or tell us how the scene switches radiosity on")
            self.reporter.warn(text)
            self.job.note(self.now(), text)

    # -- commands out -----------------------------------------------------------------
    def apply(self, commands: list[Command]) -> None:
        # Work goes out first: the books (job.json, the canvas) can wait a moment, a node cannot.
        for command in sorted(commands, key=lambda c: not isinstance(c, (Start, Cut, Stop))):
            if isinstance(command, Start):
                self._start(command)
            elif isinstance(command, Cut):
                self.runs[(command.node, command.part)].cut = command
                self.timings["cuts"] += 1
                self.timings["column_cuts"] += int(command.keep_column is not None)
                self.workers[command.node].cut(self.geometry.span(command.part), self.geometry.span(command.kept))
            elif isinstance(command, Stop):
                if command.reason != HUNG:  # how a hung part ends still tells whether its node answers
                    self.runs.pop((command.node, command.part), None)
                self.workers[command.node].stop(self.geometry.span(command.part))
            elif isinstance(command, Keep):
                self._keep(command)
            elif isinstance(command, Warn):
                label = self.geometry.span(command.part).label() if command.part else ""
                text = command.text.replace("{part}", label)
                self.reporter.warn(text)
                self.job.note(self.now(), text, command.node)
            elif isinstance(command, LeaveOut):
                text = f"leaving out node {command.node} for the rest of the job: {command.reason}"
                self.reporter.warn(text)
                self.job.note(self.now(), text, command.node)
                self.left_out[command.node] = command.reason
                for key in [k for k in self.runs if k[0] == command.node]:
                    del self.runs[key]
            elif isinstance(command, Finish):
                self.over = True
            elif isinstance(command, GiveUp):
                raise NodeError(f"{command.reason}; {self.resume_hint}")
        # Whatever finished and was not kept (a duplicate) is let go.
        self.outcomes.clear()

    def _start(self, command: Start) -> None:
        geometry = self.geometry
        started = self.now()
        resume_from = None
        rows = 0
        if command.resume_from is not None:
            before = self.runs.pop((command.node, command.resume_from), None)
            started = before.started if before is not None else started
            resume_from = geometry.span(command.resume_from)
            rows = min(geometry.span(command.part).size, int(command.units_before * geometry.unit_rows))
        self.runs[(command.node, command.part)] = RunInfo(
            started, command.units_before, rows=rows, continued=resume_from is not None
        )
        job = PartJob(command.part, geometry.span(command.part), resume_from, streamed=geometry.still)
        self.workers[command.node].start(job)

    def _keep(self, command: Keep) -> None:
        key = (command.node, command.part)
        rendered = self.outcomes.get(key)
        info = self.runs.pop(key, None)
        if rendered is None or info is None:
            raise JobError(f"node {command.node}: a finished part's files went missing; render again with --resume")
        outcome = rendered.outcome
        seconds = self.now() - info.started
        self.job.record_parts([f.span for f in outcome.files], command.node, seconds, info.started)
        if self.stitcher is not None:
            for fetched in outcome.files:
                self.stitcher.add(fetched.span, fetched.path)
        self.reporter.advance(command.node, self.geometry.rows(command.new_units), 1)
        self._show_running()

    def _show_running(self) -> None:
        self.shown_at = self.now()
        now: dict[str, str] = {}
        for (node, part), info in sorted(self.runs.items(), key=lambda item: item[0][1].first):
            span = self.geometry.span(part)
            said = f"{span.label()} ({info.rows * 100 // max(1, span.size)}%)" if self.geometry.still else span.label()
            now[node] = f"{now[node]}, {said}" if node in now else said
        self.reporter.running(sum(info.rows for info in self.runs.values()), now)

    # -- the end ----------------------------------------------------------------------
    def close_workers(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.timings["gated_cuts"] = sum(worker.gated_cuts for worker in self.workers.values())
        self.timings["early_bands"] = sum(worker.early_bands for worker in self.workers.values())


def _banded_without_radiosity(job: Job) -> bool:
    """A still in bands whose parts do not share a radiosity pretrace."""
    return job.plan_kind != FRAMES and len(job.plan.units) > 1 and job.guarantee != RADIOSITY
