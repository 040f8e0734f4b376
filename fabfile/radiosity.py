"""Radiosity across the nodes: one pretrace gathered by all of them, loaded by every band.

POV-Ray's radiosity pretrace samples only the region it renders, so plain
bands of a radiosity still show seams. A still that uses radiosity renders in
two phases instead:

1. The pretrace. Each node runs POV-Ray on one strip of the image's columns
   (every row: a scene's cost mostly changes from top to bottom, sky to
   floor, far less from left to right) with `Radiosity_To_File`. POV-Ray
   counts the pretrace's pixels first, then starts its count again for the
   final trace: when the count falls back to a block, the pretrace is done
   and POV-Ray is stopped (SIGTERM: it closes its cache file). Its cache
   holds the strip's pretrace samples.
2. The bands. The caches are joined into one (a cache file is a list of
   samples, one a line) in the job's folder, every node gets it, and every
   band, cut pieces and continuations too, renders with `Radiosity_From_File`
   and a copy of the scene whose pretrace is reduced to nothing
   (`pretrace_start 1 pretrace_end 1` appended: a second radiosity block
   edits the first). The bands then share one set of samples: no seams.
   The scene's copy and the INI that reads it (INI) go to the nodes first,
   so that each node's first bands start up while it gathers, held at their
   gate (NodeJob.launch_gated) until the cache is there.

A resumed job reuses the cache in its folder. If POV-Ray gathered no sample
at all, the scene's radiosity is off after all (an `#if` povfarm cannot
read): the bands render as plain ones, identical to POV-Ray alone.
"""

from __future__ import annotations

import math
import posixpath
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from fabfile.errors import NodeError, OptionsError, PovfarmError, SceneError
from fabfile.jobs import Job
from fabfile.nodejob import INI as NODE_INI
from fabfile.nodejob import NodeJob, classify_failure, logged_pixels, povray_ini_line
from fabfile.plan import Span
from fabfile.prepare import read_text
from fabfile.progress import Reporter
from fabfile.transport import shell_join

CACHE = "radiosity.rad"  # the joined samples: in the job's folder, and in each node's job folder
INI = "povfarm-radiosity.ini"  # the second phase's INI on a node: the scene's copy, and the cache
PRETRACE_OFF = "global_settings { radiosity { pretrace_start 1 pretrace_end 1 } }"
COPY_SUFFIX = ".povfarm-radiosity.pov"  # the scene's copy with PRETRACE_OFF, beside the scene on a node
PROGRESS_EVERY = 5.0  # seconds between the lines that say how far a long pretrace is
# Reads POV-Ray's log (`Rendered <n> of <strip's pixels> pixels`) and stops it (SIGTERM to
# `pid`) when the pretrace is done: its count has passed half the strip and the final trace
# starts counting again from a block, below half of it. With several threads the counts
# arrive a little out of order (21120, then 20976): such a step back is no end.
PRETRACE_END_WATCH = (
    '$1 == "Rendered" && $3 == "of" { n = $2 + 0; '
    'if (2 * n < top && 2 * top > $4 + 0) { system("kill -TERM " pid); exit } '
    "if (n > top) top = n }"
)


def pretrace_strips(width: int, count: int) -> list[tuple[int, int]]:
    """Columns 1..width in `count` even strips (fewer for a narrow image), left to right."""
    count = max(1, min(count, width))
    edges = [round(width * i / count) for i in range(count + 1)]
    return [(edges[i] + 1, edges[i + 1]) for i in range(count)]


def scene_copy_name(input_file: str) -> str:
    """The name of the scene's copy that loads the cache, beside the scene's main file."""
    stem = posixpath.splitext(input_file)[0]
    return f"{stem}{COPY_SUFFIX}"


def scene_copy_text(scene_text: str) -> str:
    return f"{scene_text.rstrip()}\n\n// povfarm: the radiosity cache is loaded; no pretrace\n{PRETRACE_OFF}\n"


def join_caches(parts: Sequence[Path], target: Path) -> None:
    """Join the strips' cache files into one (written whole, then renamed)."""
    temporary = target.with_name(f".{target.name}.tmp")
    with temporary.open("wb") as out:
        for part in parts:
            data = part.read_bytes()
            if data and not data.endswith(b"\n"):
                data += b"\n"
            out.write(data)
    temporary.replace(target)


def ini_lines(entry_line: str, copy_name: str, up: str) -> list[str]:
    """povfarm.ini of a band that loads the cache: the scene's copy, and the cache from the job folder."""
    return [
        entry_line,
        povray_ini_line("Input_File_Name", copy_name),
        povray_ini_line("Radiosity_File_Name", posixpath.join(up, CACHE)),
        "Radiosity_From_File=on",
        "Radiosity_To_File=off",
    ]


