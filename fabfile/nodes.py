"""A job's nodes: connect and check them, upload the scene, and stop them at the end.

Every action runs on all nodes at once, one thread each, and a node's
failure comes back as its reason, never as an exception: one node that does
not answer must not hold up the others (Fabric's `group.py` works so too).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fabfile.errors import NodeError, PovfarmError
from fabfile.inventory import Node
from fabfile.nodejob import NodeJob
from fabfile.transport import Session, open_session, remote_workdir, shell_join


@dataclass
class NodeReady:
    node: Node
    session: Session
    workdir: str
    cores: int


NodeCheck = Callable[[Node, Session, str], int]


def connect_nodes(nodes: Sequence[Node], check: NodeCheck) -> tuple[list[NodeReady], dict[str, str]]:
    """Open every node in parallel and check it; the ones that fail come back with their reason."""
    ready: list[NodeReady] = []
    failed: dict[str, str] = {}

    def attempt(node: Node) -> NodeReady:
        session = open_session(node)
        try:
            workdir = remote_workdir(node, session)
            return NodeReady(node, session, workdir, check(node, session, workdir))
        except BaseException:
            session.close()
            raise

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        futures = {node.name: pool.submit(attempt, node) for node in nodes}
        for node in nodes:
            try:
                ready.append(futures[node.name].result())
            except PovfarmError as exc:
                failed[node.name] = str(exc)
            except Exception as exc:  # noqa: BLE001 - one node's surprise is data, not a crash
                failed[node.name] = f"node {node.name}: {type(exc).__name__}: {exc}"
    return ready, failed


# Below this, a node's disk is taken for full: a band's PNG and state file alone can take more.
MIN_FREE_MB = 16


def render_check(node: Node, session: Session, workdir: str) -> int:
    """The pre-flight of a render node: POV-Ray present, workdir writable; returns its cores."""
    folder = shell_join([workdir])
    script = (
        f"command -v {shell_join([node.povray])} >/dev/null || {{ echo nopovray; exit 3; }}; "
        f"mkdir -p {folder} && test -w {folder} || {{ echo noworkdir; exit 4; }}; "
        f"echo free=$(df -Pk {folder} | awk 'NR==2 {{print int($4/1024)}}'); nproc"
    )
    result = session.run(script, timeout=max(10.0, node.connect_timeout * 2))
    if "nopovray" in result.stdout:
        raise NodeError(f"node {node.name}: POV-Ray ({node.povray}) is not installed; run inv provision")
    if "noworkdir" in result.stdout or not result.ok:
        raise NodeError(f"node {node.name}: workdir {workdir} cannot be written; fix 'workdir' or run inv provision")
    free = re.search(r"^free=(\d+)$", result.stdout, re.M)
    if free and int(free.group(1)) < MIN_FREE_MB:
        raise NodeError(f"node {node.name}: its disk is full ({free.group(1)} MB free for {workdir}); free space there")
    try:
        return int(result.stdout.split()[-1])
    except (ValueError, IndexError):
        return 1


@dataclass
class JobNodes:
    """The nodes a job renders on, its folder uploaded to each."""

    node_jobs: dict[str, NodeJob] = field(default_factory=dict)
    cores: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    connect_seconds: float = 0.0


def open_job_nodes(
    nodes: Sequence[Node], job_id: str, names: Sequence[str], depth: int, prepare: Callable[[NodeJob], None]
) -> JobNodes:
    """Connect, check and upload to every node; those that fail are left out, with their reason."""
    started = time.monotonic()
    ready, failures = connect_nodes(nodes, render_check)
    result = JobNodes(left_out=dict(failures), connect_seconds=time.monotonic() - started)
    if not ready:
        raise NodeError("no node is usable: " + "; ".join(failures.values()))

    def upload(item: NodeReady) -> NodeJob:
        node_job = NodeJob(item.session, item.workdir, job_id, item.node.povray, names, depth)
        prepare(node_job)
        return node_job

    with ThreadPoolExecutor(max_workers=len(ready)) as pool:
        futures = [(item, pool.submit(upload, item)) for item in ready]
        for item, future in futures:
            try:
                result.node_jobs[item.node.name] = future.result()
                result.cores[item.node.name] = item.node.threads or item.cores
            except PovfarmError as exc:
                result.left_out[item.node.name] = str(exc)
                item.session.close()
    if not result.node_jobs:
        raise NodeError("no node is usable: " + "; ".join(result.left_out.values()))
    return result


def stop_nodes(
    node_jobs: Iterable[NodeJob], timeout: float, remove: bool = False, skip: Collection[str] = ()
) -> list[str]:
    """Stop every POV-Ray of the job on each node (and remove its folder), then close
    it; a node in `skip` (hung, left out) is only closed. Waits `timeout` at most:
    a node that does not answer must not hold up the end of a job. Returns what
    went wrong, a line per node."""
    problems: list[str] = []

    def finish(node_job: NodeJob) -> None:
        try:
            if node_job.name not in skip:
                node_job.stop_all(timeout=timeout, remove=remove)
        except PovfarmError as exc:
            problems.append(f"could not clean up: {exc}")
        except Exception:  # noqa: BLE001 - a dead node has nothing left to stop
            pass
        finally:
            node_job.session.close()

    threads = [threading.Thread(target=finish, args=(nj,), daemon=True) for nj in node_jobs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return problems
