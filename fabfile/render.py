"""Render a job across the cluster: prepare, connect, upload, schedule, fetch, merge.

Each node runs as many parts at once as it has slots; a worker thread per
slot asks the scheduler for the next part, renders it, fetches it and
reports back. A still starts as one band per core; a worker with nothing
left to do looks at the running bands' progress and may cut the one that
will finish last (`maybe_cut`): the continuation's POV-Ray starts up beside
it and waits at a gate, then that band's POV-Ray is interrupted and its
worker opens the gate to continue it from POV-Ray's state file, while the
rest goes out.
The main thread alone changes the job record and watches for hung parts,
lost nodes and Ctrl-C, so finished parts are always on disk.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from fabfile import deps, merge, povopts
from fabfile.errors import JobError, NodeError, OptionsError, PovfarmError, SceneError
from fabfile.inventory import Cluster, Node, load_cluster
from fabfile.jobs import Job, create_job, earlier_costs, latest_job, load_job
from fabfile.nodejob import NodeJob, PartInterrupted, povray_ini_line, scene_depth
from fabfile.plan import (
    FRAMES,
    Plan,
    Span,
    column_ranges,
    parse_part_name,
    plan_frames,
    plan_still,
    still_unit_rows,
)
from fabfile.progress import QuietReporter, Reporter
from fabfile.scheduler import Part, Running, Scheduler, part_origin
from fabfile.trace import PixelTrace, block_costs, scaled_costs
from fabfile.transport import Session, open_session, remote_workdir, shell_join


@dataclass(frozen=True)
class RenderRequest:
    """What the user asked for; None means "as the scene or POV-Ray says"."""

    scene: Path
    cluster: Path = Path("cluster.yaml")
    renders: Path = Path("renders")
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    args: str = ""
    output: Path | None = None
    resume: bool = False
    threads: int | None = None  # POV-Ray threads per part; None: a node's cores for a still, 1 for frames
    allow_outside: bool = False
    keep_remote: bool = False


@dataclass(frozen=True)
class Tuning:
    """How the farm paces itself; invoke.yaml may change these."""

    overlap: int = 1
    guided_factor: float = 1.5
    max_failures: int = 2
    hang_grace: float = 20.0
    hang_factor: float = 4.0
    stop_timeout: float = 10.0
    latency_factor: float = 1.0
    probes: int = 0
    cuts: bool = True  # stills: start with one equal part per slot, cut running parts to balance
    cut_interval: float = 0.25  # seconds between looks at running parts' progress
    cut_min_start: float = 0.5  # seconds a POV-Ray start is assumed to cost until one is measured
    gated_cuts: bool = True  # start a cut part's continuation before the part stops (NodeJob.launch_gated)
    gated_start: float = 0.1  # seconds such a continuation still costs its core: the state file, settling
    # POV-Ray 3.7 aborts when its include header opens after it has waited ~10.5 s at it (measured;
    # vfepovms.cpp:150, m_Sanity): a POV-Ray that waited at its gate this long is not used, but
    # replaced by one started then.
    gate_limit: float = 6.0
    spares: bool = True  # start a node's next POV-Ray before its part ends, for the rest of a cut (Spare)
    column_cuts: bool = True  # a band in its last block row: cut that row by columns
    spare_lead: float = 0.5  # ... this long before the end foreseen, beyond a POV-Ray's start-up
    progress_interval: float = 2.0  # seconds between looks at a still's running parts, for the progress bar
    stop_wait: float = 600.0  # the longest a band cut by columns is waited on to reach its cut


@dataclass
class Seen:
    """What the looks at a running part's log showed."""

    pixels: int  # at the last look
    looked: float  # when
    grew: float | None = None  # the last look that found more pixels than the one before
    last_unit: tuple[float, float] | None = None  # (when, block column) first seen in its last unit


@dataclass(frozen=True)
class Traced:
    """A still's part's POV-Ray log as it streamed back (see fabfile.trace)."""

    trace: PixelTrace
    offset: int  # the part's pixels in its state file, before this POV-Ray's count began


@dataclass
class Continuation:
    """A cut part's continuation, started early where it can be (NodeJob.launch_gated).
    Farm.lock guards it: the cut's thread and the part's worker both look."""

    launched: bool = False  # the launch is over, either way
    gated: bool = False  # its POV-Ray waits at its gate for the state file
    gated_at: float = 0.0  # ... since then (time.monotonic)
    needed: bool = True  # False once the part ended without being stopped for the cut
    stop_at: int | None = None  # stop the part once its POV-Ray has rendered this many pixels, not at once


@dataclass
class Spare:
    """A POV-Ray started on a node shortly before its part ends, waiting at its gate
    (NodeJob.launch_gated) for the rows a cut will give that node: the tail of
    another running part, planned when the start was. So the node's core does
    not sit idle while a POV-Ray starts up (~0.3 s) when the cut comes."""

    victim: str  # the node whose part will be cut
    part: Part  # that part, as it was when planned
    keep_last: int  # the last unit it keeps (the last block column of its last unit, `columns`)
    span: Span  # the rows the spare renders: the rest of that part
    columns: bool = False  # the cut is by columns (Scheduler.cut_columns)
    forecast: bool = False  # ... placed by a neighbouring row's block costs (Farm.column_costs)
    ready: threading.Event = field(default_factory=threading.Event)  # its launch is over
    gated: bool = False  # ... and it waits at its gate
    gated_at: float = 0.0  # ... since then (time.monotonic)


@dataclass
class NodeStats:
    parts: int = 0
    units: int = 0
    seconds: float = 0.0


@dataclass
class RenderSummary:
    job: Job
    output: Path
    wall_seconds: float
    unit: str
    nodes: dict[str, NodeStats] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class JobInterrupted(JobError):
    """The user stopped the job; finished parts are kept."""


# -- preparing a job -------------------------------------------------------------------
def prepare_job(request: RenderRequest, cluster: Cluster, reporter: Reporter) -> tuple[Job, deps.SceneFiles]:
    """Check the scene and options, find its files, and create (or reopen) its job."""
    scene = Path(os.path.abspath(request.scene))
    if not scene.is_file():
        raise SceneError(f"{request.scene}: scene not found; check the path given to --scene")
    if request.resume:
        job = latest_job(request.renders, scene=scene, unfinished=True)
        files = scan_files(
            scene, job.settings.get("input_file"), job.settings.get("include_header"),
            job.options.get("allow_outside", False), reporter,
        )
        reporter.info(f"resuming job {job.id}: {len(job.parts)} parts already here")
        given = {"--width": request.width, "--height": request.height, "--frames": request.frames,
                 "--args": request.args or None}
        ignored = [name for name, value in given.items() if value is not None]
        if ignored:
            reporter.warn(f"--resume continues job {job.id} with the options it started with; "
                          f"ignoring {', '.join(ignored)}")
        return job, files
    settings, job_args = resolve_settings(scene, request)
    files = scan_files(scene, settings.input_file, settings.include_header, request.allow_outside, reporter)
    if settings.animated:
        plan = plan_frames(settings.frames)
    elif files.whole_image:
        # Radiosity's pretrace samples the region being rendered, and jitter and crand
        # draw from one random stream: bands would not match POV-Ray alone.
        reporter.warn(
            f"the scene uses {', '.join(files.whole_image)}, whose result depends on the whole image: "
            "rendering the still as one part so that it matches POV-Ray alone "
            "(animations still spread frame by frame)"
        )
        plan = plan_still(settings.height, block=settings.height)
    else:
        plan = plan_still(settings.height, still_unit_rows(settings.antialias, settings.block_size))
    job = create_job(
        request.renders,
        scene,
        cluster=cluster.source,
        options={
            "job_args": list(job_args),
            "args": request.args,
            "threads": request.threads,
            "allow_outside": request.allow_outside,
            "keep_remote": request.keep_remote,
        },
        settings=asdict(settings),
        plan_kind=plan.kind,
        plan_units=[list(u) for u in plan.units],
        output="",
    )
    default_output = job.folder / ("frames" if settings.animated else f"{scene.stem}.png")
    job.output = str(request.output or default_output)
    job.save()
    return job, files


