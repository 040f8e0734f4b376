"""Provision: make every node ready to render, idempotently.

Per node: install POV-Ray and the inventory's extra packages with apt-get
(update only when something is missing), create the workdir, render a tiny
scene there, and report POV-Ray's version. Commands that need root run
through sudo when the SSH user is not root; a sudo password is asked for
only when sudo says it needs one. One node's failure is its record, not a
crash; nodes are provisioned in parallel.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fabfile.errors import PovfarmError
from fabfile.inventory import Cluster, Node
from fabfile.transport import Session, open_session, remote_workdir, shell_join

BASE_PACKAGES = ("povray", "povray-includes")
APT_LOCK_WAIT = "DPkg::Lock::Timeout=600"
# apt-get update does not wait for its lists lock: nodes that share a machine
# (or one povfarm run racing another) take turns through flock instead.
APT_TURN = ["flock", "-w", "600", "/var/lock/povfarm-apt.lock"]
SELFTEST_SCENE = """\
#version 3.7;
global_settings { assumed_gamma 1.0 }
camera { location <0, 0, -3> look_at 0 }
light_source { <2, 4, -3> color rgb 1 }
sphere { 0, 1 pigment { color rgb <1, 0.5, 0.2> } }
"""


@dataclass
class NodeProvision:
    name: str
    ok: bool = False
    actions: list[str] = field(default_factory=list)
    povray: str | None = None
    reason: str | None = None
    needs_password: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class SudoPasswordNeeded(PovfarmError):
    """sudo on the node wants a password and none was given."""


def packages_for(node: Node) -> list[str]:
    return list(dict.fromkeys([*BASE_PACKAGES, *node.packages]))


def install_commands(missing: Sequence[str]) -> list[list[str]]:
    """The apt-get calls that install `missing` (nothing when nothing is missing)."""
    if not missing:
        return []
    return [
        [*APT_TURN, "apt-get", "-o", APT_LOCK_WAIT, "update", "-q"],
        [*APT_TURN, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", APT_LOCK_WAIT, "install", "-y", "-q",
         "--no-install-recommends", *missing],
    ]


StepHandler = Callable[[str, str], None]  # (node, what it starts doing)


class Provisioner:
    """Provisioning of one node over one session."""

    def __init__(
        self, node: Node, session: Session, dry_run: bool, password: str | None, on_step: StepHandler | None = None
    ) -> None:
        self.node = node
        self.session = session
        self.dry_run = dry_run
        self.password = password
        self.on_step = on_step or (lambda node, text: None)
        self.result = NodeProvision(node.name)
        self.is_root = session.run("id -u").stdout.strip() == "0"

    def as_root(self, argv: list[str], what: str, doing: str | None = None) -> None:
        """Run argv as root; `what` is said of it once done, `doing` (if it may take a while) as it starts."""
        command = shell_join(argv)
        shown = command if self.is_root else f"sudo {command}"
        if self.dry_run:
            self.result.actions.append(f"would run: {shown}")
            return
        if doing:
            self.on_step(self.node.name, doing)
        if self.is_root:
            outcome = self.session.run(command)
        else:
            if self.password is None and not self.session.run("sudo -n true").ok:
                raise SudoPasswordNeeded("sudo needs a password")
            outcome = self.session.sudo(command, self.password)
        if not outcome.ok:
            detail = (outcome.stderr or outcome.stdout).strip().splitlines()
            raise PovfarmError(f"{what} failed: {detail[-1] if detail else f'exit {outcome.exit_code}'}")
        self.result.actions.append(what)

    def missing_packages(self) -> list[str]:
        wanted = packages_for(self.node)
        query = shell_join(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *wanted])
        installed = {
            line.split()[0]
            for line in self.session.run(query).stdout.splitlines()
            if line.endswith("install ok installed")
        }
        return [p for p in wanted if p not in installed]

    def ensure_packages(self) -> None:
        missing = self.missing_packages()
        for argv in install_commands(missing):
            if "update" in argv:
                self.as_root(argv, "apt-get update", "apt-get update: reading the package lists")
            else:
                names = " ".join(missing)
                self.as_root(argv, f"installed {names}", f"apt-get install {names}: this can take minutes")

    def ensure_workdir(self) -> str:
        workdir = remote_workdir(self.node, self.session)
        folder = shell_join([workdir])
        if self.session.run(f"test -d {folder} && test -w {folder}").ok:
            return workdir
        if self.dry_run:
            self.result.actions.append(f"would run: mkdir -p {folder}")
            return workdir
        if self.session.run(f"mkdir -p {folder}").ok:
            self.result.actions.append(f"created {workdir}")
            return workdir
        user = self.session.run("id -un").stdout.strip()
        self.as_root(["mkdir", "-p", workdir], f"created {workdir}")
        self.as_root(["chown", user, workdir], f"gave {workdir} to {user}")
        return workdir

    def selftest(self, workdir: str) -> None:
        """Render a tiny scene in the workdir: POV-Ray runs and can write there."""
        folder = posixpath.join(workdir, f".povfarm-selftest-{self.node.name}")
        self.session.run(shell_join(["mkdir", "-p", folder]))
        with tempfile.TemporaryDirectory() as local:
            scene = Path(local) / "selftest.pov"
            scene.write_text(SELFTEST_SCENE)
            self.session.put(scene, posixpath.join(folder, "selftest.pov"))
        self.on_step(self.node.name, f"test-rendering with {self.node.povray} in {workdir}")
        render = shell_join([self.node.povray, "+Iselftest.pov", "+W32", "+H24", "-D", "-P", "+Oselftest.png"])
        outcome = self.session.run(f"cd {shell_join([folder])} && {render} >/dev/null 2>&1 && test -s selftest.png")
        self.session.run(shell_join(["rm", "-rf", "--", folder]))
        if not outcome.ok:
            raise PovfarmError(f"POV-Ray ({self.node.povray}) could not render a test scene in {workdir}")

    def version(self) -> str | None:
        text = self.session.run(f"{shell_join([self.node.povray])} --version 2>&1 | grep -m1 '^POV-Ray'").stdout
        return text.strip() or None

    def run(self) -> NodeProvision:
        self.ensure_packages()
        workdir = self.ensure_workdir()
        if not self.dry_run:
            self.selftest(workdir)
        self.result.povray = self.version()
        self.result.ok = True
        return self.result


def provision_node(
    node: Node, dry_run: bool = False, password: str | None = None, on_step: StepHandler | None = None
) -> NodeProvision:
    """Provision one node; every failure lands in the record."""
    try:
        session = open_session(node)
    except PovfarmError as exc:
        return NodeProvision(node.name, reason=str(exc))
    provisioner: Provisioner | None = None
    try:
        provisioner = Provisioner(node, session, dry_run, password, on_step)
        return provisioner.run()
    except SudoPasswordNeeded as exc:
        actions = provisioner.result.actions if provisioner else []
        return NodeProvision(node.name, actions=actions, reason=str(exc), needs_password=True)
    except PovfarmError as exc:
        actions = provisioner.result.actions if provisioner else []
        return NodeProvision(node.name, actions=actions, reason=f"node {node.name}: {exc}")
    finally:
        session.close()


def provision_cluster(
    cluster: Cluster, dry_run: bool = False, password: str | None = None, only: Sequence[str] | None = None,
    on_step: StepHandler | None = None,
) -> list[NodeProvision]:
    """Provision every node (or those named in `only`) in parallel; `on_step` hears of each
    step that changes something as it starts (an apt-get run can take minutes)."""
    nodes = [n for n in cluster.nodes if only is None or n.name in only]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        return list(pool.map(lambda n: provision_node(n, dry_run, password, on_step), nodes))
