"""Collect: fetch the parts of a job that are still on its nodes.

After an interrupt or a lost connection, parts may have finished on a node
without being fetched. Each node's job folder tells which (a part whose rc
file says 0); those not yet here are fetched and recorded in the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fabfile import povopts
from fabfile.errors import PovfarmError
from fabfile.inventory import load_cluster
from fabfile.jobs import Job
from fabfile.nodejob import NodeJob, output_names
from fabfile.render import connect_nodes


@dataclass
class CollectResult:
    fetched: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.fetched.values())


def collect_job(job: Job, remove: bool = True) -> CollectResult:
    """Fetch finished parts from every node of the job; one node's failure is data."""
    cluster = load_cluster(job.cluster)
    names = set(job.nodes) or {node.name for node in cluster.nodes}
    nodes = [node for node in cluster.nodes if node.name in names]
    final_frame = povopts.Settings(**job.settings).final_frame
    result = CollectResult()
    ready, failed = connect_nodes(nodes, lambda node, session, workdir: 0)
    result.unreachable.update(failed)
    for item in ready:
        try:
            node_job = NodeJob(item.session, item.workdir, job.id, item.node.povray, ())
            count = 0
            for span in node_job.finished_parts():
                pieces = [piece for piece, _ in output_names(span, final_frame) if piece.name not in job.parts]
                if not pieces:
                    continue
                fetched = node_job.fetch(span, job.parts_folder, final_frame)
                job.record_parts([f.span for f in fetched], item.node.name, 0.0)
                count += len(fetched)
            result.fetched[item.node.name] = count
            if remove and len(job.done_units()) == len(job.plan.units):
                node_job.remove()
        except PovfarmError as exc:
            result.unreachable[item.node.name] = str(exc)
        finally:
            item.session.close()
    return result