def resolve_settings(scene: Path, request: RenderRequest) -> tuple[povopts.Settings, list[str]]:
    """What POV-Ray will render, and the options every part of the job gets."""
    for name, value in (("--width", request.width), ("--height", request.height), ("--frames", request.frames)):
        if value is not None and value < 1:
            raise OptionsError(f"{name} {value}: must be 1 or more")
    if request.threads is not None and request.threads < 1:
        raise OptionsError(f"--threads {request.threads}: must be 1 or more")
    user_args = povopts.split_args(request.args)
    settings = povopts.Settings(input_file=scene.name)
    if scene.suffix.lower() == ".ini":
        settings = povopts.read_ini(scene, povopts.Settings(input_file=None))
        if not settings.input_file:
            raise SceneError(f"{scene.name}: the INI file names no Input_File_Name; add one")
    for token in user_args:
        settings = povopts.apply_switch(settings, token, "--args")
    if request.width is not None:
        settings = replace(settings, width=request.width)
    if request.height is not None:
        settings = replace(settings, height=request.height)
    job_args = [*user_args, f"+W{settings.width}", f"+H{settings.height}"]
    if request.frames is not None:
        settings = replace(settings, initial_frame=1, final_frame=request.frames)
        job_args += ["+KFI1", f"+KFF{request.frames}"]
    povopts.validate(settings)
    job_args += ["-D", "-P", f"+FN{settings.bits}"]  # +WT follows once the nodes' cores are known
    return settings, job_args


def scan_files(
    scene: Path, input_file: str | None, header: str | None, allow_outside: bool, reporter: Reporter
) -> deps.SceneFiles:
    extra = []
    if scene.suffix.lower() == ".ini" and input_file:
        extra_path = scene.parent / input_file
        if not extra_path.is_file():
            raise SceneError(f"{extra_path}: the scene named by {scene.name} is not found")
        extra.append(extra_path)
    if header and (scene.parent / header).is_file():
        extra.append(scene.parent / header)  # else POV-Ray's library path has it, or POV-Ray says so
    files = deps.scan_scene(scene, extra)
    if files.outside:
        names = ", ".join(str(p) for p in files.outside[:5])
        if not allow_outside:
            raise SceneError(
                f"the scene reads files outside {files.root}: {names}; move them into the scene's "
                "folder, or pass --allow-outside to upload them too"
            )
        reporter.warn(f"uploading files from outside the scene's folder: {names}")
    return files


def entry_line(job: Job) -> str:
    """The line of povfarm.ini that names what POV-Ray reads first."""
    scene = Path(job.scene)
    if scene.suffix.lower() == ".ini":
        return povray_ini_line("Include_Ini", scene.name)
    return povray_ini_line("Input_File_Name", scene.name)


def shipped_names(files: deps.SceneFiles) -> list[str]:
    """Every file to upload, as a path relative to the scene's folder."""
    names = list(files.files)
    names += [os.path.relpath(path, files.root) for path in files.outside]
    return names


# -- connecting ----------------------------------------------------------------
@dataclass
class NodeReady:
    node: Node
    session: Session
    workdir: str
    cores: int


NodeCheck = Callable[[Node, Session, str], int]


def connect_nodes(nodes: Sequence[Node], check: NodeCheck) -> tuple[list[NodeReady], dict[str, str]]:
    """Open every node in parallel and check it; the ones that fail come back with their reason."""
    ready: list[NodeReady] = []
    failed: dict[str, str] = {}

    def attempt(node: Node) -> NodeReady:
        session = open_session(node)
        try:
            workdir = remote_workdir(node, session)
            return NodeReady(node, session, workdir, check(node, session, workdir))
        except BaseException:
            session.close()
            raise

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        futures = {node.name: pool.submit(attempt, node) for node in nodes}
        for node in nodes:
            try:
                ready.append(futures[node.name].result())
            except PovfarmError as exc:
                failed[node.name] = str(exc)
            except Exception as exc:  # noqa: BLE001 - one node's surprise is data, not a crash
                failed[node.name] = f"node {node.name}: {type(exc).__name__}: {exc}"
    return ready, failed


def render_check(node: Node, session: Session, workdir: str) -> int:
    """The pre-flight of a render node: POV-Ray present, workdir writable; returns its cores."""
    script = (
        f"command -v {shell_join([node.povray])} >/dev/null || {{ echo nopovray; exit 3; }}; "
        f"mkdir -p {shell_join([workdir])} && test -w {shell_join([workdir])} || {{ echo noworkdir; exit 4; }}; "
        "nproc"
    )
    result = session.run(script, timeout=max(10.0, node.connect_timeout * 2))
    if "nopovray" in result.stdout:
        raise NodeError(f"node {node.name}: POV-Ray ({node.povray}) is not installed; run inv provision")
    if "noworkdir" in result.stdout or not result.ok:
        raise NodeError(f"node {node.name}: workdir {workdir} cannot be written; fix 'workdir' or run inv provision")
    try:
        return int(result.stdout.split()[-1])
    except (ValueError, IndexError):
        return 1


