"""Render on a Slurm cluster: a job's parts as job arrays, followed from the login node.

Slurm places the parts, not povfarm. The scene goes once to the shared workdir; the
missing parts become one array (fabfile.slurmjob writes its script and reads what
the cluster says); one loop looks every LOOK_SECONDS, fetches the parts that are
done, submits the failed and lost ones again, and stops on the job's last part.
Ctrl-C cancels the job's arrays. The job record, the stitching and the report are
the SSH engine's, so --resume, inv collect and inv merge work the same way.
"""

from __future__ import annotations

import posixpath
import time
from collections import Counter

from fabfile import deps, povopts, slurmjob
from fabfile.collect import fetch_finished, merge_job
from fabfile.errors import JobError, NodeError, PovfarmError
from fabfile.health import NodeHealth
from fabfile.inventory import Cluster, SlurmOptions
from fabfile.jobs import Job, earlier_costs, resume_command
from fabfile.nodejob import NodeJob, classify_failure, rendered_pixels, scene_depth
from fabfile.plan import FRAMES, Span, parse_part_name
from fabfile.prepare import EXACT, RADIOSITY, entry_line, shipped_names
from fabfile.preview import PREVIEW, Preview
from fabfile.progress import Reporter
from fabfile.report import write_report
from fabfile.running import JobInterrupted, RenderSummary, Tuning, part_args, record_done, signals_interrupt
from fabfile.slurmjob import ArrayBook, Finished, Look
from fabfile.transport import CommandResult, open_session, remote_workdir, shell_join

LOOK_SECONDS = 1.0  # between looks at squeue and the parts' files
# A still's bands for each task the partition runs at once: with rows of even cost assumed,
# and with the costs a finished render of it measured (bench/slurm_bands.py, bench/NOTES.md).
PARTS_PER_TASK = 3
PARTS_PER_TASK_SIZED = 2
WHOLE = ("identical to one POV-Ray run: radiosity rendered whole by one Slurm task "
         "(the shared pretrace is built for SSH nodes only)")


def open_login(cluster: Cluster, job_id: str, names: list[str] | None = None) -> NodeJob:
    """The login node, and the job's shared folder on it."""
    login = cluster.login
    session = open_session(login)
    return NodeJob(session, remote_workdir(login, session), job_id, login.povray, names or (),
                   scene_depth(names or []))


def run_slurm(node_job: NodeJob, argv: list[str], what: str) -> CommandResult:
    """One of Slurm's commands on the login node; a missing command or a refusal is a clear error."""
    result = node_job.session.run(shell_join(argv), timeout=60.0)
    if result.exit_code == 127:
        raise NodeError(f"login {node_job.session.node.address}: no {argv[0]} there; install Slurm's client "
                        f"commands (Debian: slurm-client) or name them in the inventory's slurm: section")
    if not result.ok:
        message = " ".join(line.strip() for line in (result.stderr or result.stdout).splitlines()[-2:])
        raise JobError(f"Slurm refused to {what}: {message or f'{argv[0]} exited {result.exit_code}'}")
    return result


def task_slots(node_job: NodeJob, options: SlurmOptions) -> int:
    """How many of the job's tasks the partition can run at once."""
    argv = [options.sinfo, "-h", "-o", "%C", *([f"--partition={options.partition}"] if options.partition else [])]
    slots = slurmjob.parse_cpus(run_slurm(node_job, argv, "list its partitions").stdout, options.cpus_per_task)
    if slots < 1:
        where = f"partition {options.partition!r}" if options.partition else "the default partition"
        raise JobError(f"Slurm shows no CPUs in {where} for tasks of {options.cpus_per_task} CPU(s); "
                       "check slurm.partition and slurm.cpus_per_task (sinfo lists them)")
    return slots


def run_job(job: Job, files: deps.SceneFiles, cluster: Cluster, reporter: Reporter, tuning: Tuning) -> RenderSummary:
    """Render a prepared job's missing parts through Slurm, then stitch and record it."""
    started = time.monotonic()
    timings: Counter[str] = Counter()
    options = cluster.slurm or SlurmOptions()
    names = shipped_names(files)
    node_job = None
    try:
        node_job = open_login(cluster, job.id, names)
        slots = task_slots(node_job, options)
        reporter.info(f"job {job.id}: uploading {len(names)} file(s) to {cluster.login.address} "
                      f"({node_job.root}, shared with Slurm's nodes)")
        node_job.prepare(files.root, entry_line(job))
    except PovfarmError:
        job.status = "failed"
        job.save()
        if node_job is not None:
            node_job.session.close()
        raise
    try:
        # --threads if given (kept for a resume), else the CPUs Slurm gives each task.
        job.options["threads"] = 1 if job.guarantee == EXACT else (job.options.get("threads") or options.cpus_per_task)
        if job.guarantee == RADIOSITY:
            job.guarantee = WHOLE
        job.save()
        timings["start"] = time.monotonic() - started
        if job.done_units() != set(range(len(job.plan.units))):
            follow_parts(job, node_job, options, reporter, tuning, slots, timings)
        return finish(job, node_job, timings, started)
    finally:
        node_job.session.close()


