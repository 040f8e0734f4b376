"""inv render, collect, merge, jobs, clean and report."""

from __future__ import annotations

import webbrowser
from pathlib import Path

from invoke import Context, Exit, task
from rich.table import Table

from fabfile.clean import clean_jobs, jobs_table, parse_day
from fabfile.collect import collect_job, merge_output
from fabfile.engine import RenderRequest, RenderSummary, Tuning
from fabfile.engine import render as render_scene
from fabfile.jobs import find_job
from fabfile.progress import RichReporter
from fabfile.report import write_report
from fabfile.tasks.common import clean_errors, console, option, positive_number, setting, whole_number


@task(
    help={
        "scene": "the .pov or .ini file to render",
        "cluster": "inventory file (default: cluster.yaml)",
        "width": "image width in pixels",
        "height": "image height in pixels",
        "frames": "render an N-frame animation (as povray +KFI1 +KFFN)",
        "args": 'extra POV-Ray options for every part, e.g. "+A0.3 +AM2 +UA"',
        "output": "PNG for a still, folder for an animation's frames",
        "resume": "continue the latest unfinished job of this scene",
        "threads": "POV-Ray threads per part (+WT), the same for every part "
        "(default: a still uses every core of the smallest node, an animation one per frame)",
        "allow-outside": "also upload files the scene reads from outside its folder",
        "keep-remote": "keep the job folder on the nodes after fetching",
        "renders": "where job folders go (default: renders)",
        "fps": "an animation's frames a second in its MP4 and GIF (default: 24)",
        "exact": "a still using radiosity, jitter or crand: render it whole with one thread, "
        "identical to povray +WT1 (default: bands, seam-free)",
    },
    auto_shortflags=False,
)
@clean_errors
def render(
    c: Context,
    scene: str | None = None,
    cluster: str | None = None,
    width: int | None = None,
    height: int | None = None,
    frames: int | None = None,
    args: str | None = None,
    output: str | None = None,
    resume: bool = False,
    threads: int | None = None,
    allow_outside: bool = False,
    keep_remote: bool = False,
    renders: str | None = None,
    fps: float | None = None,
    exact: bool = False,
) -> None:
    """Render a scene across the cluster and stitch the result."""
    if not scene:
        raise Exit("povfarm: which scene? pass --scene=PATH (a .pov or .ini file)", code=2)
    request = RenderRequest(
        scene=Path(scene),
        cluster=Path(option(c, cluster, "cluster")),
        renders=Path(option(c, renders, "renders")),
        width=whole_number(width, "--width"),
        height=whole_number(height, "--height"),
        frames=whole_number(frames, "--frames"),
        args=args or "",
        output=Path(output) if output else None,
        resume=resume,
        threads=whole_number(option(c, threads, "render", "threads"), "--threads"),
        allow_outside=bool(allow_outside) or setting(c, bool, "render", "allow_outside"),
        keep_remote=bool(keep_remote) or setting(c, bool, "render", "keep_remote"),
        fps=positive_number(option(c, fps, "render", "fps"), "--fps"),
        exact=bool(exact) or setting(c, bool, "render", "exact"),
    )
    tuning = Tuning(
        overlap=setting(c, int, "render", "overlap"),
        guided_factor=setting(c, float, "render", "guided_factor"),
        max_failures=setting(c, int, "render", "max_failures"),
        hang_grace=setting(c, float, "render", "hang_grace"),
        hang_factor=setting(c, float, "render", "hang_factor"),
        latency_factor=setting(c, float, "render", "latency_factor"),
        cuts=setting(c, bool, "render", "cuts"),
    )
    summary = render_scene(request, RichReporter(), tuning)
    print_summary(summary)


@task(help={"job": "job id or folder (default: the latest)", "renders": "where job folders are"},
      auto_shortflags=False)