# -- running ------------------------------------------------------------------
class Farm:
    """One job running on the nodes that answered."""

    def __init__(self, job: Job, files: deps.SceneFiles, cluster: Cluster, reporter: Reporter, tuning: Tuning):
        self.job = job
        self.files = files
        self.cluster = cluster
        self.reporter = reporter
        self.tuning = tuning
        self.plan: Plan = job.plan
        self.settings = povopts.Settings(**job.settings)
        self.events: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.handled = threading.Condition(self.lock)  # the main thread has handled a part's outcome
        self.stopping = threading.Event()
        self.node_jobs: dict[str, NodeJob] = {}
        self.stats: dict[str, NodeStats] = {}
        self.left_out: dict[str, str] = {}
        self.threads: list[threading.Thread] = []
        self.timings: Counter[str] = Counter()
        self.started_at: dict[Part, float] = {}
        still = job.plan_kind != FRAMES
        self.canvas = merge.BandCanvas(self.settings.width, self.settings.height) if still else None
        self.render_started = time.monotonic()
        self.scheduler: Scheduler | None = None  # made once the nodes are ready
        self.cuts: dict[tuple, Part] = {}  # a part being cut (_key): what it keeps
        self.continuations: dict[tuple, Continuation] = {}  # the same key: its continuation
        # A cut's continuation waits at an include-header FIFO: not when the user set a header.
        self.gated_cuts = tuning.gated_cuts and not self.settings.include_header
        self.spares: dict[str, Spare] = {}  # node: its next POV-Ray, started early (Farm.lock)
        self.next_look: dict[tuple[str, Part], float] = {}  # when plan_spare looks at a running part again
        self.next_cut_check = 0.0
        self.progress_seen: dict[tuple[str, Part], Seen] = {}  # the looks at a running part's log
        self.traces: dict[tuple[str, Part], Traced] = {}  # a still's parts' logs, as they stream back
        self.profiles: dict[int, list[float]] = {}  # a unit's block costs, once a trace held them all
        self.restored: dict[tuple[str, Part], int] = {}  # pixels a continued part found in its state file
        self.unit_rows = self.plan.span(0, 0).size  # rows in a still's unit (a row block)
        self.pixels_per_unit = self.settings.width * self.unit_rows
        # A unit's block columns, on POV-Ray's block grid as its rows are: near the end, a band's
        # last unit can be cut by them (Scheduler.cut_columns).
        self.columns = column_ranges(self.settings.width, self.settings.block_size)
        self.running_rows: dict[tuple, int] = {}  # a running part (_key): its rows finished
        # A still's bands can be cut and continued (+C); frames and a whole-image part cannot.
        self.cutting = tuning.cuts and job.plan_kind != FRAMES and len(job.plan.units) > 1
        # Only where a unit is a row of POV-Ray's blocks (antialiasing): there a band's blocks
        # are its units' blocks, in order. Without antialiasing, units of a few rows cut finely.
        # Not for 16-bit stills: they are stitched row by row, from whole bands.
        self.column_cuts = (
            self.cutting and tuning.column_cuts and self.settings.bits == 8 and len(self.columns) > 1
            and self.unit_rows == self.settings.block_size
        )
        self.latency: float | None = None  # the least idle time of a POV-Ray run seen
        self.setup: float = 0.0  # the most a part spent before tracing: parsing, photons...

    def run(self) -> RenderSummary:
        started = time.monotonic()
        try:
            with self.timed("start"):
                try:
                    self.start_nodes()
                except PovfarmError:
                    self.job.status = "failed"
                    self.job.save()
                    raise
            if self.job.done_units() != set(range(len(self.plan.units))):
                with self.timed("render"):
                    self.schedule()
        except KeyboardInterrupt:
            self.abort("interrupted")
            raise JobInterrupted(
                f"interrupted: {len(self.job.parts)} finished part(s) kept in {self.job.folder}; "
                f"continue with: inv render --scene={_quoted(self.job.scene)} --resume"
            ) from None
        # The nodes are cleaned up while the output is encoded: neither waits for the other.
        cleanup = threading.Thread(target=self.finish_nodes, daemon=True)
        cleanup.start()
        try:
            with self.timed("merge"):
                output = self.merge()
        finally:
            with self.timed("cleanup"):
                cleanup.join()
        self.timings["wall"] = time.monotonic() - started
        self.job.status = "done"
        scheduler = self.scheduler
        if self.plan.kind != FRAMES and scheduler and len(scheduler.unit_cost) == len(self.plan.units):
            # What each row block cost, so that the next render of this still starts even.
            self.job.unit_costs = [round(scheduler.unit_cost[unit], 4) for unit in range(len(self.plan.units))]
        self.job.timings = {key: round(value, 3) for key, value in self.timings.items()}
        self.job.save()
        return RenderSummary(
            self.job, output, self.timings["wall"], self.plan.kind, self.stats, self.left_out, self.job.timings
        )

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[phase] += time.monotonic() - started

    # -- nodes ---------------------------------------------------------------
    def start_nodes(self) -> None:
        connect_started = time.monotonic()
        ready, failures = connect_nodes(self.cluster.nodes, render_check)
        self.timings["connect"] += time.monotonic() - connect_started
        for name, reason in failures.items():
            self.reporter.warn(f"leaving out {reason}")
            self.left_out[name] = reason
        if not ready:
            raise NodeError("no node is usable: " + "; ".join(failures.values()))
        names = shipped_names(self.files)
        depth = scene_depth(names)
        line = entry_line(self.job)

        def upload(item: NodeReady) -> NodeJob:
            node_job = NodeJob(item.session, item.workdir, self.job.id, item.node.povray, names, depth)
            node_job.prepare(self.files.root, line)
            return node_job

        self.reporter.info(
            f"job {self.job.id}: uploading {len(names)} file(s) to {len(ready)} node(s)"
        )
        with ThreadPoolExecutor(max_workers=len(ready)) as pool:
            futures = [(item, pool.submit(upload, item)) for item in ready]
            for item, future in futures:
                try:
                    self.node_jobs[item.node.name] = future.result()
                except PovfarmError as exc:
                    self.reporter.warn(f"leaving out {exc}")
                    self.left_out[item.node.name] = str(exc)
                    item.session.close()
        if not self.node_jobs:
            raise NodeError("no node is usable: " + "; ".join(self.left_out.values()))
        cores = {item.node.name: item.node.threads or item.cores for item in ready if item.node.name in self.node_jobs}
        per_part = self.job.options.get("threads")
        if per_part is None:
            # A still's part uses every core of the smallest node: POV-Ray's own threads share
            # a band's blocks as they go, with no start-up of their own. Frames spread one per
            # core. Every part of a job gets the same +WT (photons depend on it), a resumed one too.
            per_part = 1 if self.plan.kind == FRAMES else max(1, min(cores.values()))
            self.job.options["threads"] = per_part
            self.job.save()
        self.part_args = [*self.job.options["job_args"], f"+WT{per_part}"]
        # A node renders `threads // +WT` parts at once on its cores, plus `overlap`
        # more whose POV-Ray start-up (mostly idle waiting) hides behind them.
        self.capacity = {name: max(1, count // per_part) for name, count in cores.items()}
        # Stills that are cut to balance run one part per core: a cut part continues where
        # it stopped, and a second part sharing its core would only blur its pace.
        spare = 0 if self.cutting else self.tuning.overlap
        self.slots = {name: count + spare for name, count in self.capacity.items()}
        for node_name in self.node_jobs:
            self.job.nodes[node_name] = {"slots": self.slots[node_name], "capacity": self.capacity[node_name]}
            self.stats[node_name] = NodeStats()

    def finish_nodes(self) -> None:
        keep = self.job.options.get("keep_remote", False)
        # A node that hung or was left out may not answer: close it, touch nothing.
        scheduler = self.scheduler
        unhealthy = set(scheduler.stalled) | set(scheduler.excluded) if scheduler else set()

        def finish(node_job: NodeJob) -> None:
            try:
                if node_job.name not in unhealthy:
                    # Duplicates of hung parts may still run.
                    node_job.stop_all(timeout=self.tuning.stop_timeout * 3, remove=not keep)
            except PovfarmError as exc:
                self.reporter.warn(f"could not clean up: {exc}")
            finally:
                node_job.session.close()

        self._bounded_parallel(finish, self.node_jobs.values(), self.tuning.stop_timeout * 3)

    def _bounded_parallel(self, action: Callable[[NodeJob], None], node_jobs, timeout: float) -> None:
        # Daemon threads with a deadline: a hung node must not hold up the end of a job.
        threads = [threading.Thread(target=action, args=(nj,), daemon=True) for nj in node_jobs]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- scheduling ----------------------------------------------------------
    def schedule(self) -> None:
        done = self.job.done_units()
        prior = None
        if self.cutting and not done:
            found = earlier_costs(self.job)
            if found is not None:
                earlier, prior = found
                self.reporter.info(f"first bands sized by the cost of rows measured in job {earlier.id}")
        self.scheduler = Scheduler(
            unit_count=len(self.plan.units),
            slots=sum(self.slots.values()),
            capacity=sum(self.capacity.values()),
            probes=self.tuning.probes,
            even_start=self.cutting,
            prior=prior,
            done=done,
            guided_factor=self.tuning.guided_factor,
            max_failures=self.tuning.max_failures,
            hang_grace=self.tuning.hang_grace,
            hang_factor=self.tuning.hang_factor,
            column_blocks=len(self.columns) if self.column_cuts else 1,
        )
        done_total = sum(self.plan.span(u, u).size for u in done)
        self.render_started = time.monotonic()
        self.reporter.start(self.plan.total, done_total, self.plan.kind, list(self.node_jobs))
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in previous:
                signal.signal(sig, _raise_interrupt)
        try:
            for name, count in self.slots.items():
                for _ in range(count):
                    thread = threading.Thread(target=self.work, args=(name,), daemon=True)
                    thread.start()
                    self.threads.append(thread)
            if self.plan.kind != FRAMES:
                threading.Thread(target=self.watch_progress, daemon=True).start()
            if self.cutting and self.gated_cuts and self.tuning.spares:
                threading.Thread(target=self.watch_ends, daemon=True).start()
            self.watch()
        except PovfarmError:
            self.abort("failed")
            raise
        finally:
            self.reporter.stop()
            if in_main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def work(self, node: str) -> None:
        node_job = self.node_jobs[node]
        final = self.settings.final_frame
        while not self.stopping.is_set():
            with self.lock:
                if self.scheduler.finished or node in self.scheduler.excluded:
                    return
                part = self.scheduler.next_part(node, time.monotonic())
            if part is None:
                try:
                    cut = self.maybe_cut(node)
                except Exception as exc:  # noqa: BLE001 - a cut is an optimisation: never lose a worker to one
                    self.reporter.warn(f"node {node}: could not balance by cutting a part: {exc}")
                    cut = False
                if not cut:  # after a cut, its rest is there to take at once
                    with self.handled:  # a part just finished here is running until handled
                        self.handled.wait(0.05)
                continue
            resume_from: Span | None = None
            gated = self.take_spare(node, part)
            while part is not None:
                span = self.span_of(part)
                if resume_from is None:
                    self.started_at[part] = time.monotonic() - self.render_started
                on_log = self.trace_log(node, part) if self.plan.kind != FRAMES else None
                try:
                    outcome = node_job.render(
                        span, self.part_args, self.job.parts_folder, final, resume_from, gated, on_log
                    )
                except (SceneError, OptionsError) as exc:
                    self.events.put(("fatal", node, part, exc))
                    return
                except PovfarmError as exc:
                    cut = self.take_cut(node, part, exc)
                    if cut is not None:  # cut on purpose: continue with what it kept
                        kept, gated = cut
                        self.started_at[kept] = self.started_at.pop(part, 0.0)
                        part, resume_from = kept, span
                        continue
                    self.events.put(("failed", node, part, exc))
                except Exception as exc:  # noqa: BLE001 - a surprise on one node is that node's failure
                    self.take_cut(node, part, None)
                    self.events.put(("failed", node, part, NodeError(f"node {node}: {type(exc).__name__}: {exc}")))
                else:
                    self.take_cut(node, part, None)  # finished before the cut took: all of it is here
                    self.events.put(("done", node, part, (outcome, self.rendered_itself(node, part))))
                part = None

    # -- cutting ----------------------------------------------------------------
    def span_of(self, part: Part) -> Span:
        """The rows a part renders, and the columns of its last unit if they were cut."""
        span = self.plan.span(part.first, part.last)
        if part.columns is None:
            return span
        first, last = part.columns
        return span.narrowed(self.columns[first][0], self.columns[last][1], self.plan.units[part.last][0])

    def extent(self, part: Part) -> float:
        """A part's size in units (a last unit narrowed to some columns counts its share)."""
        if part.columns is None:
            return float(part.count)
        first, last = part.columns
        return part.count - 1 + (self.columns[last][1] - self.columns[first][0] + 1) / self.settings.width

    def block_pixels(self, part: Part) -> int:
        """Pixels in a block of a part's last unit."""
        start, end = self.plan.units[part.last]
        return (end - start + 1) * self.settings.block_size

    def column_position(self, part: Part, units_done: float) -> float:
        """How far along its last unit a part is, in block columns (see look); a row
        rendered whole while its part has not ended yet is at its end, not past it."""
        first, last = part.columns or (0, len(self.columns) - 1)
        return min(last + 1, first + (units_done - (part.count - 1)) * self.pixels_per_unit / self.block_pixels(part))

    def look(self, node: str, part: Part) -> tuple[float, float] | None:
        """Look at a running part's log: its progress in units, and how many of them
        it found in its state file (a continued part); None if unknown. Its streamed
        log tells without a command, once POV-Ray has logged a block."""
        traced = self.traces.get((node, part))
        latest = traced.trace.latest() if traced is not None else None
        if latest is None:
            pixels = self.node_jobs[node].progress(self.span_of(part), timeout=2.0)
            grew = looked = time.monotonic()
            if pixels is None:
                return None
        else:
            (grew, pixels), looked = latest, time.monotonic()
        with self.lock:
            seen = self.progress_seen.setdefault((node, part), Seen(pixels, looked))
            if pixels > seen.pixels or (latest is not None and seen.grew is None):
                seen.grew = grew
            seen.pixels, seen.looked = pixels, looked
            # A continued part's POV-Ray counts only the pixels it renders itself.
            restored = self.restored.get((node, part), 0)
            units_done = (restored + pixels) / self.pixels_per_unit
            if self.column_cuts and seen.last_unit is None and units_done >= part.count - 1:
                seen.last_unit = (looked, self.column_position(part, units_done))
        return units_done, restored / self.pixels_per_unit

    def can_cut_columns(self, part: Part) -> bool:
        """Whether a part's last unit may be cut by columns: a band stops at a block by its
        POV-Ray's count, so its blocks must come in order, one thread's."""
        return self.column_cuts and (part.count == 1 or self.job.options.get("threads") == 1)

    def pixels_until(self, node: str, part: Part, column: int) -> int:
        """The pixels a band's current POV-Ray has rendered once it has finished block
        `column` of its last unit. Call with the lock held."""
        return self.count_at(part, part.last, self.restored.get((node, part), 0), column)

    def count_at(self, part: Part, unit: int, offset: int, column: int | None = None) -> int:
        """A part's POV-Ray's count of pixels once it has finished unit `unit` of the
        part up to block `column` (None: the unit's start). It counts only its own
        pixels, not the `offset` it found in its state file; across the full width,
        so not for a part of one narrowed row."""
        before = (unit - part.first) * self.pixels_per_unit - offset
        if column is None:
            return before
        start, end = self.plan.units[unit]
        return before + (end - start + 1) * self.columns[column][1]

    def block_pace(self, node: str, part: Part, position: float, now: float, pace: float) -> float:
        """Seconds per block of a part's last unit: as seen across that unit once the part
        has gone a few blocks into it, else the part's pace (`pace`, seconds per unit).
        Call with the lock held."""
        seen = self.progress_seen.get((node, part))
        if seen is not None and seen.last_unit is not None:
            since, first = seen.last_unit
            if position - first >= 2:
                return (now - since) / (position - first)
        return pace * self.block_pixels(part) / self.pixels_per_unit

    def trace_log(self, node: str, part: Part) -> Callable[[str], None]:
        """A new trace of the part's log as it streams back; its feed, stamped on arrival."""
        trace = PixelTrace()
        with self.lock:
            self.traces[(node, part)] = Traced(trace, self.restored.get((node, part), 0))
        return lambda text: trace.feed(text, time.monotonic())

    def unit_profile(self, unit: int) -> list[float] | None:
        """What each block column of a unit cost, if a one-thread POV-Ray's trace
        holds all of that row. Call with the lock held."""
        if unit in self.profiles:
            return self.profiles[unit]
        if not 0 <= unit < len(self.plan.units) or self.job.options.get("threads") != 1:
            return None
        for (_, part), traced in list(self.traces.items()):
            # A part of one narrowed row renders only its columns: its counts are not the grid's.
            if not part.first <= unit <= part.last or (part.columns and part.count == 1):
                continue
            ends = [self.count_at(part, unit, traced.offset, column) for column in range(len(self.columns))]
            costs = block_costs(traced.trace, self.count_at(part, unit, traced.offset), ends)
            if costs is not None:
                self.profiles[unit] = costs
                return costs
        return None

    def unit_weights(self, node: str, part: Part, units: range) -> list[float] | None:
        """The seconds each of `units` took in a one-thread part's run of POV-Ray, by its
        trace; None if the trace does not tell. A band's rows differ tenfold in cost,
        and the next render of the scene sizes its bands and places its cuts by what
        each cost (Scheduler.prior). Call with the lock held."""
        traced = self.traces.get((node, part))
        latest = traced.trace.latest() if traced is not None else None
        if latest is None or not units or part.columns or self.job.options.get("threads") != 1:
            return None
        width = self.settings.width
        # A continued run starts inside its first unit, where its state file ended; a cut
        # one ends inside its last. (A unit at the image's foot may have fewer rows.)
        ends = [min(self.plan.span(part.first, unit).size * width - traced.offset, latest[1]) for unit in units]
        return block_costs(traced.trace, max(0, self.count_at(part, units.start, traced.offset)), ends)

    def column_costs(self, node: str, part: Part, position: float, now: float, pace: float) -> tuple[list[float], bool]:
        """The seconds each block column of a part's last unit should take, and
        whether they are a forecast: a neighbouring row's costs, as its trace
        measured them, scaled to this row's pace so far (rows next to each other
        cost alike, left to right); else this row's pace per block, for every
        block. Call with the lock held."""
        per_block = self.block_pace(node, part, position, now, pace)
        uniform = [per_block] * len(self.columns)
        profile = self.unit_profile(part.last - 1) or self.unit_profile(part.last + 1)
        if profile is None:
            return uniform, False
        first = part.columns[0] if part.columns else 0
        done = range(first, max(first, int(position)))
        return scaled_costs(profile, done, self.row_seconds(node, part, done), sum(uniform)), True

    def row_seconds(self, node: str, part: Part, blocks: range) -> float | None:
        """How long a band's POV-Ray took for the blocks `blocks` of its last unit,
        from the row's start; None if its trace does not tell. Call with the lock held."""
        traced = self.traces.get((node, part))
        # A part of one narrowed row renders only its columns: its counts are not the grid's.
        if traced is None or not blocks or blocks.start != 0 or (part.columns and part.count == 1):
            return None
        row_start = self.count_at(part, part.last, traced.offset)
        taken = block_costs(traced.trace, row_start, [self.count_at(part, part.last, traced.offset, blocks[-1])])
        return taken[0] if taken else None

    def moving(self, node: str, part: Part) -> bool:
        """Whether a part's log was seen growing lately, between two looks."""
        with self.lock:
            seen = self.progress_seen.get((node, part))
        if seen is None or seen.grew is None:
            return False
        return seen.looked - seen.grew <= self.tuning.progress_interval + 1.0

    def maybe_cut(self, node: str) -> bool:
        """With nothing left to hand out and a core idle here, cut the running part
        that will finish last, if that pays (see Scheduler.cut_point); True if cut."""
        if not self.cutting or self.stopping.is_set():
            return False
        now = time.monotonic()
        with self.lock:
            scheduler = self.scheduler
            busy_here = sum(1 for r in scheduler.running if r.node == node and not r.presumed_hung)
            if scheduler.waiting or busy_here >= self.capacity[node]:
                return False
            spare = self.spares.get(node)
            if spare is None and now < self.next_cut_check:
                return False
        if spare is not None:
            return self.cut_for_spare(node, spare)
        with self.lock:
            self.next_cut_check = now + self.tuning.cut_interval
            candidates = [
                (r.part, r.node)
                for r in scheduler.running
                if (r.part.count >= 2 or self.column_cuts)
                and not r.presumed_hung
                and scheduler.usable(r.node)
                and _key(r.node, r.part) not in self.cuts
            ]
        progress: list[tuple[Part, str, float, float]] = []
        for part, victim in candidates:
            try:
                looked = self.look(victim, part)
            except PovfarmError:
                continue
            # Only a part seen moving is cut: a frozen node is the hang detector's business.
            # The progress watcher's looks usually tell already; else the next look here will.
            if looked is None or not self.moving(victim, part):
                continue
            progress.append((part, victim, *looked))
        # A cut starts POV-Ray twice more: its idle start-up, and parsing (photons...) again.
        # The part's own continuation starts up while the part still renders, where it can.
        start_cost = max(self.latency or 0.0, self.tuning.cut_min_start) + self.setup
        kept_cost = self.tuning.gated_start + self.setup if self.gated_cuts else start_cost
        with self.lock:
            best: tuple[float, Part, str, int] | None = None
            now = time.monotonic()
            for part, victim, units_done, units_before in progress:
                run = next((r for r in scheduler.running if r.part == part and r.node == victim), None)
                if run is None or _key(victim, part) in self.cuts:
                    continue
                keep_last = scheduler.cut_point(run, units_done, now, start_cost, units_before, kept_cost)
                if keep_last is None:
                    continue
                pace = scheduler.pace(run, units_done, now, units_before) or 0.0
                remaining = (self.extent(part) - units_done) * pace
                if best is None or remaining > best[0]:
                    best = (remaining, part, victim, keep_last)
        if best is None and self.column_cuts:
            return self.maybe_cut_columns(progress, start_cost, kept_cost)
        if best is None:  # nothing pays now; it may once a band reaches dearer rows
            return False
        _, part, victim, keep_last = best
        return self.cut(part, victim, keep_last, now)

    def maybe_cut_columns(
        self, progress: list[tuple[Part, str, float, float]], start_cost: float, kept_cost: float
    ) -> bool:
        """No cut by rows pays: cut the last unit of the part that will finish last by
        columns, if that pays (see Scheduler.column_cut_point); True if cut."""
        scheduler = self.scheduler
        with self.lock:
            best: tuple[float, Part, str, int, bool] | None = None
            now = time.monotonic()
            for part, victim, units_done, units_before in progress:
                run = next((r for r in scheduler.running if r.part == part and r.node == victim), None)
                pace = scheduler.pace(run, units_done, now, units_before) if run else None
                if run is None or pace is None or _key(victim, part) in self.cuts or units_done < part.count - 1:
                    continue
                if not self.can_cut_columns(part):
                    continue
                position = self.column_position(part, units_done)
                costs, known = self.column_costs(victim, part, position, now, pace)
                keep = scheduler.column_cut_point(run, position, costs, start_cost, kept_cost, known)
                if keep is None:
                    continue
                remaining = (self.extent(part) - units_done) * pace
                if best is None or remaining > best[0]:
                    best = (remaining, part, victim, keep, known)
        if best is None:
            return False
        _, part, victim, keep, known = best
        return self.cut(part, victim, keep, now, columns=True, forecast=known)

    def cut(
        self,
        part: Part,
        victim: str,
        keep_last: int,
        now: float,
        spared: bool = False,
        columns: bool = False,
        forecast: bool = False,
    ) -> bool:
        """Cut a running part after unit keep_last (or, `columns`, its last unit after
        block column keep_last): its rest goes out next; True if cut."""
        with self.lock:
            if columns:
                kept = self.scheduler.cut_columns(part, victim, keep_last, now)
            else:
                kept = self.scheduler.cut(part, victim, keep_last, now)
            if kept is None:
                return False
            self.cuts[_key(victim, part)] = kept
            continuation = self.continuations[_key(victim, part)] = Continuation()
            if columns and part.count > 1:
                # A band cut in its last block row renders on to the cut (see NodeJob._povray_args).
                continuation.stop_at = self.pixels_until(victim, part, keep_last)
            self.timings["cuts"] += 1
            self.timings["spared_cuts"] += int(spared)
            self.timings["column_cuts"] += int(columns)
            self.timings["forecast_column_cuts"] += int(columns and forecast)
        # Its own thread: the rest of the part can start here meanwhile.
        threading.Thread(target=self.interrupt, args=(victim, part, kept, continuation), daemon=True).start()
        return True

    # -- spares: a node's next POV-Ray started before its part ends ------------------------
    def watch_ends(self) -> None:
        """Look for a part about to end while nothing is left to hand out (see Spare)."""
        while not self.stopping.wait(self.tuning.cut_interval):
            try:
                self.plan_spare()
            except Exception:  # noqa: BLE001 - an early start is an optimisation: the cut then starts one
                pass

    def plan_spare(self) -> None:
        """Start a spare on a node whose part ends within a POV-Ray start-up, for the
        rest of the running part that a cut would then take, if that cut would pay.

        A look at a part's log costs its node a few ms of CPU: a part is looked at
        again after half the time it has left beyond that lead (0.25-2 s), and the
        other parts only once one is about to end.
        """
        with self.lock:
            scheduler = self.scheduler
            if scheduler.waiting or scheduler.finished:
                return
            # (run, its part now): a cut meanwhile changes the run's part.
            running = [
                (r, r.part) for r in scheduler.running
                if not r.presumed_hung and scheduler.usable(r.node) and _key(r.node, r.part) not in self.cuts
            ]
            if len(running) < 2:
                return
        now = time.monotonic()
        due = [
            (run, part) for run, part in running
            if run.node not in self.spares and self.next_look.get((run.node, part), 0.0) <= now
        ]
        if not due:
            return
        lead = max(self.latency or 0.0, self.tuning.cut_min_start) + self.tuning.spare_lead
        looks = self.look_at(due)
        now = time.monotonic()
        with self.lock:
            left = self.seconds_left(due, looks, now)
            for key, (*_, seconds) in left.items():
                wait = (seconds - lead) / 2
                self.next_look[key] = now + min(max(wait, self.tuning.cut_interval), self.tuning.progress_interval)
            ending = [key for key, (*_, seconds) in left.items() if seconds <= lead]
        if not ending:
            return
        looks.update(self.look_at([(run, part) for run, part in running if (run.node, part) not in looks]))
        moving = {key for key in looks if self.moving(*key)}
        now = time.monotonic()
        cost = self.tuning.gated_start + self.setup  # what a cut then costs either side
        with self.lock:
            left = self.seconds_left(running, looks, now)
            node = ending[0][0]
            if ending[0] not in left or node in self.spares:
                return
            until = left[ending[0]][3]  # the cut comes when that part ends: plan it as of then
            best: tuple[float, Running, int, bool, bool] | None = None
            for key, (run, units_done, units_before, seconds) in left.items():
                if key == ending[0] or key not in moving or seconds <= until + lead:
                    continue  # a part ending about as soon is not worth a cut
                units_left = self.extent(run.part) - units_done
                then = units_done + units_left * until / seconds  # its progress by then
                keep_last = self.scheduler.cut_point(run, then, now + until, cost, units_before, cost)
                by_columns = keep_last is None and then >= run.part.count - 1 and self.can_cut_columns(run.part)
                known = False
                if by_columns:  # in its last unit by then: a cut by columns, planned as of then
                    costs, known = self.column_costs(
                        run.node, run.part, self.column_position(run.part, units_done), now, seconds / units_left
                    )
                    position = self.column_position(run.part, then)
                    keep_last = self.scheduler.column_cut_point(run, position, costs, cost, cost, known)
                if keep_last is not None and (best is None or seconds > best[0]):
                    best = (seconds, run, keep_last, by_columns, known)
            if best is None:
                return
            _, victim, keep_last, by_columns, forecast = best
            if by_columns:
                span = self.span_of(self.scheduler.columns_after(victim.part, keep_last))
            else:
                span = self.plan.span(keep_last + 1, victim.part.last)
            spare = Spare(victim.node, victim.part, keep_last, span, by_columns, forecast)
            self.spares[node] = spare
        threading.Thread(target=self.launch_spare, args=(node, spare), daemon=True).start()

    def look_at(self, parts: list[tuple[Running, Part]]) -> dict[tuple[str, Part], tuple[float, float]]:
        """Looks at running parts' logs (see look), by (node, part); the unknown left out."""
        looks = {}
        for run, part in parts:
            try:
                looked = self.look(run.node, part)
            except PovfarmError:
                continue
            if looked is not None:
                looks[(run.node, part)] = looked
        return looks

    def seconds_left(
        self, parts: list[tuple[Running, Part]], looks: dict[tuple[str, Part], tuple[float, float]], now: float
    ) -> dict[tuple[str, Part], tuple[Running, float, float, float]]:
        """Each part still as it was looked at: its progress, the units before its current
        POV-Ray, and the seconds it has left at that POV-Ray's pace. Call with the lock held."""
        left = {}
        for run, part in parts:
            key = (run.node, part)
            cut = _key(run.node, part) in self.cuts
            if key not in looks or run.part != part or run not in self.scheduler.running or cut:
                continue
            units_done, units_before = looks[key]
            pace = self.scheduler.pace(run, units_done, now, units_before)
            if pace is not None:
                left[key] = (run, units_done, units_before, (self.extent(part) - units_done) * pace)
        return left

    def launch_spare(self, node: str, spare: Spare) -> None:
        try:
            spare.gated = self.node_jobs[node].launch_gated(spare.span, self.part_args)
            spare.gated_at = time.monotonic()
        except Exception:  # noqa: BLE001 - an early start is an optimisation: the cut then starts one
            spare.gated = False
        spare.ready.set()

    def cut_for_spare(self, node: str, spare: Spare) -> bool:
        """A node whose spare waits: make the cut it was started for, if that part
        has not rendered into the spare's rows meanwhile; else drop the spare."""
        spare.ready.wait(30.0)
        looked = None
        if spare.gated:
            try:
                looked = self.look(spare.victim, spare.part)
            except PovfarmError:
                looked = None
        with self.lock:
            valid = looked is not None and _key(spare.victim, spare.part) not in self.cuts
            if valid and spare.columns:  # it keeps the block in progress
                valid = self.column_position(spare.part, looked[0]) < spare.keep_last + 1
            elif valid:  # it keeps the unit in progress
                valid = spare.part.first + int(looked[0]) <= spare.keep_last
        # Scheduler.cut refuses a part no longer running as planned, or presumed hung.
        now = time.monotonic()
        if valid and self.cut(spare.part, spare.victim, spare.keep_last, now, True, spare.columns, spare.forecast):
            return True  # the rest goes out next: this node's worker takes it, and its spare
        self.drop_spare(node, spare)
        return False

    def take_spare(self, node: str, part: Part) -> bool:
        """Whether the part just handed to a node is what its spare waits for; spares
        that will not be used are dropped."""
        span = self.span_of(part)
        with self.lock:
            mine = self.spares.get(node)
            unused = [(n, s) for n, s in self.spares.items() if s.span == span and n != node]
        if mine is not None and mine.span == span and mine.ready.wait(30.0) and mine.gated:
            if time.monotonic() - mine.gated_at > self.tuning.gate_limit:
                self.drop_spare(node, mine)  # waited too long to be opened safely: start afresh
                return False
            with self.lock:
                self.spares.pop(node, None)
            return True
        for other, spare in unused:  # its rows went elsewhere
            self.drop_spare(other, spare)
        return False

    def drop_spare(self, node: str, spare: Spare) -> None:
        with self.lock:
            if self.spares.get(node) is spare:
                del self.spares[node]
        spare.ready.wait(30.0)
        if spare.gated:
            try:
                self.node_jobs[node].cancel_gated(spare.span, remove=True)
            except PovfarmError:
                pass  # the node's failure is its worker's to report; stop_all ends it anyway

    def interrupt(self, node: str, part: Part, kept: Part, continuation: Continuation) -> None:
        """Stop a part being cut. Its continuation's POV-Ray is started first, where it
        can be, and stopping waits until that has started up: the cut part renders on
        meanwhile, and its core does not sit idle while a POV-Ray starts."""
        node_job = self.node_jobs[node]
        span = self.span_of(part)
        gated = False
        if self.gated_cuts:
            try:
                gated = node_job.launch_gated(self.span_of(kept), self.part_args, span)
            except Exception:  # noqa: BLE001 - an early start is an optimisation: it then starts after the stop
                gated = False
        with self.lock:
            continuation.launched, continuation.gated, continuation.gated_at = True, gated, time.monotonic()
            # Not at its gate in time (a loaded node), or it failed there: job.json tells why a cut was not gated.
            self.timings["gates_missed"] += int(self.gated_cuts and not gated)
            needed = continuation.needed
        try:
            if needed and continuation.stop_at is not None:
                node_job.interrupt_at(span, continuation.stop_at, timeout=self.tuning.stop_wait)
            elif needed:
                node_job.interrupt(span)
            elif gated:  # the part ended meanwhile: its worker left the continuation to this thread
                node_job.cancel_gated(self.span_of(kept))
        except Exception:  # noqa: BLE001 - also a session closed by an abort meanwhile
            pass  # the part finishes whole, or its node's failure is seen by its worker

    def take_cut(self, node: str, part: Part, error: Exception | None) -> tuple[Part, bool] | None:
        """What a cut part keeps, when it was cut and its POV-Ray stopped for it, and
        whether its continuation waits at its gate already. Never raises: the worker
        calls it while it handles its part's outcome, and a worker lost there would
        leave its part running in the books until the hang detector gave it away."""
        try:
            return self._take_cut(node, part, error)
        except Exception as exc:  # noqa: BLE001 - the part then fails and goes back to the queue
            self.reporter.warn(f"node {node}: could not continue a cut part: {type(exc).__name__}: {exc}")
            return None

    def _take_cut(self, node: str, part: Part, error: Exception | None) -> tuple[Part, bool] | None:
        with self.lock:
            kept = self.cuts.pop(_key(node, part), None)
            continuation = self.continuations.pop(_key(node, part), None)
            stopped = kept is not None and isinstance(error, PartInterrupted)
            gated = continuation is not None and continuation.launched and continuation.gated
            if continuation is not None and not stopped:
                continuation.needed = False  # a launch still under way cancels it itself
        if kept is not None and gated and not stopped:  # finished whole before the cut took, or failed
            try:
                self.node_jobs[node].cancel_gated(self.span_of(kept))
            except PovfarmError:
                pass  # the node's failure is its worker's to report; stop_all ends it anyway
        if not stopped:
            return None  # not cut, finished whole before the cut took, or failed: reported as such
        outwaited = gated and time.monotonic() - continuation.gated_at > self.tuning.gate_limit
        if outwaited:
            # The part rendered on to its cut for long: its continuation starts afresh instead.
            try:
                self.node_jobs[node].cancel_gated(self.span_of(kept), remove=True)
            except PovfarmError:
                pass  # the continuation's own command reports the node's failure
            gated = False
        with self.lock:
            self.timings["gated_cuts"] += int(gated)
            self.timings["gates_outwaited"] += int(outwaited)
            before = self.restored.pop((node, part), 0)  # from an earlier cut of the same band
            self.restored[(node, kept)] = before + error.pixels  # in its state file now
            # The units this run of POV-Ray rendered, the last perhaps in part.
            end = before + error.pixels
            rendered = range(
                part.first + before // self.pixels_per_unit,
                min(part.first + -(-end // self.pixels_per_unit), kept.last + 1),
            )
            cpu = error.povray_times.get("cpu")
            if cpu and rendered:
                share = end / self.pixels_per_unit - (rendered[-1] - part.first)
                weights = self.unit_weights(node, part, rendered)
                self.scheduler.record_cost(rendered, cpu, weights, min(1.0, share))
        return kept, gated

    def rendered_itself(self, node: str, part: Part) -> range | None:
        """The units a finished part rendered in its last run, if it was continued after a cut."""
        with self.lock:
            restored = self.restored.pop((node, part), None)
        if restored is None:
            return None
        return range(min(part.first + restored // self.pixels_per_unit, part.last + 1), part.last + 1)

    def watch_progress(self) -> None:
        """Every few seconds, how far a still's running parts are: the progress bar
        moves while a long band renders, and a cut can tell a moving part from a stuck one."""
        while not self.stopping.wait(self.tuning.progress_interval):
            with self.lock:
                running = [(r.part, r.node) for r in self.scheduler.running
                           if not r.presumed_hung and self.scheduler.usable(r.node)]
            for part, node in running:
                try:
                    looked = self.look(node, part)
                except Exception:  # noqa: BLE001 - the progress bar's look; a failure is the worker's to report
                    continue  # (also a session closed by an abort meanwhile)
                if looked is None:
                    continue
                units_done = looked[0]
                with self.lock:
                    if any(r.part == part and r.node == node for r in self.scheduler.running):
                        rows = min(self.span_of(part).size, int(units_done * self.unit_rows))
                        self.running_rows[_key(node, part)] = rows
            self.report_running()

    def report_running(self) -> None:
        with self.lock:
            rows = sum(self.running_rows.values())
        self.reporter.running(rows)

    def watch(self) -> None:
        while True:
            with self.lock:
                if self.scheduler.finished:
                    self.stopping.set()
                    return
                usable = [n for n in self.node_jobs if n not in self.scheduler.excluded]
                if not usable:
                    raise NodeError(
                        "no node is left to render on: "
                        + "; ".join(f"{n}: {r}" for n, r in self.scheduler.excluded.items())
                        + "; finished parts are kept, continue with: "
                        + f"inv render --scene={_quoted(self.job.scene)} --resume"
                    )
                now = time.monotonic()
                # Looked at lately and growing (stills): slow rows, not a hung node.
                moving = {
                    key for key, seen in self.progress_seen.items()
                    if seen.grew is not None and now - seen.grew <= 2 * self.tuning.progress_interval + 1.0
                }
                for hung in self.scheduler.overdue(now, moving):
                    self.reporter.warn(
                        f"node {hung.node}: {self.span_of(hung.part).label()} "
                        "is taking far longer than expected; handing it to other nodes"
                    )
                    if all(n in self.scheduler.stalled for n in usable):
                        # The part may just be dear: waiting beats failing a job that would finish.
                        self.reporter.warn(
                            "every node left is on a part taking far longer than expected; waiting for "
                            "them (Ctrl-C keeps the finished parts for --resume)"
                        )
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.handle(event)
            finally:
                with self.handled:
                    self.handled.notify_all()

    def handle(self, event: tuple) -> None:
        kind, node, part, payload = event
        span = self.span_of(part)
        with self.lock:
            # Its rows were counted as in progress; done, they count as finished; failed, as to do.
            self.running_rows.pop(_key(node, part), None)
        if kind == "fatal":
            if isinstance(payload, OptionsError) and self.job.options.get("args"):
                raise OptionsError(f"{payload} {self.job.options['args']!r}")
            raise payload
        if kind == "failed":
            with self.lock:
                left_out = self.scheduler.fail(part, node, str(payload))
            self.reporter.warn(f"{payload}; {span.label()} goes back to the queue")
            self.report_running()
            if left_out:
                self.reporter.warn(f"leaving out node {node} for the rest of the job: it failed repeatedly")
                self.left_out[node] = str(payload)
            return
        payload, measured = payload
        times = payload.povray_times or {}
        with self.lock:
            done_before = set(self.scheduler.done)
            weights = self.unit_weights(node, part, measured or part.units)
            accepted = self.scheduler.complete(part, node, payload.seconds, times.get("cpu"), measured, weights)
            # Rows count as done with their unit: a unit split by columns, with its last piece.
            rows = sum(self.plan.span(u, u).size for u in self.scheduler.done - done_before)
            if measured is None and "gate" not in times:  # a POV-Ray started early hid its start-up
                self.scheduler.min_part_cost = max(self.scheduler.min_part_cost, self.worth_a_part(times))
                setup = sum(times.get(phase, 0.0) for phase in ("parse", "bounding", "photon", "radiosity"))
                self.setup = max(self.setup, setup)
        if not accepted:
            return
        started = self.started_at.get(part)
        # A continued part's record spans from its first start: the time its rows took.
        seconds = payload.seconds if measured is None or started is None else (
            time.monotonic() - self.render_started - started
        )
        self.job.record_parts([f.span for f in payload.files], node, seconds, started)
        for fetched in payload.files:
            if self.canvas is not None:
                with self.timed("stitch_while_rendering"):
                    self.canvas.add(fetched.span, fetched.path)
        self.timings["parts"] += 1
        self.timings["part_commands"] += payload.seconds
        self.timings["fetch"] += payload.fetch_seconds
        for phase, seconds in times.items():
            self.timings[f"povray_{phase}"] += seconds
        stats = self.stats[node]
        stats.parts += 1
        stats.units += rows
        stats.seconds += payload.seconds
        self.reporter.advance(node, rows, 1)
        self.report_running()

    def worth_a_part(self, times: dict[str, float]) -> float:
        """The least work (CPU seconds) a part should carry.

        Every POV-Ray run idles for a while starting and ending (its latency:
        wall minus CPU, the least seen). With `overlap` spare slots per core,
        parts of at least latency * capacity / overlap seconds keep the cores
        busy; a part should also carry ten times the work of parsing the
        scene again.
        """
        if "cpu" in times and "wall" in times:
            latency = max(0.0, times["wall"] - times["cpu"])
            self.latency = latency if self.latency is None else min(self.latency, latency)
        capacity = sum(self.capacity.values())
        spare = sum(self.slots.values()) - capacity
        hide = (self.latency or 0.0) * self.tuning.latency_factor * (capacity / spare if spare else 10.0)
        return max(hide, 10 * times.get("parse", 0.0))

    def abort(self, status: str) -> None:
        """Stop every POV-Ray of the job, keep what is finished."""
        self.stopping.set()
        self.job.status = status
        self.job.save()

        def stop(node_job: NodeJob) -> None:
            try:
                node_job.stop_all(timeout=self.tuning.stop_timeout)
            except Exception:  # noqa: BLE001 - a dead node has nothing left to stop
                pass
            node_job.session.close()

        self._bounded_parallel(stop, self.node_jobs.values(), self.tuning.stop_timeout + 5)

    # -- merging -------------------------------------------------------------
    def merge(self) -> Path:
        if self.canvas is not None and self.canvas.complete:
            return self.canvas.save(Path(self.job.output))
        return merge_job(self.job)  # resumed, or 16-bit: from the parts on disk


def merge_job(job: Job) -> Path:
    """Write the job's output from the parts in its folder."""
    settings = povopts.Settings(**job.settings)
    output = Path(job.output)
    spans = [(parse_part_name(name), job.part_path(name)) for name in job.parts]
    present = [(span, path) for span, path in spans if span is not None and path.is_file()]
    missing = set(range(len(job.plan.units))) - job.done_units()
    if missing:
        labels = ", ".join(job.plan.span(u, u).label() for u in sorted(missing)[:3])
        raise JobError(
            f"job {job.id} is missing {len(missing)} part(s) ({labels}...); "
            f"fetch them with inv collect, or continue with: inv render --scene={_quoted(job.scene)} --resume"
        )
    if job.plan_kind == FRAMES:
        merge.gather_frames([(s.start, p) for s, p in present], output, Path(job.scene).stem, settings.final_frame)
    else:
        paths = dict(present)
        chosen = [(span, paths[span]) for span in merge.covering(paths, settings.width)]
        merge.stitch_bands(chosen, settings.width, settings.height, output)
    return output


def _key(node: str, part: Part) -> tuple:
    """A running part on a node, as it stays through its cuts (Farm.cuts, running_rows)."""
    return (node, *part_origin(part))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _quoted(path: str) -> str:
    return shell_join([os.path.relpath(path)])


# -- the entry points ----------------------------------------------------------
def render(request: RenderRequest, reporter: Reporter | None = None, tuning: Tuning | None = None) -> RenderSummary:
    """Render a scene on the cluster; the one call behind `inv render`."""
    reporter = reporter or QuietReporter()
    cluster = load_cluster(request.cluster)
    job, files = prepare_job(request, cluster, reporter)
    return Farm(job, files, cluster, reporter, tuning or Tuning()).run()


def find_job(renders: Path, job: str | None) -> Job:
    """A job by id or folder, or the latest one."""
    if job:
        folder = Path(job) if Path(job).is_dir() else renders / job
        return load_job(folder)
    return latest_job(renders)
