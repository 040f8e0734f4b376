"""Render a job across SSH nodes: open its nodes, run it, stitch it.

The pieces, each in its own module: `prepare` checks the request and makes
the job record; `nodes` connects, checks and uploads; `scheduler` decides
everything as a pure state machine; `coordinator` runs the one loop that
carries events and commands; `workers` run each node's commands; `merge`
stitches. This module only puts them in order.
"""

from __future__ import annotations

import os
import posixpath
import queue
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from fabfile import deps, merge, photons, povopts
from fabfile.collect import merge_job
from fabfile.coordinator import Coordinator, Geometry, Stitcher
from fabfile.errors import PovfarmError
from fabfile.events import Start
from fabfile.inventory import Cluster
from fabfile.jobs import Job, earlier_costs, resume_command
from fabfile.nodejob import NodeJob, povray_ini_line, scene_depth
from fabfile.nodes import JobNodes, open_job_nodes, stop_nodes
from fabfile.plan import FRAMES, Span, column_ranges, parse_part_name
from fabfile.prepare import EXACT, IDENTICAL, RADIOSITY, entry_line, read_text, shipped_names
from fabfile.preview import PREVIEW, Preview
from fabfile.progress import Reporter
from fabfile.radiosity import HangLimit, share_radiosity
from fabfile.report import write_report
from fabfile.running import JobInterrupted, RenderSummary, Tuning, part_args, record_done, signals_interrupt
from fabfile.scheduler import Scheduler
from fabfile.workers import NodeWorker, Settings

__all__ = ["run_job"]

Early = dict[str, list[tuple[Span, float]]]  # by node: bands started at their gate, and since when


# Seconds an interrupted job waits for its bands to write out what they rendered (a
# continuation's start-up and parse); past it, they are stopped and rendered again later.
WIND_DOWN_LIMIT = 30.0


def run_job(job: Job, files: deps.SceneFiles, cluster: Cluster, reporter: Reporter, tuning: Tuning) -> RenderSummary:
    started = time.monotonic()
    timings: Counter[str] = Counter()
    try:
        nodes = open_nodes(job, files, cluster, reporter)
    except PovfarmError:
        job.status = "failed"
        job.save()
        raise
    timings["connect"] = nodes.connect_seconds
    timings["start"] = time.monotonic() - started
    coordinator = None
    if job.done_units() != set(range(len(job.plan.units))):
        render_started = time.monotonic()
        try:
            early: Early = {}
            if job.guarantee == RADIOSITY:
                with signals_interrupt():
                    timings["pretrace"], early = share_pretrace(job, nodes, reporter, tuning)
            coordinator = render_parts(job, nodes, reporter, tuning, early)
        except KeyboardInterrupt:
            abort(job, nodes, "interrupted", tuning)
            raise JobInterrupted(
                f"interrupted: {len(job.parts)} finished part(s) kept in {job.folder}; "
                f"continue with: {resume_command(job)}"
            ) from None
        except PovfarmError:
            abort(job, nodes, "failed", tuning)
            raise
        finally:
            timings["render"] = time.monotonic() - render_started
    return finish_job(job, nodes, coordinator, tuning, timings, started)


def open_nodes(job: Job, files: deps.SceneFiles, cluster: Cluster, reporter: Reporter) -> JobNodes:
    """Connect to the nodes, upload the scene, and settle how many parts each runs at once."""
    names = shipped_names(files)
    line = entry_line(job)
    reporter.info(f"job {job.id}: uploading {len(names)} file(s) to {len(cluster.nodes)} node(s)")
    copy = photons_copy(job, files.root)
    nodes = open_job_nodes(cluster.nodes, job.id, names, scene_depth(names),
                           lambda nj: prepare_node(nj, files.root, line, copy))
    for reason in nodes.left_out.values():
        reporter.warn(f"leaving out {reason}")
    if job.guarantee == EXACT:
        job.options["threads"] = 1
    if job.options.get("threads") is None:
        # A still's part uses every core of the smallest node: POV-Ray's own threads share a
        # band's blocks, with no start-up of their own. Frames spread one per core. Every part
        # of a job gets the same +WT (photons depend on it), a resumed one too.
        still = job.plan_kind != FRAMES
        job.options["threads"] = max(1, min(nodes.cores.values())) if still else 1
    for name, cores in nodes.cores.items():
        job.nodes[name] = {"cores": cores}
    job.save()
    return nodes


def photons_copy(job: Job, root: Path) -> tuple[str, Path] | None:
    """A still whose parts share photon maps: the scene's copy that saves or loads one
    (fabfile.photons), written here once, whole, before any node uploads it."""
    if not job.options.get("shared_photons"):
        return None
    input_file = str(job.settings["input_file"])
    text = photons.copy_text(read_text(root / input_file))
    if text is None:
        return None  # the scene changed since the job began: check_inputs refuses that before
    copy = photons.copy_name(input_file)
    local = job.folder / posixpath.basename(copy)
    temporary = local.with_name(f".{local.name}.tmp")
    temporary.write_text(text, encoding="utf-8", errors="surrogateescape")
    os.replace(temporary, local)
    return copy, local