@clean_errors
def collect(c: Context, job: str | None = None, renders: str | None = None) -> None:
    """Fetch the parts a job still has on its nodes."""
    record = find_job(Path(option(c, renders, "renders")), job)
    result = collect_job(record)
    for node, count in sorted(result.fetched.items()):
        console.print(f"{node}: fetched {count} part(s)", highlight=False)
    for node, reason in sorted(result.unreachable.items()):
        console.print(f"{node}: not collected: {reason}", style="yellow", highlight=False)
    console.print(f"job {record.id}: {result.total} part(s) fetched", highlight=False)
    if result.output is not None:
        console.print(f"job {record.id}: complete, wrote {result.output}", highlight=False)
    else:
        what = "frame(s)" if record.plan.kind == "frames" else "row block(s)"
        console.print(f"job {record.id}: {result.missing} {what} still missing; render them with: {result.resume}",
                      highlight=False)
    if result.unreachable:
        raise Exit(code=1)


@task(help={"job": "job id or folder (default: the latest)", "renders": "where job folders are"},
      auto_shortflags=False)
@clean_errors
def merge(c: Context, job: str | None = None, renders: str | None = None) -> None:
    """Stitch a job's output again from its parts."""
    record = find_job(Path(option(c, renders, "renders")), job)
    output = merge_output(record)
    console.print(f"job {record.id}: wrote {output}", highlight=False)


def print_summary(summary: RenderSummary) -> None:
    table = Table(title=f"job {summary.job.id}")
    for column in ("node", "parts", summary.unit, "share", "busy s", "idle s"):
        table.add_column(column, justify="left" if column == "node" else "right")
    shown = set()
    for node in summary.nodes:
        shown.add(node.node)
        units = f"{node.units:.0f}" if node.units == int(node.units) else f"{node.units:.1f}"
        table.add_row(node.node, str(node.parts), units, f"{node.share:.0%}", f"{node.busy:.1f}", f"{node.idle:.1f}")
    for name in summary.left_out:
        if name not in shown:
            table.add_row(name, "-", "-", "-", "-", "-", style="yellow")
    console.print(table)
    for name, reason in summary.left_out.items():
        console.print(f"left out {name}: {reason}", style="yellow", highlight=False)
    if summary.job.guarantee:
        console.print(f"the image is {summary.job.guarantee}", highlight=False)
    console.print(f"wrote {summary.output} in {summary.wall_seconds:.1f}s; "
                  f"the report: {summary.job.folder / 'report.html'}", highlight=False)


@task(help={"renders": "where job folders are"}, auto_shortflags=False)
@clean_errors
def jobs(c: Context, renders: str | None = None) -> None:
    """List the jobs in renders/: id, scene, status, size, nodes, wall time, output."""
    lines = jobs_table(Path(option(c, renders, "renders")))
    table = Table(title="jobs")
    for column in ("id", "scene", "status", "size", "nodes", "wall", "output"):
        table.add_column(column, overflow="fold")
    for line in lines:
        style = None if line.status == "done" else "yellow"
        table.add_row(line.id, line.scene, line.status, line.size, line.nodes, line.wall, line.output, style=style)
    console.print(table)


@task(
    help={
        "job": "the id (or folder) of one job to remove",
        "done-before": "remove every done job created before this day (YYYY-MM-DD)",
        "renders": "where job folders are",
    },
    auto_shortflags=False,
)
@clean_errors
def clean(c: Context, job: str | None = None, done_before: str | None = None, renders: str | None = None) -> None:
    """Remove jobs' folders, here and on their nodes."""
    result = clean_jobs(Path(option(c, renders, "renders")), job, parse_day(done_before) if done_before else None)
    for removed in result.removed:
        console.print(f"removed job {removed}", highlight=False)
    for where, reason in sorted(result.kept_on.items()):
        console.print(f"{where}: left on the node: {reason}", style="yellow", highlight=False)
    if not result.removed:
        console.print("no job to remove", highlight=False)
    if result.kept_on:
        raise Exit(code=1)


@task(
    help={"job": "job id or folder (default: the latest)", "renders": "where job folders are",
          "open": "open the page in a web browser"},
    auto_shortflags=False,
)
@clean_errors
def report(c: Context, job: str | None = None, renders: str | None = None, open: bool = False) -> None:  # noqa: A002
    """Write a job's report page again (renders/<job>/report.html): image, map, timeline, figures."""
    record = find_job(Path(option(c, renders, "renders")), job)
    path = write_report(record)
    console.print(f"job {record.id}: wrote {path}", highlight=False)
    if open:
        webbrowser.open(path.resolve().as_uri())
