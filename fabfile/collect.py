"""Collect and merge: fetch the parts of a job that are still on its nodes, stitch them.

After an interrupt or a lost connection, parts may have finished on a node
without being fetched. Each node's job folder tells which (a part whose rc
file says 0); those not yet here are fetched and recorded in the job.
`merge_job` writes a job's output from the parts in its folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fabfile import merge, povopts
from fabfile.errors import JobError, PovfarmError
from fabfile.inventory import load_cluster
from fabfile.jobs import Job, hold_job, resume_command
from fabfile.nodejob import NodeJob, output_names
from fabfile.nodes import connect_nodes
from fabfile.plan import FRAMES, parse_part_name
from fabfile.report import write_report
from fabfile.video import DEFAULT_FPS, make_videos


@dataclass
class CollectResult:
    fetched: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    missing: int = 0  # units the job still lacks once collected
    output: Path | None = None  # written when nothing is missing any more
    resume: str = ""  # the command that renders what is missing

    @property
    def total(self) -> int:
        return sum(self.fetched.values())


def collect_job(job: Job, remove: bool = True) -> CollectResult:
    """Fetch finished parts from every node of the job; one node's failure is data."""
    cluster = load_cluster(job.cluster)
    names = set(job.nodes) or {node.name for node in cluster.nodes}
    # A Slurm job's parts wait in the shared folder, reached through the login node.
    nodes = [cluster.login] if cluster.engine == "slurm" else [n for n in cluster.nodes if n.name in names]
    final_frame = povopts.Settings(**job.settings).final_frame
    result = CollectResult()
    with hold_job(job, "inv collect") as job:
        _collect(job, nodes, final_frame, remove, result)
        result.missing = len(job.plan.units) - len(job.done_units())
        result.resume = resume_command(job)
        if not result.missing:
            result.output = _merge_done(job)
    return result


def _collect(job: Job, nodes: list, final_frame: int, remove: bool, result: CollectResult) -> None:
    ready, failed = connect_nodes(nodes, lambda node, session, workdir: 0)
    result.unreachable.update(failed)
    for item in ready:
        try:
            node_job = NodeJob(item.session, item.workdir, job.id, item.node.povray, ())
            result.fetched[item.node.name] = fetch_finished(job, node_job, item.node.name, final_frame)
            if remove and len(job.done_units()) == len(job.plan.units):
                node_job.remove()
        except PovfarmError as exc:
            result.unreachable[item.node.name] = str(exc)
        finally:
            item.session.close()


def fetch_finished(job: Job, node_job: NodeJob, node: str, final_frame: int) -> int:
    """Fetch the parts that finished in a node's job folder and are not here yet; how many files."""
    count = 0
    for span in node_job.finished_parts():
        pieces = [piece for piece, _ in output_names(span, final_frame) if piece.name not in job.parts]
        if not pieces:
            continue
        fetched = node_job.fetch(span, job.parts_folder, final_frame)
        job.record_parts([f.span for f in fetched], node, 0.0)
        count += len(fetched)
    return count


def merge_output(job: Job) -> Path:
    """`inv merge`: write the job's output again from its parts, and mark it done."""
    with hold_job(job, "inv merge") as job:
        return _merge_done(job)


def _merge_done(job: Job) -> Path:
    output = merge_job(job)
    if job.status != "done":
        job.status = "done"
        job.save()
    write_report(job)
    return output


DAMAGED = "damaged"  # beside the parts: files that failed their check, kept for a look


def set_aside_damaged(job: Job) -> list[str]:
    """Move every part file that is not an intact PNG out of the job; their names."""
    damaged = []
    for name in list(job.parts):
        path = job.part_path(name)
        if not path.is_file():
            continue
        try:
            merge.check_png(path)
        except merge.DamagedPart:
            (job.parts_folder / DAMAGED).mkdir(exist_ok=True)
            os.replace(path, job.parts_folder / DAMAGED / path.name)
            del job.parts[name]
            damaged.append(path.name)
    if damaged:
        job.save()
    return damaged


def merge_job(job: Job) -> Path:
    """Write the job's output from the parts in its folder."""
    settings = povopts.Settings(**job.settings)
    output = Path(job.output)
    spans = [(parse_part_name(name), job.part_path(name)) for name in job.parts]
    damaged = set_aside_damaged(job)
    spans = [(span, path) for span, path in spans if span is None or path.name not in damaged]
    present = [(span, path) for span, path in spans if span is not None and path.is_file()]
    missing = set(range(len(job.plan.units))) - job.done_units()
    if missing:
        if job.status == "done":
            job.status = "incomplete"  # --resume renders what is missing
            job.save()
        labels = ", ".join(job.plan.span(u, u).label() for u in sorted(missing)[:3])
        said = f"{damaged[0]} is damaged (moved to {DAMAGED}/), so " if damaged else ""
        raise JobError(
            f"job {job.id}: {said}{len(missing)} part(s) are missing ({labels}...); "
            f"fetch them with inv collect, or render them with: {resume_command(job)}"
        )
    if job.plan_kind == FRAMES:
        stem = Path(job.scene).stem
        merge.gather_frames([(s.start, p) for s, p in present], output, stem, settings.final_frame)
        first = min(span.start for span, _ in present)
        fps = float(job.options.get("fps") or DEFAULT_FPS)
        make_videos(output, stem, first, len(str(abs(settings.final_frame))), fps)
    else:
        paths = dict(present)
        chosen = [(span, paths[span]) for span in merge.covering(paths, settings.width)]
        merge.stitch_bands(chosen, settings.width, settings.height, output)
    return output
