"""Health: is every node up and able to render, how fast, how loaded, which POV-Ray.

Nodes are probed in parallel with the inventory's connect timeout, so a
dead node costs seconds. A node that cannot be reached is a record with its
reason (refused, timed out, auth failed, host key unknown), not an error.
Each node renders a small test scene (PROBE_SCENE, POV-Ray's own include
files, one thread): that it can render is shown by doing it, and how fast by
POV-Ray's own trace time, start-up left out.
"""

from __future__ import annotations

import posixpath
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from fabfile.errors import PovfarmError
from fabfile.inventory import Cluster, Node
from fabfile.nodejob import povray_times
from fabfile.nodes import MIN_FREE_MB
from fabfile.transport import Session, open_session, remote_workdir, shell_join


@dataclass(frozen=True)
class NodeHealth:
    name: str
    address: str
    up: bool
    reason: str | None = None
    command_ms: float | None = None  # one command as povfarm runs it, start to end (through its agent)
    login_shell_ms: float | None = None  # one command through the login shell (`ssh node true`): the agent's saving
    povray: str | None = None
    probe_s: float | None = None  # POV-Ray's trace time of PROBE_SCENE with one thread: a core's speed
    cores: int | None = None
    load: tuple[float, float, float] | None = None
    mem_free_mb: int | None = None
    disk_free_mb: int | None = None
    workdir: str | None = None
    problems: tuple[str, ...] = ()  # up, but cannot render: what stops it

    @property
    def ready(self) -> bool:
        return self.up and not self.problems

    def as_json(self) -> dict:
        return {**asdict(self), "ready": self.ready}


# A still whose trace takes ~0.1 s of one core here, through POV-Ray's own include files.
PROBE_SCENE = (
    "#version 3.7;",
    '#include "colors.inc"',
    "global_settings { assumed_gamma 1.0 }",
    "camera { location <0, 1.5, -4> look_at <0, 0.3, 0> }",
    "light_source { <3, 5, -4> White }",
    "sphere { <0, 0.5, 0>, 1 pigment { Orange } finish { phong 0.6 reflection 0.2 } }",
    "plane { y, -0.5 pigment { checker White Gray40 } finish { reflection 0.1 } }",
)
PROBE_ARGS = ("+W320", "+H240", "+A0.3", "-D", "-P", "-F", "+WT1")
PROBE_LIMIT = 30  # seconds the test render may take on a node


def probe_script(node: Node, workdir: str) -> str:
    """One shell line that prints key=value facts about the node."""
    povray = shell_join([node.povray])
    folder = shell_join([workdir])
    # The test render, in a folder of its own that goes with it; its trace time (POV-Ray's own
    # line, read by povray_times), or its first error.
    render = (
        f"t=$(mktemp -d) && printf '%s\\n' {shell_join(PROBE_SCENE)} >\"$t/probe.pov\" && "
        f"(cd \"$t\" && timeout {PROBE_LIMIT} {povray} probe.pov {shell_join(PROBE_ARGS)} >/dev/null 2>log); "
        "echo render_rc=$?; "
        "grep -a -m1 'Trace Time:' \"$t/log\"; "
        "echo render_error=$(grep -av '^Possible' \"$t/log\" | grep -m1 -aE 'Error|error' | cut -c1-200); rm -rf \"$t\""
    )
    return (
        f"echo povray=$({povray} --version 2>&1 | grep -m1 '^POV-Ray' || echo missing); "
        "echo cores=$(nproc); "
        "echo load=$(cut -d' ' -f1-3 /proc/loadavg); "
        "echo mem=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo); "
        f"d={folder}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; "
        "echo disk=$(df -Pk \"$d\" | awk 'NR==2 {print int($4/1024)}'); "
        "test -w \"$d\" && echo writable=yes || echo writable=no; "
        f"if command -v {povray} >/dev/null; then {render}; fi"
    )


def parse_probe(text: str) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key.strip()] = value.strip()
    return facts


def check_node(node: Node) -> NodeHealth:
    """Probe one node; any failure becomes the record's reason."""
    try:
        session = open_session(node)
    except PovfarmError as exc:
        return NodeHealth(node.name, node.address, up=False, reason=_short(str(exc), node), workdir=node.workdir)
    try:
        return _probe(node, session)
    except PovfarmError as exc:
        return NodeHealth(node.name, node.address, up=False, reason=_short(str(exc), node), workdir=node.workdir)
    finally:
        session.close()


def _command_ms(run: Callable[..., object], node: Node) -> float:
    """The median of three runs of `true`, in milliseconds."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        run("true", timeout=node.connect_timeout)
        times.append((time.monotonic() - started) * 1000)
    return round(statistics.median(times), 1)


def _probe(node: Node, session: Session) -> NodeHealth:
    # Every command povfarm runs on a node pays the first; a slow .bashrc shows in the second,
    # which povfarm's agent pays once per connection (LocalSession: no login shell at all).
    command_ms = _command_ms(session.run, node)
    login_shell = getattr(session, "run_in_login_shell", None)
    login_shell_ms = _command_ms(login_shell, node) if login_shell is not None else None
    workdir = remote_workdir(node, session)
    result = session.run(probe_script(node, posixpath.normpath(workdir)),
                         timeout=node.connect_timeout * 2 + PROBE_LIMIT)
    facts = parse_probe(result.stdout)
    povray = facts.get("povray")
    load = tuple(float(x) for x in facts.get("load", "").split()[:3]) or None
    disk = _int(facts.get("disk"))
    problems = []
    if povray in (None, "missing"):
        problems.append(f"POV-Ray ({node.povray}) is not installed; run inv provision")
    elif facts.get("render_rc") != "0":
        why = facts.get("render_error") or f"exit status {facts.get('render_rc', '?')}"
        problems.append(f"POV-Ray fails to render a test scene ({why}); run inv provision")
    if facts.get("writable") != "yes":
        problems.append(f"workdir {workdir} cannot be written; fix 'workdir' or run inv provision")
    if disk is not None and disk < MIN_FREE_MB:
        problems.append(f"its disk is full ({disk} MB free for {workdir}); free space there")
    return NodeHealth(
        name=node.name,
        address=node.address,
        up=True,
        command_ms=command_ms,
        login_shell_ms=login_shell_ms,
        povray=None if povray in (None, "missing") else povray,
        probe_s=povray_times(result.stdout).get("trace"),
        cores=_int(facts.get("cores")),
        load=load if load and len(load) == 3 else None,
        mem_free_mb=_int(facts.get("mem")),
        disk_free_mb=disk,
        workdir=workdir,
        problems=tuple(problems),
    )


def check_cluster(cluster: Cluster) -> list[NodeHealth]:
    """Every node's health, in inventory order, probed in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(cluster.nodes)))) as pool:
        return list(pool.map(check_node, cluster.nodes))


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _short(message: str, node: Node) -> str:
    # The table already names the node; keep the reason itself.
    for prefix in (f"node {node.name} ({node.address}): ", f"node {node.name}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
