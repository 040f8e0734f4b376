"""The engines a cluster can render with, behind one small interface.

An inventory names its engine: `ssh` (povfarm's own nodes, fabfile.render) or
`slurm` (a Slurm cluster's job arrays, fabfile.slurm). An engine renders a
prepared job and checks its cluster's health; a job's record, its stitching,
`inv collect` and `inv merge` are shared. Another engine (Kubernetes indexed
jobs, HTCondor) would add a module with these two calls and a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from fabfile import deps, health, slurm
from fabfile import render as ssh
from fabfile.inventory import Cluster, load_cluster
from fabfile.jobs import Job, hold_job
from fabfile.prepare import RenderRequest, prepare_job
from fabfile.progress import QuietReporter, Reporter
from fabfile.running import RenderSummary, Tuning

__all__ = ["RenderRequest", "RenderSummary", "Tuning", "render", "check_health"]


class Engine(NamedTuple):
    run_job: Callable[[Job, deps.SceneFiles, Cluster, Reporter, Tuning], RenderSummary]
    check_health: Callable[[Cluster], list[health.NodeHealth]]


ENGINES = {
    "ssh": Engine(ssh.run_job, health.check_cluster),
    "slurm": Engine(slurm.run_job, slurm.check_slurm),
}


def render(request: RenderRequest, reporter: Reporter | None = None, tuning: Tuning | None = None) -> RenderSummary:
    """Render a scene on the cluster; the one call behind `inv render`."""
    reporter = reporter or QuietReporter()
    cluster = load_cluster(request.cluster)
    job, files = prepare_job(request, cluster, reporter)
    with hold_job(job, "inv render") as job:
        return ENGINES[cluster.engine].run_job(job, files, cluster, reporter, tuning or Tuning())


def check_health(cluster: Cluster) -> list[health.NodeHealth]:
    """`inv health`: a record per node (for Slurm: the login node, then the partition's nodes)."""
    return ENGINES[cluster.engine].check_health(cluster)