def follow_parts(job: Job, node_job: NodeJob, options: SlurmOptions, reporter: Reporter, tuning: Tuning,
                 slots: int, timings: Counter) -> None:
    """Submit the missing parts and follow them to the end; Ctrl-C cancels the job's arrays."""
    render_started = time.monotonic()
    job.begin_session()
    follower = Follower(job, node_job, options, reporter, tuning.max_failures)
    try:
        with signals_interrupt():
            follower.start(slots)
            follower.run()
    except KeyboardInterrupt:
        cancel(node_job, options, job.id, tuning.stop_timeout)
        job.status = "interrupted"
        raise JobInterrupted(f"interrupted: the job's Slurm tasks are cancelled; {len(job.parts)} finished "
                             f"part(s) kept in {job.folder}; continue with: {resume_command(job)}") from None
    except PovfarmError:
        cancel(node_job, options, job.id, tuning.stop_timeout)
        job.status = "failed"
        raise
    finally:
        reporter.stop()
        timings["render"] = time.monotonic() - render_started
        job.end_session(timings["render"])
        job.save()


def missing_parts(job: Job, slots: int, taken: set[int], reporter: Reporter) -> list[Span]:
    """The parts to submit: each missing frame, or a still's missing rows in bands; `taken`:
    units that parts still in Slurm will bring."""
    done = job.done_units()
    pending = sorted(set(range(len(job.plan.units))) - done - taken)
    if not pending:
        return []
    if job.plan_kind == FRAMES:
        return [job.plan.span(unit, unit) for unit in pending]
    if job.guarantee == WHOLE:
        return [job.plan.span(pending[0], pending[-1])]
    found = earlier_costs(job) if not done and not taken else None
    if found is not None:
        reporter.info(f"bands sized by the cost of rows measured in job {found[0].id}")
        weights, per_task = dict(enumerate(found[1])), PARTS_PER_TASK_SIZED
    else:
        weights, per_task = dict.fromkeys(pending, 1.0), PARTS_PER_TASK
    runs = slurmjob.band_units(pending, weights, slots, per_task)
    return [job.plan.span(first, last) for first, last in runs]


def unit_costs(job: Job) -> list[float] | None:
    """A finished still's seconds per row block, each part's spread over its rows: the next
    render of it sizes its bands by them."""
    if job.plan_kind == FRAMES:
        return None
    costs: list[float | None] = [None] * len(job.plan.units)
    for name, record in job.parts.items():
        span = parse_part_name(name)
        if span is None or span.columns or record.seconds <= 0:
            continue
        units = job.plan.units_of(span)
        for unit in units:
            costs[unit] = round(record.seconds / len(units), 4)
    return None if any(cost is None for cost in costs) else costs  # type: ignore[return-value]