def pretrace_name(strip: tuple[int, int]) -> str:
    return f"pretrace-{strip[0]:06d}-{strip[1]:06d}"


def pretrace_folder(node_job: NodeJob, strip: tuple[int, int]) -> str:
    """Where a strip's pretrace keeps its log and cache on the node (among the job's parts)."""
    return posixpath.join(node_job.root, "parts", pretrace_name(strip))


def pretrace_script(node_job: NodeJob, strip: tuple[int, int], job_args: Sequence[str]) -> str:
    """The node's command: POV-Ray on one strip, saving its cache, stopped when its pretrace ends."""
    folder = posixpath.join(node_job.up, "parts", pretrace_name(strip))  # stopped with the job's parts
    log, cache, pid, rc = (shell_join([posixpath.join(folder, name)]) for name in ("log", "cache.rad", "pid", "rc"))
    povray = shell_join([
        node_job.povray, posixpath.join(node_job.up, "povfarm.ini"), *job_args, f"+SC{strip[0]}", f"+EC{strip[1]}",
        "-F", f"Radiosity_File_Name={posixpath.join(folder, 'cache.rad')}", "+RFO",
    ])
    watch = f"awk -v RS='[\\r\\n]' -v pid=$pid {shell_join([PRETRACE_END_WATCH])}"
    # Stopped, POV-Ray closes its cache within a fraction of a second and exits ~0.2 s later
    # (bench/NOTES.md): once the cache is closed (not among its open files) it is whole, and
    # POV-Ray is killed. Its front end keeps only the last signal it got, so SIGTERM is sent
    # again every 0.5 s while the cache stays open (a second one changes nothing).
    opened = shell_join([f"/{pretrace_name(strip)}/cache.rad"])  # as its open file's link names it
    closed = (
        f"n=0; while [ $n -lt 500 ] && ls -l /proc/$pid/fd 2>/dev/null | grep -qF {opened}; "
        "do sleep 0.02; n=$((n+1)); [ $((n % 25)) = 0 ] && kill -TERM $pid 2>/dev/null; done; "
        f"if [ $n -lt 500 ] && kill -0 $pid 2>/dev/null && [ -s {cache} ]; then kill -KILL $pid; killed=1; fi; "
    )
    script = (
        f"mkdir -p {shell_join([folder])} && rm -f {log} {cache} && "
        f"{{ {povray} </dev/null >/dev/null 2>{log} & pid=$!; echo $pid >{pid}; killed=0; "
        f"tail -c +1 -s 0.1 --pid=$pid -f {log} 2>/dev/null | {watch}; {closed}"
        # 2: stopped by the watch (POV-Ray's status after a signal it handles).
        f"wait $pid; status=$?; [ $status = 2 ] && status=0; [ $killed = 1 ] && status=0; echo $status >{rc}; "
        f"if [ $status != 0 ]; then tail -c 4000 {log} >&2; "
        "echo povfarm-free-kb=$(df -Pk . | awk 'NR==2 {print $4}') >&2; fi; exit $status; }"
    )
    return node_job.command(script)


def pretrace_strip(node_job: NodeJob, strip: tuple[int, int], job_args: Sequence[str], local: Path) -> Path:
    """Run one strip's pretrace on a node and fetch its cache file."""
    result = node_job.session.run(pretrace_script(node_job, strip, job_args))
    if not result.ok:
        raise classify_failure(node_job.name, node_job.povray, result.exit_code, result.stderr)
    target = local / f"{pretrace_name(strip)}.rad"
    node_job.session.get(posixpath.join(pretrace_folder(node_job, strip), "cache.rad"), target)
    return target


@dataclass(frozen=True)
class HangLimit:
    """A strip whose pretrace takes `factor` times the first finished strip's, and `grace`
    seconds more, is taken for hung: its strip goes to a node that finished (the render's
    Tuning gives both, as it does for parts)."""

    grace: float
    factor: float


@dataclass
class Shared:
    """What gathering the pretrace came to: its seconds (0 when a resume reused it; None:
    POV-Ray gathered no sample, the scene's radiosity is off, the bands render plainly);
    the nodes that failed on the way, with why (they render no band of the job); and the
    first bands each node started early, waiting at their gate since `since`."""

    seconds: float | None
    failed: dict[str, str] = field(default_factory=dict)
    early: dict[str, list[Span]] = field(default_factory=dict)
    since: float = 0.0


# Starts a node's first bands of the second phase at their gate (NodeJob.launch_gated); those it did.
Launch = Callable[[NodeJob], list[Span]]


