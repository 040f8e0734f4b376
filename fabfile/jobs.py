"""The job record: one folder per job under renders/, with job.json.

The record holds what is needed to resume, collect and merge the job again
without the command line that started it: the scene, the inventory, the
options, the plan, and every part fetched so far with who rendered it.
It is rewritten atomically after each part, so an interrupt loses nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fabfile.errors import JobError
from fabfile.plan import ROWS, Plan, Span, covered_units, parse_part_name, rescale_costs

RECORD = "job.json"
LOCK = ".lock"
DEFAULT_CLUSTER = "cluster.yaml"
DEFAULT_RENDERS = "renders"


@dataclass
class PartRecord:
    node: str
    seconds: float
    file: str
    started: float | None = None  # seconds since its session's render phase began, for timelines
    session: int = 0  # which render of the job made it: 0 the first, 1 the first --resume...


@dataclass
class Job:
    id: str
    folder: Path
    scene: str
    cluster: str
    options: dict[str, Any]
    settings: dict[str, Any]
    plan_kind: str
    plan_units: list[list[int]]
    output: str
    created: float = field(default_factory=time.time)
    status: str = "running"
    parts: dict[str, PartRecord] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    unit_costs: list[float] | None = None  # a finished still's CPU seconds per unit, for its next render
    inputs: dict[str, str] = field(default_factory=dict)  # every file the scene reads: its SHA-256
    sessions: list[dict[str, float]] = field(default_factory=list)  # each render of it: when, how long
    summary: list[dict[str, Any]] = field(default_factory=list)  # what each node did (fabfile.summary)
    events: list[dict[str, Any]] = field(default_factory=list)  # warnings: when (t, session), node, text
    guarantee: str = ""  # what the result is promised to be: identical to POV-Ray alone, or seam-free

    @property
    def plan(self) -> Plan:
        return Plan(self.plan_kind, tuple((a, b) for a, b in self.plan_units))

    @property
    def parts_folder(self) -> Path:
        return self.folder / "parts"

    def part_path(self, name: str) -> Path:
        return self.parts_folder / f"{name}.png"

    def done_units(self) -> set[int]:
        """Units covered by parts whose files are here (a split block row: by all its pieces)."""
        spans = []
        for name in self.parts:
            span = parse_part_name(name)
            if span and self.part_path(name).is_file():
                spans.append(span)
        return covered_units(self.plan, spans, int(self.settings.get("width") or 0))

    def record_parts(self, spans: list[Span], node: str, seconds: float, started: float | None = None) -> None:
        """Record the files one part brought back (a still's band, or frames), then save once."""
        started = None if started is None else round(started, 3)
        session = max(0, len(self.sessions) - 1)
        for span in spans:
            self.parts[span.name] = PartRecord(node, round(seconds, 3), self.part_path(span.name).name, started,
                                               session)
        self.save()

    def begin_session(self) -> None:
        """A render of the job begins its render phase: part times count from now."""
        self.sessions.append({"started": round(time.time(), 3), "render_seconds": 0.0})

    def note(self, t: float, text: str, node: str | None = None) -> None:
        """Keep a warning of the running session for the report (saved with the next save)."""
        self.events.append({"t": round(t, 3), "session": max(0, len(self.sessions) - 1), "node": node,
                            "text": text})

    def end_session(self, render_seconds: float) -> None:
        if self.sessions:
            self.sessions[-1]["render_seconds"] = round(render_seconds, 3)

    def save(self) -> None:
        data = asdict(self)
        data["folder"] = str(self.folder)
        temporary = self.folder / f".{RECORD}.tmp"
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.folder / RECORD)