def prepare_node(node_job: NodeJob, root: Path, entry: str, copy: tuple[str, Path] | None) -> None:
    """Upload the scene to a node, and the copy POV-Ray reads instead when there is one."""
    node_job.prepare(root, entry)
    if copy is not None:
        name, local = copy
        node_job.use_scene_copy(local, name, [entry, povray_ini_line("Input_File_Name", name)])
        node_job.shares_photons = True


def share_pretrace(job: Job, nodes: JobNodes, reporter: Reporter, tuning: Tuning) -> tuple[float, Early]:
    """A radiosity still: one pretrace across the nodes, loaded by every band (fabfile.radiosity);
    the seconds it took, and the first bands started early on each node, at their gate."""
    hang = HangLimit(tuning.hang_grace, tuning.hang_factor)
    args = part_args(job)
    # The bands' POV-Rays start up while the pretrace is gathered: the start-up is hidden.
    wave = first_wave(job, nodes, tuning) if can_gate(job) else {}

    def launch(node_job: NodeJob) -> list[Span]:
        return [span for span in wave.get(node_job.name, []) if node_job.launch_gated(span, args)]

    shared = share_radiosity(job, nodes.node_jobs, args, entry_line(job), reporter, hang, launch)
    for name, reason in shared.failed.items():  # a node lost in the first phase renders no band
        reporter.warn(f"leaving out {reason}")
        nodes.left_out[name] = reason
        nodes.cores.pop(name, None)
        stop_nodes([nodes.node_jobs.pop(name)], tuning.stop_timeout, skip={name})
    if shared.seconds is None:
        reporter.info("radiosity: POV-Ray gathered no sample (the scene switches it off): plain bands")
        job.guarantee = IDENTICAL
        job.save()
    early = {name: [(span, shared.since) for span in spans] for name, spans in shared.early.items()}
    return shared.seconds or 0.0, early


def can_gate(job: Job) -> bool:
    """Whether a POV-Ray may start early and wait at povfarm's gate, a FIFO read as the
    include header (+HI): not when the scene has a header of its own."""
    return not povopts.Settings(**job.settings).include_header


def first_wave(job: Job, nodes: JobNodes, tuning: Tuning) -> dict[str, list[Span]]:
    """The parts the scheduler starts first on each node: it decides the same again when the
    parts begin, on the same nodes (fabfile.radiosity stops them if one was lost)."""
    scheduler = new_scheduler(job, nodes, tuning)[0]
    wave: dict[str, list[Span]] = {}
    for command in scheduler.begin(0.0):
        if isinstance(command, Start) and command.part.columns is None:
            wave.setdefault(command.node, []).append(job.plan.span(command.part.first, command.part.last))
    return wave