def share_radiosity(
    job: Job, node_jobs: dict[str, NodeJob], job_args: Sequence[str], entry_line: str, reporter: Reporter,
    hang: HangLimit, launch: Launch | None = None,
) -> Shared:
    """Gather the job's pretrace across the nodes (once per job: a resume reuses it), and
    give every node the cache and the scene's copy that loads it. While a node gathers,
    `launch` starts its first bands, held at their gate until the cache is there."""
    cache = job.folder / CACHE
    give = partial(give_copy, copy=write_scene_copy(job), entry_line=entry_line)
    shared = Shared(0.0)
    if not cache.is_file():
        shared.since = time.monotonic()
        strips = pretrace_strips(int(job.settings["width"]), len(node_jobs))
        reporter.info(f"radiosity: gathering the pretrace in {len(strips)} strip(s) of columns, one per node")
        local = job.folder / "pretrace"
        local.mkdir(exist_ok=True)
        with ThreadPoolExecutor(max_workers=len(node_jobs)) as pool:
            ready = {name: pool.submit(_early_bands, node_job, give, launch) for name, node_job in node_jobs.items()}
            progress = PretraceProgress(node_jobs, int(job.settings["height"]), reporter)
            caches = gather_pretrace(node_jobs, strips, job_args, local, hang, shared.failed, progress)
            for name, future in ready.items():
                try:
                    shared.early[name] = future.result()
                except PovfarmError:
                    shared.early[name] = []  # the copy goes with the cache below
        join_caches([caches[strip] for strip in strips], cache)
        shutil.rmtree(local)
        shared.seconds = time.monotonic() - shared.since
    samples = cache.read_bytes().count(b"\n")
    if samples == 0:
        _plain_again(node_jobs, shared)
        return shared
    reporter.info(f"radiosity: {samples} samples in the pretrace ({shared.seconds:.1f}s), shared by every band")
    _hand_out(node_jobs, cache, give, shared)
    if shared.failed:  # the first bands were planned for every node: with one lost, others come
        _stop_early(node_jobs, shared)
    return shared


def write_scene_copy(job: Job) -> tuple[Path, str]:
    """The scene's copy that loads the cache (in the job's folder), and its name beside the scene."""
    input_file = str(job.settings["input_file"])
    copy_name = scene_copy_name(input_file)
    copy = job.folder / posixpath.basename(copy_name)
    copy.write_text(scene_copy_text(read_text(Path(job.scene).parent / input_file)),
                    encoding="utf-8", errors="surrogateescape")
    return copy, copy_name


def give_copy(node_job: NodeJob, copy: tuple[Path, str], entry_line: str) -> None:
    """The scene's copy on a node, and the INI its parts read from then on (the pretrace reads
    povfarm.ini, which stays as it was)."""
    local, name = copy
    node_job.use_scene_copy(local, name, ini_lines(entry_line, name, node_job.up), INI)


def _early_bands(node_job: NodeJob, give: Callable[[NodeJob], None], launch: Launch | None) -> list[Span]:
    give(node_job)
    return launch(node_job) if launch is not None else []


def _hand_out(node_jobs: dict[str, NodeJob], cache: Path, give: Callable[[NodeJob], None], shared: Shared) -> None:
    """The cache to every node still usable (and the scene's copy where it is not yet)."""

    def hand_out(node_job: NodeJob) -> None:
        if node_job.ini != INI:
            give(node_job)
        node_job.session.put(cache, posixpath.join(node_job.root, CACHE))

    usable = [node_job for name, node_job in node_jobs.items() if name not in shared.failed]
    with ThreadPoolExecutor(max_workers=max(1, len(usable))) as pool:
        for node_job, future in [(node_job, pool.submit(hand_out, node_job)) for node_job in usable]:
            try:
                future.result()
            except PovfarmError as exc:  # a node lost since: the others render its bands
                shared.failed[node_job.name] = str(exc)
    if len(shared.failed) >= len(node_jobs):
        raise NodeError("no node could take the radiosity cache: " + "; ".join(shared.failed.values()))


def _plain_again(node_jobs: dict[str, NodeJob], shared: Shared) -> None:
    """No sample: the scene's radiosity is off. Parts read povfarm.ini again (the copy would
    switch radiosity on), and the bands started early go."""
    shared.seconds = None
    for node_job in node_jobs.values():
        node_job.ini = NODE_INI
    _stop_early(node_jobs, shared)


