"""What one job does on one node: its folder, its uploads, its parts.

Each node gets its own folder `<workdir>/<job id>/<node name>/`, so nodes
that share a machine and a workdir never touch each other's files:

    povfarm.ini        names the scene for POV-Ray (quoted, so any name works)
    radiosity.rad      a radiosity still's shared pretrace (fabfile.radiosity),
                       gathered in parts/pretrace-<band>/
    files/.../scene/   the scene's files, at their paths relative to the scene
    parts/<part>/      one part: pid, rc, log, the PNG(s) POV-Ray wrote and,
                       for a still, its state file (+C continues a cut part); a
                       continuation started early also has its gate (a FIFO)
                       and exit (POV-Ray's status, written by its launcher)

Every command is one shell line whose words are quoted by shell_join.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fabfile import photons
from fabfile.errors import NodeError, OptionsError, SceneError
from fabfile.merge import DamagedPart, check_png
from fabfile.plan import FRAMES, Span, parse_part_name
from fabfile.trace import RENDERED
from fabfile.transport import OutputHandler, Session, shell_join

PART_OUTPUT = "p"
PART_STATE = f"{PART_OUTPUT}.pov-state"  # POV-Ray's state file beside its output (+C reads it)
POVRAY_CANCELLED = 2  # POV-Ray's exit status after SIGINT
CUT_SIGNAL = "received signal SIGINT"  # what POV-Ray logs at once when a cut stops it
# What a part's command reports when it saw POV-Ray stop for a cut. The log's tail it sends
# back may no longer hold CUT_SIGNAL: in cheap rows POV-Ray logs a hundred blocks or more
# after it, and the band was taken for failed, its rows rendered again from the start.
CUT_REPORTED = "povfarm-cut"
INI = "povfarm.ini"  # in the job's folder on a node: names the scene (see the module's doc)

# The POV-Ray whose reading of an include header was checked for a gate: it opens the header
# twice and reads its size (0 for a FIFO), so the gate adds nothing to the scene.
GATED_VERSION = "Ray Tracer Version 3.7."
# A continuation held at its gate that nobody opens (the client died, or gave up on it)
# is killed on the node after this many seconds; the client uses one within
# workers.GATE_LIMIT or cancels it itself.
GATE_WAIT_LIMIT = 30
REGION_COUNT = "Rendered [0-9]+ of [0-9]+ pixels"
FINAL_COUNT = re.compile(r"^Rendered (\d+) of (\d+) pixels$", re.M)
TIME_LINES = "(Parse|Bounding|Photon|Radiosity|Trace) Time:|CPU-seconds total"


def _clock_us(variable: str) -> str:
    """Shell that sets `variable` to the time in microseconds. bash 5 reads it without
    a fork (EPOCHREALTIME; its decimal point is the locale's, so either is dropped);
    an older bash asks date. Every fork on a node's busy core adds to a part's cost."""
    return f"{variable}=${{EPOCHREALTIME/[.,]/}}; : ${{{variable}:=$(date +%s%6N)}}; "


class PartInterrupted(NodeError):
    """A part's POV-Ray was stopped on purpose (a cut); its state file is kept."""

    def __init__(self, message: str, povray_times: dict[str, float], pixels: int) -> None:
        super().__init__(message)
        self.povray_times = povray_times
        self.pixels = pixels  # pixels this run of POV-Ray finished (a +C run counts only its own)


@dataclass(frozen=True)
class FetchedFile:
    span: Span
    path: Path


@dataclass(frozen=True)
class PartOutcome:
    seconds: float  # the part's command, start to end, as seen from here
    files: tuple[FetchedFile, ...]
    fetch_seconds: float = 0.0
    povray_times: dict[str, float] | None = None  # POV-Ray's own parse/photon/trace... seconds
    pixels: tuple[int, int] | None = None  # a still's part: the pixels POV-Ray rendered, of those in its region


POVRAY_CPU = re.compile(r"using \d+ thread\(s\) with ([\d.]+) CPU-seconds total")
POVRAY_TIME = re.compile(r"^\s*(?P<what>Parse|Bounding|Photon|Radiosity|Trace) Time:.*\((?P<seconds>[\d.]+) seconds\)")


def povray_times(log: str) -> dict[str, float]:
    """The phase times POV-Ray prints in its statistics."""
    times: dict[str, float] = {}
    lines = log.splitlines()
    if "povfarm-times" in lines:
        # `times` prints the shell's user/sys, then its children's: POV-Ray's CPU seconds.
        after = lines[lines.index("povfarm-times") + 1 : lines.index("povfarm-times") + 3]
        if len(after) == 2:
            clock = re.findall(r"(\d+)m([\d.]+)s", after[1])
            times["cpu"] = sum(int(m) * 60 + float(sec) for m, sec in clock)
    # POV-Ray's own count of its threads' CPU: all there is when a still's part
    # returns before POV-Ray has exited (then `times` cannot count it yet).
    logged = sum(float(m) for m in POVRAY_CPU.findall(log))
    if logged > times.get("cpu", 0.0):
        times["cpu"] = logged
    for line in lines:
        if line.startswith("povfarm-povray-ns="):
            times["wall"] = int(line.partition("=")[2]) / 1e9
        if line.startswith("povfarm-cpu="):  # a cut part's, read as its POV-Ray is stopped
            try:
                times["cpu"] = max(times.get("cpu", 0.0), float(line.partition("=")[2]))
            except ValueError:
                pass
        if line.startswith("povfarm-gate-ns="):  # a continuation started early: how long it waited
            times["gate"] = max(0, int(line.partition("=")[2])) / 1e9
        match = POVRAY_TIME.match(line)
        if match:
            key = match.group("what").lower()
            times[key] = times.get(key, 0.0) + float(match.group("seconds"))
    if "gate" in times and "parse" in times:
        times["parse"] = max(0.0, times["parse"] - times["gate"])
    return times


def rendered_pixels(log: str) -> int | None:
    """The last count of finished pixels POV-Ray logged (+V), or None."""
    counts = RENDERED.findall(log)
    return int(counts[-1]) if counts else None


def povray_ini_line(key: str, value: str) -> str:
    """An INI line POV-Ray reads back as exactly `value`."""
    if "'" not in value:
        return f"{key}='{value}'"
    if '"' not in value:
        return f'{key}="{value}"'
    raise SceneError(f"{value!r}: POV-Ray cannot read a file name holding both ' and \"; rename it")


def scene_depth(files: Sequence[str]) -> int:
    """How many folders above the scene its files reach (../ steps)."""
    depth = 0
    for name in files:
        parts = posixpath.normpath(name).split("/")
        depth = max(depth, len(list(p for p in parts if p == "..")))
    return depth


class PartControl:
    """Words for a running part, sent down its own command's stdin: no command, no
    login shell of their own, and queued even to a node that does not answer now
    (a frozen node acts on them when it wakes). `cut`: POV-Ray stops and keeps its
    state file; `stop`: POV-Ray ends. A closed stdin (the client gone) stops nothing:
    the part renders on for `inv collect`."""

    def __init__(self) -> None:
        reading, self._writing = os.pipe()
        self.stdin = os.fdopen(reading, "rb", buffering=0)
        self._lock = threading.Lock()

    def send(self, word: str) -> None:
        with self._lock:
            if self._writing >= 0:
                os.write(self._writing, f"{word}\n".encode())

    def close(self) -> None:
        with self._lock:
            if self._writing >= 0:
                os.close(self._writing)
                self._writing = -1
        self.stdin.close()


class NodeJob:
    """One job's folder, uploads and parts on one node."""

    def __init__(
        self,
        session: Session,
        workdir: str,
        job_id: str,
        povray: str,
        scene_files: Sequence[str],
        depth: int = 0,
    ) -> None:
        self.session = session
        self.name = session.node.name
        self.root = posixpath.join(workdir, job_id, self.name)
        self.scene_dir = posixpath.join(self.root, "files", *(["up"] * depth), "scene")
        self.povray = povray
        self.scene_files = tuple(scene_files)
        self.up = posixpath.relpath(self.root, self.scene_dir)
        self._fetched: list[str] = []  # part folders to remove with the next command
        self._fetched_lock = threading.Lock()
        self.shares_photons = False  # a still's parts save and load the node's photon map (fabfile.photons)
        self.ini = INI  # the INI file parts read first: a scene copy's own (fabfile.radiosity) once it has one

    # -- set-up ----------------------------------------------------------
    def prepare(self, local_root: Path, entry_line: str) -> None:
        """Create the job folder, write the INI and upload the scene's files once."""
        folders = {self.scene_dir, posixpath.join(self.root, "parts")}
        for name in self.scene_files:
            folders.add(posixpath.dirname(posixpath.normpath(posixpath.join(self.scene_dir, name))))
        result = self.session.run(shell_join(["mkdir", "-p", "--", *sorted(folders)]))
        if not result.ok:
            raise NodeError(
                f"node {self.name}: cannot create {self.root}: {_last_line(result.stderr)}; "
                "check 'workdir' in the inventory or run inv provision"
            )
        self.write_ini([entry_line])
        for name in self.scene_files:
            remote = posixpath.normpath(posixpath.join(self.scene_dir, name))
            self.session.put(local_root / name, remote)

    def write_ini(self, lines: Sequence[str], ini: str = INI) -> None:
        """(Re)write an INI file of the job's folder (povfarm.ini: what every POV-Ray reads first)."""
        self.put_text("".join(f"{line}\n" for line in lines), posixpath.join(self.root, ini))

    def use_scene_copy(self, local: Path, name: str, ini_lines: Sequence[str], ini: str = INI) -> None:
        """Upload a copy of the scene beside it, under `name`, and the INI file that reads it,
        which parts read from then on."""
        self.session.put(local, posixpath.normpath(posixpath.join(self.scene_dir, name)))
        self.write_ini(ini_lines, ini)
        self.ini = ini

    def put_text(self, text: str, remote: str) -> None:
        """Write a small text file on the node (through a local file: SFTP puts files)."""
        local = Path(os.environ.get("TMPDIR", "/tmp")) / f"povfarm-{os.getpid()}-{id(self)}-{threading.get_ident()}"
        try:
            local.write_text(text, encoding="utf-8")
            self.session.put(local, remote)
        finally:
            local.unlink(missing_ok=True)

    # -- parts -----------------------------------------------------------
    def part_command(
        self, span: Span, job_args: Sequence[str], resume_from: Span | None = None, gated: bool = False
    ) -> str:
        """The command that renders a part (or continues a cut one) and returns its log's tail.

        `gated`: the continuation's POV-Ray was started beforehand by `launch_gated`
        and waits at its gate; this command hands it the state file, opens the
        gate and follows it to its end.
        """
        part_dir = posixpath.join(self.up, "parts", span.name)
        names = ("log", "pid", "rc", f"{PART_OUTPUT}.png", PART_STATE, "gate", "exit")
        log, pid, rc, png, state, gate, exited = (shell_join([f"{part_dir}/{n}"]) for n in names)
        prepare = f"mkdir -p {shell_join([part_dir])}"
        if resume_from is not None:
            # A cut part continues from its state file (+C) under its new, shorter name. The
            # stopped POV-Ray is gone (its command killed and reaped it): the file moves.
            old_dir = posixpath.join(self.up, "parts", resume_from.name)
            if old_dir != part_dir:
                old_state, new_dir, old = (shell_join([f]) for f in (f"{old_dir}/{PART_STATE}", part_dir, old_dir))
                prepare += f" && {{ mv -f -- {old_state} {new_dir}/ 2>/dev/null; rm -rf -- {old}; }}"
        if gated:
            start, reap = _gated_start(prepare, part_dir, log, pid, gate, exited)
        else:
            # POV-Ray runs in the background so its pid can be recorded for a kill;
            # rc marks a finished part for `inv collect` (a retry's stale rc goes first).
            povray = shell_join([self.povray, *self._povray_args(span, job_args, resume_from, part_dir)])
            start = (
                f"{prepare} && rm -f {rc} {png} && "
                f"{{ {_clock_us('t0')}{povray} </dev/null >/dev/null 2>{log} & pid=$!; echo $pid >{pid}; "
            )
            reap = "wait $pid; status=$?"
        keep_map = photons.keep_map(log, span.start) if self.shares_photons and span.kind != FRAMES else ""
        return self.command(_part_script(span.kind == FRAMES, start, reap, keep_map, log, png, state, rc))

    def launch_gated(self, span: Span, job_args: Sequence[str], resume_from: Span | None = None) -> bool:
        """Start the continuation of a part being cut (`resume_from`) before that part
        stops, held at a gate.

        POV-Ray spends its first ~0.3 s idle, starting up; started here, it does
        so while the node's core still renders. It waits before parsing, at
        its include header: a FIFO (POV-Ray reads the header's size, 0, so the
        scene is unchanged). `part_command(..., gated=True)` brings the state file
        (a continuation) and opens the gate. True once it waits there.
        """
        part_dir = posixpath.join(self.up, "parts", span.name)
        args = self._povray_args(span, job_args, resume_from, part_dir)
        povray = shell_join([self.povray, *args, f"+HI{part_dir}/gate"])
        log, pid, rc, png, gate, exited, opened = (
            shell_join([f"{part_dir}/{n}"])
            for n in ("log", "pid", "rc", f"{PART_OUTPUT}.png", "gate", "exit", "opened")
        )
        # A launcher subshell outlives this command: it records POV-Ray's pid and,
        # at the end, its exit status. POV-Ray logs "[Parsing...]" as it reaches the gate.
        # A watchdog kills it if its gate is not opened in time: it would wait forever.
        # It ends as soon as POV-Ray ends or its gate opens.
        watchdog = (
            f"( n=0; while [ $n -lt {GATE_WAIT_LIMIT * 5} ] && [ ! -e {opened} ] && kill -0 $p 2>/dev/null; "
            f"do sleep 0.2; n=$((n+1)); done; [ ! -e {opened} ] && kill -KILL $p ) </dev/null >/dev/null 2>&1 & "
        )
        script = (
            f"mkdir -p {shell_join([part_dir])} && rm -f {rc} {png} {exited} {gate} {opened} && mkfifo {gate} && "
            f"{{ ( {povray} </dev/null >/dev/null 2>{log} & p=$!; echo $p >{pid}; {watchdog}wait $p; "
            f"echo $? >{exited} ) "
            "</dev/null >/dev/null 2>&1 & n=0; "
            f"until grep -q -F '[Parsing' {log} 2>/dev/null || [ -s {exited} ] || [ $n -ge 500 ]; "
            f"do sleep 0.01; n=$((n+1)); done; grep -q -F '[Parsing' {log} && [ ! -s {exited} ] && "
            f"grep -q -F '{GATED_VERSION}' {log} && exit 0; "
            # Not there in time (a loaded node), or a POV-Ray whose header reading was not
            # checked: stop it; the continuation starts after the stop.
            f'kill -KILL "$(cat {pid} 2>/dev/null)" 2>/dev/null; exit 1; }}'
        )
        return self.session.run(self.command(script), timeout=30.0).ok

    def cancel_gated(self, span: Span, remove: bool = False) -> None:
        """Stop a POV-Ray started by `launch_gated` that is not needed after all. Its
        folder goes with the next command, or with this one (`remove`: its rows may
        be rendered here later, under the same name)."""
        part_dir = self.part_folder(span)
        pid = shell_join([f"{part_dir}/pid"])
        # Its POV-Ray waits in open(), where only SIGKILL reaches it; it has written nothing yet.
        script = f'kill -KILL "$(cat {pid} 2>/dev/null)" 2>/dev/null; '
        if remove:
            script += f"rm -rf -- {shell_join([part_dir])}; "
        else:
            with self._fetched_lock:
                self._fetched.append(part_dir)
        self.session.run(script + "true", timeout=10.0)

    def _povray_args(self, span: Span, job_args: Sequence[str], resume_from: Span | None, part_dir: str) -> list[str]:
        args = [posixpath.join(self.up, self.ini), *job_args]
        args.append(f"+O{part_dir}/{PART_OUTPUT}.png")
        if span.kind == FRAMES:
            args += [f"+SF{span.start}", f"+EF{span.end}"]
        else:
            # +V: POV-Ray logs each finished block, the progress shown and cuts decided on.
            args += ["+V", f"+SR{span.start}", f"+ER{span.end}"]
            if self.shares_photons:
                args += photons.part_args(span.start)
            if span.columns:
                # One block row narrowed at its right end (a cut by columns): its blocks keep
                # their numbers, so its state file continues it. A band's would not: columns
                # renumber the blocks of every row in the area.
                if span.columns_from != span.start:
                    raise ValueError(f"{span.label()}: only a part of one block row is narrowed to columns")
                args += [f"+SC{span.columns[0]}", f"+EC{span.columns[1]}"]
        if resume_from is not None:
            args.append("+C")
        return args

    def task_argv(self, span: Span, job_args: Sequence[str]) -> list[str]:
        """POV-Ray's command line for a part run by someone else (a Slurm task), from the scene's folder."""
        return [self.povray, *self._povray_args(span, job_args, None, posixpath.join(self.up, "parts", span.name))]

    def discard(self, span: Span) -> None:
        """A fetched part's folder goes with the next command."""
        with self._fetched_lock:
            self._fetched.append(self.part_folder(span))

    def command(self, script: str) -> str:
        """A script run in the scene's folder on the node, as every command of the job is."""
        with self._fetched_lock:
            done, self._fetched = self._fetched, []
        # Folders of parts already fetched go with this command: no round trip of their own.
        cleanup = f"rm -rf -- {shell_join(done)}; " if done else ""
        # bash: the still's script reads POV-Ray's log through a process substitution.
        return shell_join(["bash", "-c", f"{cleanup}cd {shell_join([self.scene_dir])} && {script}"])

    def render(
        self,
        span: Span,
        job_args: Sequence[str],
        local_parts: Path,
        final_frame: int,
        resume_from: Span | None = None,
        gated: bool = False,
        on_log: OutputHandler | None = None,
        control: PartControl | None = None,
    ) -> PartOutcome:
        """Render one part (or continue a cut one) and fetch what it wrote.

        A still's POV-Ray log goes to `on_log` as it grows. A failure raises; an
        interrupted part raises PartInterrupted with the POV-Ray times it spent.
        Its folder goes with the next command.
        """
        started = time.monotonic()
        command = self.part_command(span, job_args, resume_from, gated)
        result = self.session.run(command, on_output=on_log, stdin=control.stdin if control else None)
        seconds = time.monotonic() - started
        if not result.ok:
            stopped = any(mark in result.stderr for mark in (CUT_REPORTED, CUT_SIGNAL, "Render cancelled by user"))
            if result.exit_code == POVRAY_CANCELLED and stopped:
                raise PartInterrupted(
                    f"node {self.name}: {span.label()} was interrupted",
                    povray_times(result.stderr),
                    rendered_pixels(result.stderr) or 0,
                )
            raise classify_failure(self.name, self.povray, result.exit_code, result.stderr)
        fetch_started = time.monotonic()
        files = self.fetch(span, local_parts, final_frame)
        with self._fetched_lock:
            self._fetched.append(self.part_folder(span))
        counts = FINAL_COUNT.findall(result.stderr)
        pixels = (int(counts[-1][0]), int(counts[-1][1])) if counts else None
        return PartOutcome(seconds, files, time.monotonic() - fetch_started, povray_times(result.stderr), pixels)

    def part_folder(self, span: Span) -> str:
        return posixpath.join(self.root, "parts", span.name)

    def progress(self, span: Span, timeout: float = 10.0) -> int | None:
        """Pixels a running part has finished, from POV-Ray's log, or None."""
        return logged_pixels(self, self.part_folder(span), timeout)

    def interrupt(self, span: Span) -> None:
        """Ask a running part's POV-Ray to stop; it keeps its state file for +C."""
        part_dir = self.part_folder(span)
        pid, rc = (shell_join([f"{part_dir}/{n}"]) for n in ("pid", "rc"))
        self.session.run(f'[ -f {rc} ] || kill -INT "$(cat {pid} 2>/dev/null)" 2>/dev/null; true', timeout=10.0)

    def stop_part(self, span: Span) -> None:
        """End a running part's POV-Ray: nobody will use what it renders."""
        part_dir = self.part_folder(span)
        pid, rc = (shell_join([f"{part_dir}/{n}"]) for n in ("pid", "rc"))
        self.session.run(f'[ -f {rc} ] || kill -TERM "$(cat {pid} 2>/dev/null)" 2>/dev/null; true', timeout=10.0)

    def fetch(self, span: Span, local_parts: Path, final_frame: int) -> tuple[FetchedFile, ...]:
        part_dir = self.part_folder(span)
        fetched: list[FetchedFile] = []
        local: dict[str, Path] = {}  # a split band's two pieces come from one file
        for piece, remote_name in output_names(span, final_frame):
            target = local_parts / f"{piece.name}.png"
            temporary = local_parts / f".{piece.name}.{self.name}.tmp"
            if remote_name in local:
                shutil.copyfile(local[remote_name], temporary)
            else:
                self.session.get(posixpath.join(part_dir, remote_name), temporary)
                try:
                    check_png(temporary)
                except DamagedPart as exc:
                    temporary.unlink(missing_ok=True)
                    raise NodeError(f"node {self.name}: {piece.label()} came back {exc}; rendering it again") from None
            os.replace(temporary, target)
            local[remote_name] = target
            fetched.append(FetchedFile(piece, target))
        return tuple(fetched)

    def finished_parts(self) -> list[Span]:
        """Parts on the node whose POV-Ray exited 0 (for inv collect)."""
        parts = posixpath.join(self.root, "parts")
        script = (
            f"cd {shell_join([parts])} 2>/dev/null || exit 0; "
            'for d in */; do [ "$(cat "$d/rc" 2>/dev/null)" = 0 ] && printf "%s\\n" "${d%/}"; done; exit 0'
        )
        result = self.session.run(script)
        spans = [parse_part_name(line.strip()) for line in result.stdout.splitlines()]
        return [span for span in spans if span is not None]

    def stop_all(self, timeout: float = 10.0, remove: bool = False) -> None:
        """Stop every POV-Ray this job started on the node, and with `remove`
        remove its job folder too (one command: the end of a job waits for it)."""
        parts = posixpath.join(self.root, "parts")
        script = (
            f"( cd {shell_join([parts])} 2>/dev/null || exit 0; "
            # A continuation started early (it has a gate) may wait in open(), where only SIGKILL reaches it.
            'for d in */; do [ -f "$d/pid" ] && [ ! -f "$d/rc" ] && '
            'kill "-$([ -p "$d/gate" ] && echo KILL || echo TERM)" "$(cat "$d/pid")" 2>/dev/null; '
            "done ); "
        )
        if remove:
            script += f"{self._remove_script()}; "
        self.session.run(script + "exit 0", timeout=timeout)

    def remove(self, timeout: float = 30.0) -> None:
        """Remove this node's job folder."""
        self.session.run(f"{self._remove_script()}; true", timeout=timeout)

    def _remove_script(self) -> str:
        parent = posixpath.dirname(self.root)
        return f"rm -rf -- {shell_join([self.root])}; rmdir -- {shell_join([parent])} 2>/dev/null"


def logged_pixels(node_job: NodeJob, folder: str, timeout: float = 10.0) -> int | None:
    """The last count of finished pixels in the POV-Ray log in `folder` on the node, or None."""
    log = posixpath.join(folder, "log")
    result = node_job.session.run(f"tail -c 300 {shell_join([log])} 2>/dev/null; true", timeout=timeout)
    return rendered_pixels(result.stdout)


def _part_script(frames: bool, start: str, reap: str, keep_map: str, log: str, png: str, state: str,
                 rc: str) -> str:
    """A part's script from its start and reap: POV-Ray followed to its end, the part's words
    (PartControl) heard on stdin, and the log's tail, its times and its pixel count sent back.
    POV-Ray's own wall time is measured on the node, so the farm's cost per part (the SSH
    round trip, the fetch) can be told apart from it."""
    if frames:
        finish = reap
        follow = stop_following = ""
    else:
        # The log streams back as it grows: a running part's progress, and when each
        # block finished, without a command of its own (see fabfile.trace).
        follow = f"tail -c +1 -s 0.1 --pid=$pid -f {log} </dev/null 2>/dev/null & follower=$!; "
        stop_following = "kill $follower 2>/dev/null; "
        finish = _still_finish(log, png, state, reap)
    listen = (
        "{ while read -r word <&4; do case $word in cut) kill -INT $pid;; stop) kill -TERM $pid;; esac; "
        "done; } 2>/dev/null & listener=$!; "
    )
    return (
        f"exec 4<&0; {start}{listen}{follow}{finish}; {stop_following}kill $listener 2>/dev/null; "
        f"{keep_map}echo $status >{rc}; {_clock_us('t1')}echo povfarm-povray-ns=$(((t1 - t0) * 1000)) >&2; "
        "echo povfarm-times >&2; times >&2; "
        f"if [ $status = 0 ]; then grep -E '{TIME_LINES}' {log} >&2; "
        # The last count of pixels POV-Ray says it rendered: checked against the part's size.
        f"grep -aoE '{REGION_COUNT}' {log} | tail -n 1 >&2; "
        f"else tail -c 4000 {log} >&2; echo povfarm-free-kb=$(df -Pk . | awk 'NR==2 {{print $4}}') >&2; fi; "
        "exit $status; }"
    )


def _gated_start(prepare: str, part_dir: str, log: str, pid: str, gate: str, exited: str) -> tuple[str, str]:
    """The start of a part whose POV-Ray waits at its gate (NodeJob.launch_gated), and how
    its exit status is read. Opening the gate (a FIFO POV-Ray reads as its include header)
    for writing lets it parse; this shell holds it open until the part ends. POV-Ray
    counts its wait at the gate as parsing; it logged nothing while it waited."""
    opened = shell_join([f"{part_dir}/opened"])
    start = (
        f"{prepare} && : >{opened} && exec 3<>{gate} && {{ {_clock_us('t0')}pid=$(cat {pid}); "
        f"echo povfarm-gate-ns=$((t0 * 1000 - $(date -r {log} +%s%N))) >&2; "
    )
    # POV-Ray is not this shell's child: its exit status is in the file its launcher wrote.
    reap = (
        "while kill -0 $pid 2>/dev/null; do sleep 0.02; done; n=0; "
        f"until [ -s {exited} ] || [ $n -ge 100 ]; do sleep 0.01; n=$((n+1)); done; "
        f"status=$(cat {exited} 2>/dev/null); status=${{status:-1}}"
    )
    return start, reap


# POV-Ray's CPU seconds so far, read from /proc while it still runs (or waits to be reaped);
# nothing after `=` if it is gone, which povray_times ignores.
READ_CPU = ("echo povfarm-cpu=$(awk -v hz=\"$(getconf CLK_TCK)\" '{print ($14+$15)/hz}' "
            "/proc/$pid/stat 2>/dev/null) >&2; ")


def _still_finish(log: str, png: str, state: str, reap: str) -> str:
    """How a still's part command knows its POV-Ray is done, and with what status.

    A still is done when its PNG ends with IEND, which follows POV-Ray's last
    progress line (or its trace time) within moments; POV-Ray then idles ~0.35 s
    winding down its threads: not waited for. Its statistics may not be logged
    yet, so its CPU is read from /proc then (the part's cost, for the next
    render's first bands). Cut (SIGINT), it stops tracing at
    once and keeps its blocks in its state file: done when that stops growing.
    Its CPU is read then, and it is killed: winding down, it would spend ~0.4 s
    and 0.05-0.09 s of CPU on the core its continuation needs, for nothing kept
    (+C continues a killed POV-Ray's state file to the same pixels).
    Else: wait for its exit.
    """
    return (
        f"whole() {{ tail -c 12 {png} 2>/dev/null | grep -q IEND; }}; "
        f"grep -q -m1 -E 'Rendered ([0-9]+) of \\1 pixels|Trace Time:|{CUT_SIGNAL}' "
        f"<(exec tail -n +1 -s 0.1 --pid=$pid -f {log} </dev/null 2>/dev/null); n=0; "
        f"if grep -q '{CUT_SIGNAL}' {log} && ! whole; then "
        f"a=; b=; until c=$(stat -c %s {state} 2>/dev/null); [ \"$c\" = \"$a\" ] && [ \"$a\" = \"$b\" ] "
        "|| [ $n -ge 50 ]; do b=$a; a=$c; n=$((n+1)); sleep 0.02; done; "
        f"echo {CUT_REPORTED} >&2; "
        f"{READ_CPU}kill -KILL $pid 2>/dev/null; {reap}; status={POVRAY_CANCELLED}; else "
        "until whole || ! kill -0 $pid 2>/dev/null || [ $n -ge 50 ]; do sleep 0.02; n=$((n+1)); done; "
        f"if whole; then status=0; {READ_CPU}else {reap}; fi; fi"
    )


def output_names(span: Span, final_frame: int) -> list[tuple[Span, str]]:
    """The files POV-Ray writes for a part, and the one-unit span of each."""
    if span.kind != FRAMES:
        return [(piece, f"{PART_OUTPUT}.png") for piece in span.pieces()]
    digits = len(str(abs(final_frame)))
    return [
        (Span(FRAMES, frame, frame), f"{PART_OUTPUT}{frame:0{digits}d}.png")
        for frame in range(span.start, span.end + 1)
    ]


FREE_KB = re.compile(r"^povfarm-free-kb=(\d+)$", re.M)  # after a failure: the space left where the part ran
FULL_DISK_KB = 1024
PARSE_ERROR = re.compile(r"^File '(?P<file>.*)' line (?P<line>\d+): Parse Error: (?P<text>.*)$")


def classify_failure(node: str, povray: str, exit_code: int, log: str) -> Exception:
    """Turn a failed part's log into the error it means.

    A parse error or a rejected option is the scene's or the user's, the same
    on every node: the job stops. Anything else is the node's: retry elsewhere.
    """
    lines = [line.rstrip() for line in log.splitlines()]
    for index, line in enumerate(lines):
        match = PARSE_ERROR.match(line)
        if match:
            text = match.group("text")
            for follow in lines[index + 1 :]:
                if not follow.startswith(" "):
                    break
                text += " " + follow.strip()
            return SceneError(
                f"{match.group('file')} line {match.group('line')}: POV-Ray parse error: {text}; fix the scene"
            )
    for line in lines:
        if "Parse Error:" in line:
            return SceneError(f"POV-Ray could not parse the scene: {line.strip()}")
    for line in lines:
        if "Failed to parse command-line option" in line or "Problem with option setting" in line:
            return OptionsError("POV-Ray rejected an option (Failed to parse command-line option); check --args")
    if exit_code == -1:
        return NodeError(f"node {node}: connection lost while rendering")
    free = FREE_KB.search(log)
    if free and int(free.group(1)) < FULL_DISK_KB or "No space left on device" in log:
        return NodeError(f"node {node}: its disk is full (where its workdir is); free space there")
    if exit_code == 127 or "not found" in log and povray in log:
        return NodeError(f"node {node}: POV-Ray ({povray}) is not installed; run inv provision")
    return NodeError(f"node {node}: POV-Ray failed (exit {exit_code}): {_last_line(log) or 'no message'}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("povfarm-")]
    return lines[-1] if lines else ""