def new_scheduler(
    job: Job, nodes: JobNodes, tuning: Tuning, reporter: Reporter | None = None
) -> tuple[Scheduler, dict[str, int], list[tuple[int, int]]]:
    """The job's scheduler, the part slots of each node, and the block columns of a row."""
    threads = int(job.options["threads"])
    povray = povopts.Settings(**job.settings)
    still = job.plan_kind != FRAMES
    continuable = still and len(job.plan.units) > 1
    cuttable = continuable and tuning.cuts
    capacity = {name: max(1, cores // threads) for name, cores in nodes.cores.items()}
    # Stills cut to balance run a part per core: a second part on a core would blur its pace.
    # Frames run `overlap` more per node, whose start-up (mostly idle) hides behind the others.
    slots = {name: count + (0 if cuttable else tuning.overlap) for name, count in capacity.items()}
    # A part of one block row can be cut by its block columns (antialiased stills, whose units
    # are POV-Ray's blocks). Not 16-bit stills: they are stitched row by row, from whole bands.
    columns = column_ranges(povray.width, povray.block_size)
    by_columns = cuttable and povray.bits == 8 and job.plan.span(0, 0).size == povray.block_size
    done = job.done_units()
    found = earlier_costs(job) if cuttable and not done else None
    if found is not None and reporter is not None:
        reporter.info(f"first bands sized by the cost of rows measured in job {found[0].id}")
    scheduler = Scheduler(
        unit_count=len(job.plan.units), slots=slots, capacity=sum(capacity.values()),
        policy=replace(tuning.policy(), gated=can_gate(job)),  # a cut band's continuation starts early
        done=done, prior=found[1] if found else None, cuttable=cuttable, continuable=continuable,
        columns=len(columns) if by_columns else 1,
    )
    return scheduler, slots, columns


def render_parts(job: Job, nodes: JobNodes, reporter: Reporter, tuning: Tuning, early: Early) -> Coordinator:
    """Every missing part rendered and fetched: the scheduler, the nodes' workers and the loop."""
    threads = int(job.options["threads"])
    povray = povopts.Settings(**job.settings)
    still = job.plan_kind != FRAMES
    continuable = still and len(job.plan.units) > 1
    scheduler, slots, columns = new_scheduler(job, nodes, tuning, reporter)
    done = job.done_units()
    reports: queue.Queue = queue.Queue()
    settings = Settings(part_args(job), job.parts_folder, povray.final_frame, can_gate(job))
    workers = {name: NodeWorker(nj, slots[name], settings, reports.put) for name, nj in nodes.node_jobs.items()}
    for name, bands in early.items():  # started at their gate: the scheduler's first wave opens it
        for span, since in bands:
            workers[name].adopt_early(span, since)
    stitcher = new_stitcher(job, povray) if still else None
    coordinator = Coordinator(job, scheduler, Geometry(job, threads, columns), reporter, reports, workers, stitcher,
                              tuning.tick, f"finished parts are kept, continue with: {resume_command(job)}")
    rows_done = sum(job.plan.span(u, u).size for u in done)
    reporter.start(job.plan.total, rows_done, job.plan.kind, list(nodes.node_jobs))
    try:
        with signals_interrupt():
            try:
                coordinator.run()
            except KeyboardInterrupt:
                if continuable and coordinator.runs:
                    reporter.warn("interrupted: keeping what each part has rendered (Ctrl-C again to stop at once)")
                    coordinator.wind_down(WIND_DOWN_LIMIT)
                raise
    finally:
        reporter.stop()
        coordinator.close_workers()
        job.end_session(coordinator.now())
        job.save()
    return coordinator


def new_stitcher(job: Job, povray: povopts.Settings) -> Stitcher:
    """The canvas a still's kept parts are encoded into, and its live preview."""
    preview = Preview(job.folder / PREVIEW, povray.width, povray.height)
    for name in job.parts:  # resumed: what earlier sessions kept is in the picture too
        span = parse_part_name(name)
        if span is not None and job.part_path(name).is_file():
            preview.add_part(span, job.part_path(name))
    return Stitcher(merge.BandCanvas(povray.width, povray.height, preview.add_strip), preview)


def finish_job(
    job: Job, nodes: JobNodes, coordinator: Coordinator | None, tuning: Tuning, timings: Counter, started: float
) -> RenderSummary:
    """Stitch the output while the nodes clean up; record the job's figures."""
    scheduler = coordinator.scheduler if coordinator else None
    skip = set(scheduler.stalled) | set(scheduler.excluded) if scheduler else set()
    keep = job.options.get("keep_remote", False)
    problems: list[str] = []
    cleanup = threading.Thread(
        target=lambda: problems.extend(stop_nodes(nodes.node_jobs.values(), tuning.stop_timeout * 3, not keep, skip)),
        daemon=True,
    )
    cleanup.start()
    merge_started = time.monotonic()
    try:
        output = write_output(job, coordinator)
    finally:
        timings["merge"] = time.monotonic() - merge_started
        cleanup.join()
        timings["cleanup"] = time.monotonic() - merge_started - timings["merge"]
    if coordinator is not None:
        timings.update(coordinator.timings)
        if coordinator.stitcher is not None:
            timings["stitch_while_rendering"] = coordinator.stitcher.seconds
    timings["wall"] = time.monotonic() - started
    if job.plan_kind != FRAMES and scheduler and len(scheduler.unit_cost) == len(job.plan.units):
        # What each row block cost, so that the next render of this still starts even.
        job.unit_costs = [round(scheduler.unit_cost[unit], 4) for unit in range(len(job.plan.units))]
    nodes_summary = record_done(job, timings)
    stitcher = coordinator.stitcher if coordinator else None
    write_report(job, job.folder / PREVIEW if stitcher is not None and stitcher.canvas.complete else None)
    left_out = {**nodes.left_out, **(coordinator.left_out if coordinator else {})}
    return RenderSummary(job, output, timings["wall"], job.plan_kind, nodes_summary, left_out, job.timings)


def write_output(job: Job, coordinator: Coordinator | None) -> Path:
    stitcher = coordinator.stitcher if coordinator else None
    if stitcher is not None:
        stitcher.close()
        if stitcher.canvas.complete:
            return stitcher.canvas.save(Path(job.output))
    return merge_job(job)  # resumed, or 16-bit, or frames: from the parts on disk


def abort(job: Job, nodes: JobNodes, status: str, tuning: Tuning) -> None:
    """Stop every POV-Ray of the job, keep what is finished."""
    job.status = status
    job.save()
    stop_nodes(nodes.node_jobs.values(), tuning.stop_timeout)