def new_job_id(scene: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", scene.stem)[:32].strip("_") or "scene"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{secrets.token_hex(3)}"


def create_job(renders: Path, scene: Path, **fields: Any) -> Job:
    job_id = new_job_id(scene)
    folder = renders / job_id
    (folder / "parts").mkdir(parents=True)
    job = Job(id=job_id, folder=folder, scene=str(scene), **fields)
    job.save()
    return job


def load_job(folder: Path) -> Job:
    try:
        data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobError(f"{folder}: no {RECORD} here; is it a povfarm job folder?") from None
    except (OSError, ValueError) as exc:
        raise JobError(f"{folder / RECORD}: unreadable job record: {exc}") from None
    data["folder"] = folder
    data["parts"] = {name: PartRecord(**record) for name, record in data.get("parts", {}).items()}
    return Job(**data)


def list_jobs(renders: Path) -> list[Job]:
    """Every job under renders/, oldest first."""
    if not renders.is_dir():
        return []
    jobs = [load_job(p.parent) for p in renders.glob(f"*/{RECORD}")]
    return sorted(jobs, key=lambda job: (job.created, job.id))


def latest_job(renders: Path, scene: Path | None = None, unfinished: bool = False) -> Job:
    """The most recent job, of one scene and/or unfinished if asked."""
    jobs = list_jobs(renders)
    if scene is not None:
        jobs = [job for job in jobs if Path(job.scene) == scene]
    if unfinished:  # a done job whose part was deleted since is unfinished again
        jobs = [job for job in jobs if job.status != "done" or len(job.done_units()) < len(job.plan_units)]
    if not jobs:
        what = "unfinished job" if unfinished else "job"
        of = f" of {scene}" if scene else ""
        raise JobError(f"no {what}{of} in {renders}; start one with: inv render --scene=...")
    return jobs[-1]


def earlier_costs(job: Job) -> tuple[Job, list[float]] | None:
    """The latest finished render of the same still that measured its cost, and
    that cost spread over this job's row blocks; None if there is none."""
    if job.plan_kind != ROWS:
        return None
    stem = job.id.split("-", 2)[2].rsplit("-", 1)[0]  # <date>-<time>-<stem>-<hex>
    candidates = []
    for record in job.folder.parent.glob(f"*-{stem}-*/{RECORD}"):
        try:
            earlier = load_job(record.parent)
        except JobError:
            continue  # a broken record elsewhere is no reason to fail this job
        if (earlier.id != job.id and earlier.scene == job.scene and earlier.status == "done"
                and earlier.plan_kind == ROWS and earlier.unit_costs
                and len(earlier.unit_costs) == len(earlier.plan_units)):
            candidates.append(earlier)
    if not candidates:
        return None
    earlier = max(candidates, key=lambda j: (j.created, j.id))
    return earlier, rescale_costs(earlier.plan, earlier.unit_costs, job.plan)


def find_job(renders: Path, job: str | None) -> Job:
    """A job by id or folder, or the latest one."""
    if job:
        folder = Path(job) if Path(job).is_dir() else renders / job
        return load_job(folder)
    return latest_job(renders)


def resume_command(job: Job) -> str:
    """The command that continues a job, as the user types it here."""
    command = f"inv render --scene={shlex.quote(os.path.relpath(job.scene))} --resume"
    if os.path.abspath(job.cluster) != os.path.abspath(DEFAULT_CLUSTER):
        command += f" --cluster={shlex.quote(os.path.relpath(job.cluster))}"
    if os.path.abspath(job.folder.parent) != os.path.abspath(DEFAULT_RENDERS):
        command += f" --renders={shlex.quote(os.path.relpath(job.folder.parent))}"
    return command


class JobInUse(JobError):
    """Another povfarm command is working on this job."""


@contextmanager
def hold_job(job: Job, command: str) -> Iterator[Job]:
    """Hold the job for one command: a second render, resume, collect or merge of it is refused.

    An advisory lock (flock) on a file in the job's folder: it ends with the
    process that holds it, however that process ends. Yields the record as it
    is once held (another command may have changed it just before).
    """
    handle = (job.folder / LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise JobInUse(f"job {job.id} is in use by {holder}; wait for it to end, or stop it first") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} ({command})\n")
        handle.flush()
        yield load_job(job.folder)
    finally:
        handle.close()