def _stop_early(node_jobs: dict[str, NodeJob], shared: Shared) -> None:
    """The POV-Rays started early at their gate, stopped: no part will open their gate. (A
    failed node is not asked: it may not answer; its watchdog ends them.)"""
    for name, spans in shared.early.items():
        if name in shared.failed:
            continue
        for span in spans:
            try:
                node_jobs[name].cancel_gated(span, remove=True)
            except Exception:  # noqa: BLE001 - a lost node's gated POV-Ray ends by its watchdog
                pass
    shared.early = {}


class PretraceProgress:
    """How far the running pretraces are, said every PROGRESS_EVERY seconds from their POV-Ray
    logs: each running node's share of its strip, never going back (once its pretrace is done,
    POV-Ray counts again from one block for the final trace it is stopped in)."""

    def __init__(self, node_jobs: dict[str, NodeJob], height: int, reporter: Reporter) -> None:
        self.node_jobs, self.height, self.reporter = node_jobs, height, reporter
        self.shares: dict[tuple[int, int], float] = {}  # by strip
        self.silent: set[str] = set()  # nodes that did not answer: not asked again
        self.next = time.monotonic() + PROGRESS_EVERY

    def due_in(self) -> float:
        return max(0.0, self.next - time.monotonic())

    def tell(self, running: dict[str, tuple[int, int]]) -> None:
        """Read the logs of the strips still `running` (by node) and say how far each is."""
        for name, strip in running.items():
            if name in self.silent:
                continue
            node_job = self.node_jobs[name]
            try:
                pixels = logged_pixels(node_job, pretrace_folder(node_job, strip), timeout=2.0)
            except PovfarmError:  # the node does not answer: the hang limit decides
                self.silent.add(name)
                continue
            if pixels is not None:
                share = min(1.0, pixels / ((strip[1] - strip[0] + 1) * self.height))
                self.shares[strip] = max(self.shares.get(strip, 0.0), share)
        known = sorted((name, self.shares[strip]) for name, strip in running.items() if strip in self.shares)
        if known:
            shares = ", ".join(f"{name} {share:.0%}" for name, share in known)
            self.reporter.info(f"radiosity: gathering the pretrace: {shares}")
        self.next = time.monotonic() + PROGRESS_EVERY


def gather_pretrace(
    node_jobs: dict[str, NodeJob], strips: list[tuple[int, int]], job_args: Sequence[str], local: Path,
    hang: HangLimit, failures: dict[str, str], progress: PretraceProgress | None = None,
) -> dict[tuple[int, int], Path]:
    """Every strip's cache, a strip per node at once, in rounds: the strips of a node that
    failed, or that passed the hang limit, go to the nodes that finished theirs (the
    failed ones, with why, go into `failures`). A scene's error (a parse error) ends it at once."""
    caches: dict[tuple[int, int], Path] = {}
    usable = list(node_jobs)
    pool = ThreadPoolExecutor(max_workers=len(strips) + len(node_jobs))  # a hung node's thread is left behind
    try:
        while len(caches) < len(strips):
            if not usable:
                raise NodeError("no node could gather the radiosity pretrace: " + "; ".join(failures.values()))
            todo = [strip for strip in strips if strip not in caches]
            assigned = dict(zip(usable, todo, strict=False))
            running = {pool.submit(pretrace_strip, node_jobs[name], strip, job_args, local): name
                       for name, strip in assigned.items()}
            finished = _round(running, assigned, caches, failures, hang, progress)
            usable = finished + [name for name in usable if name not in assigned]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return caches


def _round(running: dict[Future, str], assigned: dict[str, tuple[int, int]],
           caches: dict[tuple[int, int], Path], failures: dict[str, str], hang: HangLimit,
           progress: PretraceProgress | None) -> list[str]:
    """Wait for one round's pretraces (saying how far they are); the nodes that finished theirs."""
    started = time.monotonic()
    finished: list[str] = []
    waiting, deadline = set(running), None
    while waiting:
        hung_in = math.inf if deadline is None else max(0.0, deadline - time.monotonic())
        timeout = min(hung_in, math.inf if progress is None else progress.due_in())
        done, waiting = wait(waiting, timeout=None if timeout == math.inf else timeout, return_when=FIRST_COMPLETED)
        if not done and deadline is not None and time.monotonic() >= deadline:
            for future in waiting:  # hung: left behind, its strip goes elsewhere
                failures[running[future]] = f"node {running[future]}: its pretrace took too long"
            break
        if not done and progress is not None:
            progress.tell({running[future]: assigned[running[future]] for future in waiting})
        for future in done:
            name = running[future]
            try:
                caches[assigned[name]] = future.result()
                finished.append(name)
            except (SceneError, OptionsError):
                raise
            except PovfarmError as exc:
                failures[name] = str(exc)
        if deadline is None and finished:
            deadline = started + hang.grace + hang.factor * (time.monotonic() - started)
    return finished
