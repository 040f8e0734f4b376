"""inv jobs and inv clean: the jobs under renders/, and removing the ones no longer wanted.

A job is removed from this machine (its folder under renders/) and from every
node it rendered on (its folder in the node's workdir). A node that cannot be
reached keeps its folder, and is named.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from fabfile.errors import OptionsError, PovfarmError
from fabfile.inventory import load_cluster
from fabfile.jobs import Job, find_job, hold_job, list_jobs
from fabfile.nodejob import NodeJob
from fabfile.nodes import connect_nodes
from fabfile.plan import FRAMES


@dataclass(frozen=True)
class JobLine:
    """One job, as `inv jobs` lists it."""

    id: str
    scene: str
    status: str
    size: str
    nodes: str
    wall: str
    output: str


def describe(job: Job) -> JobLine:
    settings = job.settings
    size = f"{settings.get('width')}x{settings.get('height')}"
    if job.plan_kind == FRAMES:
        size += f", {len(job.plan_units)} frames"
    wall = job.timings.get("wall")
    return JobLine(
        job.id, Path(job.scene).name, job.status, size, ", ".join(sorted(job.nodes)) or "-",
        "-" if wall is None else f"{wall:.1f}s", job.output,
    )


def jobs_table(renders: Path) -> list[JobLine]:
    return [describe(job) for job in list_jobs(renders)]


@dataclass
class CleanResult:
    removed: list[str] = field(default_factory=list)
    kept_on: dict[str, str] = field(default_factory=dict)  # "job/node": why its folder stays there


def parse_day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise OptionsError(f"--done-before {text!r}: expected a date as YYYY-MM-DD") from None


def clean_jobs(renders: Path, job_id: str | None = None, done_before: date | None = None) -> CleanResult:
    """Remove one job (by id), or every done job created before a day, here and on its nodes."""
    if (job_id is None) == (done_before is None):
        raise OptionsError("which jobs? give --job ID, or --done-before YYYY-MM-DD (done jobs only)")
    if job_id is not None:
        chosen = [find_job(renders, job_id)]
    else:
        limit = time.mktime(done_before.timetuple())
        chosen = [job for job in list_jobs(renders) if job.status == "done" and job.created < limit]
    result = CleanResult()
    for job in chosen:
        with hold_job(job, "inv clean") as held:
            _remove_on_nodes(held, result)
            shutil.rmtree(held.folder)
        result.removed.append(job.id)
    return result


def _remove_on_nodes(job: Job, result: CleanResult) -> None:
    if not job.nodes:
        return
    try:
        cluster = load_cluster(job.cluster)
    except PovfarmError as exc:
        for node in job.nodes:
            result.kept_on[f"{job.id}/{node}"] = str(exc)
        return
    if cluster.engine == "slurm":
        nodes = [cluster.login]  # the job's shared folder
    else:
        nodes = [node for node in cluster.nodes if node.name in job.nodes]
        for name in set(job.nodes) - {node.name for node in nodes}:
            result.kept_on[f"{job.id}/{name}"] = f"node {name} is no longer in {job.cluster}"
    ready, failed = connect_nodes(nodes, lambda node, session, workdir: 0)
    for name, reason in failed.items():
        result.kept_on[f"{job.id}/{name}"] = reason
    for item in ready:
        try:
            NodeJob(item.session, item.workdir, job.id, item.node.povray, ()).remove()
        except PovfarmError as exc:
            result.kept_on[f"{job.id}/{item.node.name}"] = str(exc)
        finally:
            item.session.close()