class Follower:
    """The one loop of a Slurm render: look, keep what is done, submit what is missing."""

    def __init__(self, job: Job, node_job: NodeJob, options: SlurmOptions, reporter: Reporter,
                 max_failures: int) -> None:
        self.job, self.node_job, self.options, self.reporter = job, node_job, options, reporter
        self.book = ArrayBook([], max_failures)
        self.spans: dict[str, Span] = {}
        self.parts_dir = posixpath.join(node_job.root, "parts")
        settings = povopts.Settings(**job.settings)
        self.final_frame = settings.final_frame
        self.width = int(job.settings.get("width") or 1)
        # A still's image so far, for any image viewer (fabfile.preview), as on SSH nodes.
        still = job.plan_kind != FRAMES
        self.preview = Preview(job.folder / PREVIEW, settings.width, settings.height) if still else None

    def start(self, slots: int) -> None:
        """Fetch what an earlier session left finished, follow what it left running, submit the rest."""
        fetched = fetch_finished(self.job, self.node_job, "slurm", self.final_frame)
        if fetched:
            self.reporter.info(f"fetched {fetched} part(s) an earlier session left finished in Slurm's folder")
        look = self.look()
        earlier = dict(self.job.options.get("slurm_arrays", {}))
        self.spans.update({name: span for names in earlier.values() for name in names
                           if (span := parse_part_name(name)) is not None})
        adopted = self.book.adopt(earlier, look.alive)
        if adopted:
            self.reporter.info(f"following {len(adopted)} part(s) an earlier session submitted, still in Slurm")
        taken = {unit for name in adopted for unit in self.job.plan.units_of(self.spans[name])}
        new = missing_parts(self.job, slots, taken, self.reporter)
        self.spans.update({span.name: span for span in new})
        self.book.waiting.extend(span.name for span in new)
        done = sum(self.job.plan.span(u, u).size for u in self.job.done_units())
        self.reporter.start(self.job.plan.total, done, self.job.plan.kind, ["slurm"])
        if self.book.waiting:
            self.submit(self.book.waiting[:])

    def run(self) -> None:
        while not self.book.finished:
            time.sleep(LOOK_SECONDS)
            look = self.look()
            done, failed, lost = self.book.observe(look)
            for name in done:
                self.keep(name, look)
            for name in failed:
                self.failed(name, look.finished[name])
            for name in lost:
                self.retry(name, f"{self.spans[name].label()}: Slurm ended its task before it finished "
                                 f"(time limit {self.options.time}, a lost node, or scancel)")
            if self.book.waiting:
                self.submit(self.book.waiting[:])
            held = self.book.never_starts(look)
            if held:
                raise JobError(f"Slurm will not start the job's tasks ({held}); change the inventory's slurm: "
                               f"section and continue with: {resume_command(self.job)}")
            self.show(look)

    def look(self) -> Look:
        running = [name for name in self.book.flying if self.spans[name].kind != FRAMES]
        command = self.node_job.command(slurmjob.look_command(self.options, self.job.id, self.parts_dir, running))
        result = self.node_job.session.run(command, timeout=60.0)
        if result.exit_code == 3:
            said = (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1]
            raise JobError(f"squeue failed on {self.node_job.session.node.address}: {said}")
        if not result.ok:
            raise NodeError(f"login {self.node_job.session.node.address}: lost while following the job "
                            f"({result.stderr.strip() or result.exit_code}); continue with: {resume_command(self.job)}")
        return slurmjob.parse_look(result.stdout)

    def submit(self, names: list[str]) -> None:
        spans = [self.spans[name] for name in names]
        parts = [(span.name, self.node_job.task_argv(span, part_args(self.job))) for span in spans]
        script_text = slurmjob.task_script(self.job.id, parts, self.node_job.scene_dir, self.parts_dir)
        count = len(self.job.options.get("slurm_arrays", {}))
        remote = posixpath.join(self.node_job.root, "slurm", f"array-{count + 1}.sh")
        self.node_job.session.run(shell_join(["mkdir", "-p", posixpath.dirname(remote)]), timeout=30.0)
        self.node_job.put_text(script_text, remote)
        argv = slurmjob.sbatch_argv(self.options, self.job.id, len(parts), self.node_job.root, remote)
        array_id = slurmjob.parse_array_id(run_slurm(self.node_job, argv, "take the job's parts").stdout)
        self.job.options.setdefault("slurm_arrays", {})[array_id] = names
        self.job.save()
        self.book.submitted(array_id, names)

    def keep(self, name: str, look: Look) -> None:
        span, end = self.spans[name], look.finished[name]
        try:
            fetched = self.node_job.fetch(span, self.job.parts_folder, self.final_frame)
        except NodeError as exc:  # came back damaged
            self.retry(name, str(exc))
            return
        self.node_job.discard(span)
        seconds = (end.end - end.start) if end.start is not None and end.end is not None else 0.0
        session_start = self.job.sessions[-1]["started"] if self.job.sessions else None
        started = max(0.0, end.start - session_start) if end.start is not None and session_start else None
        node = end.node or "slurm"
        self.job.nodes.setdefault(node, {"engine": "slurm"})
        self.job.record_parts([f.span for f in fetched], node, seconds, started)
        if self.preview is not None:
            for file in fetched:
                self.preview.add_part(file.span, file.path)
            self.preview.flush(force=self.book.finished)
        self.reporter.advance("slurm", sum(f.span.size for f in fetched), 1)

    def failed(self, name: str, end: Finished) -> None:
        log_path = shell_join([posixpath.join(self.parts_dir, name, "log")])
        log = self.node_job.session.run(f"tail -c 4000 {log_path} 2>/dev/null; true", timeout=30.0).stdout
        error = classify_failure(end.node or "slurm", self.node_job.povray, end.rc, log)
        if not isinstance(error, NodeError):
            raise error  # the scene's or the options' fault: the same on every node
        self.retry(name, f"{self.spans[name].label()}: {error}")

    def retry(self, name: str, reason: str) -> None:
        self.job.note(time.time() - (self.job.sessions[-1]["started"] if self.job.sessions else 0), reason)
        if not self.book.retry(name):
            raise JobError(f"{reason}; it failed {self.book.failures[name]} times, so the job stops; "
                           f"continue with: {resume_command(self.job)}")
        self.reporter.warn(f"{reason}; submitting it again")

    def show(self, look: Look) -> None:
        rows = 0
        for name, tail in look.logs.items():
            span = self.spans.get(name)
            pixels = rendered_pixels(tail)
            if span is not None and pixels and name in self.book.flying:
                rows += min(span.size, pixels // self.width)
        states = self.book.states(look)
        self.reporter.running(rows, {"slurm": f"{states['running']} task(s) running, {states['waiting']} waiting"})


def cancel(node_job: NodeJob, options: SlurmOptions, job_id: str, timeout: float) -> None:
    """scancel every array of the job, and wait (bounded) until squeue shows none of its tasks."""
    node_job.session.run(shell_join([options.scancel, f"--name={slurmjob.job_name(job_id)}"]) + "; true", timeout=30.0)
    squeue = shell_join([options.squeue, "-h", f"--name={slurmjob.job_name(job_id)}", "-o", "%i"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node_job.session.run(squeue, timeout=30.0).stdout.strip():
            return
        time.sleep(0.5)


def finish(job: Job, node_job: NodeJob, timings: Counter, started: float) -> RenderSummary:
    merge_started = time.monotonic()
    output = merge_job(job)
    timings["merge"] = time.monotonic() - merge_started
    if not job.options.get("keep_remote", False):
        node_job.remove()
    timings["wall"] = time.monotonic() - started
    job.unit_costs = unit_costs(job)
    nodes_summary = record_done(job, timings)
    write_report(job)
    return RenderSummary(job, output, timings["wall"], job.plan_kind, nodes_summary, {}, job.timings)


def check_slurm(cluster: Cluster) -> list[NodeHealth]:
    """inv health on a Slurm cluster: the login node, then each node of the partition as sinfo
    sees it, with the POV-Ray one task finds there."""
    options = cluster.slurm or SlurmOptions()
    login = cluster.login
    try:
        node_job = open_login(cluster, "health")
    except NodeError as exc:
        return [NodeHealth("login", login.address, False, reason=str(exc))]
    try:
        began = time.monotonic()
        partition = [f"--partition={options.partition}"] if options.partition else []
        nodes = run_slurm(node_job, [options.sinfo, "-h", "-N", *partition, "-o", "%N %T %c %O %e"],
                          "list its nodes").stdout
        command_ms = (time.monotonic() - began) * 1000
        probe = node_job.session.run(shell_join([
            "srun", *partition, f"--time={options.time}", "--immediate=60", "-N1", "-n1", "sh", "-c",
            f"{shell_join([login.povray])} --version 2>&1 | grep -m1 '^POV-Ray' || echo missing",
        ]), timeout=120.0)
        povray = probe.stdout.strip().splitlines()[-1] if probe.ok and probe.stdout.strip() else "missing"
    finally:
        node_job.session.close()
    records = [NodeHealth("login", login.address, True, command_ms=command_ms, workdir=login.workdir)]
    for line in nodes.splitlines():
        words = line.split()
        if len(words) < 5:
            continue
        name, state, cpus, load, free = words[:5]
        up = not any(bad in state for bad in ("down", "drain", "fail", "unknown"))
        problems = () if povray.startswith("POV-Ray") else (f"no POV-Ray found by a Slurm task ({povray})",)
        records.append(NodeHealth(
            name, f"slurm {state}", up, reason=None if up else f"Slurm says {state}",
            povray=povray if povray.startswith("POV-Ray") else None, cores=_number(cpus),
            load=(float(load), 0.0, 0.0) if _number(load, float) is not None else None,
            mem_free_mb=_number(free), problems=problems,
        ))
    return records


def _number(text: str, kind: type = int) -> int | float | None:
    try:
        return kind(text)
    except ValueError:
        return None
