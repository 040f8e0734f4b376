"""Real OpenSSH servers on loopback, one per test node.

Each node has its own address (127.0.0.x), host key, sshd_config, pid file,
log and work folder, and is pinned to one core with taskset so that what it
starts (POV-Ray) runs there too. Nodes are stopped by their own pids.
"""

from __future__ import annotations

import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Run in the child before exec: orphans below it stay its descendants.

    A session's processes outlive a dropped connection (that is how parts
    finish after the submitter dies); as a subreaper, the node's sshd keeps
    them in its tree, so a test can see them and a power cut kills them.
    The attribute survives execve.
    """
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc (children before grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def povrays_in(folder: Path, node: str | None = None) -> list[int]:
    """Every POV-Ray working under `folder` (in `node`'s job folders, if given), wherever it
    hangs in the process tree (an orphan whose parent shell died is no longer below its
    node's sshd). One that ends while it is looked at is not counted."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_name(int(entry.name)) == "povray":
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd.is_relative_to(folder) and (node is None or node in cwd.relative_to(folder).parts):
                found.append(int(entry.name))
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def free_port(addresses: list[str], start: int) -> int:
    """A port free on every address, searched upwards from start."""
    for port in range(start, start + 2000):
        try:
            for address in addresses:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port on loopback")


@dataclass
class SshNode:
    name: str
    address: str
    port: int
    folder: Path
    core: int
    shell_delay: float = 0.0  # seconds of CPU each command's shell spends starting, as a slow .bashrc does
    environment: dict[str, str] = field(default_factory=dict)  # set in every session (sshd's SetEnv)
    process: subprocess.Popen | None = None
    host_key_line: str = ""

    @property
    def pid_file(self) -> Path:
        return self.folder / "sshd.pid"

    @property
    def workdir(self) -> Path:
        return self.folder / "work"

    @property
    def login_shells(self) -> Path:
        """A line for each login shell a slow-shell node started (each paid shell_delay)."""
        return self.folder / "login_shells"

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def start(self, authorized_keys: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(exist_ok=True)
        key = self.folder / "host_ed25519"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public = (self.folder / "host_ed25519.pub").read_text().split()
        self.host_key_line = f"[{self.address}]:{self.port} {public[0]} {public[1]}"
        environment = "SetEnv SHLVL=1" + "".join(f" {key}={value}" for key, value in self.environment.items())
        if self.shell_delay > 0:
            # A login shell that spends CPU starting (a .bashrc running `pyenv init`): sshd's
            # command shell reads BASH_ENV; the commands povfarm nests inside it do not pay again.
            slow = self.folder / "slow_shell.sh"
            slow.write_text(
                'if [ -z "$POVFARM_SLOW_SHELL" ]; then export POVFARM_SLOW_SHELL=1; '
                f"echo $$ >>{self.login_shells}; "
                f"end=$(( ${{EPOCHREALTIME/[.,]/}} + {int(self.shell_delay * 1e6)} )); "
                "while (( ${EPOCHREALTIME/[.,]/} < end )); do :; done; fi\n"
            )
            environment += f" BASH_ENV={slow}"
        config = self.folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {key}",
                    f"PidFile {self.pid_file}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "MaxSessions 64",
                    "MaxStartups 64",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    # bash sources ~/.bashrc for commands run by sshd unless SHLVL says it is
                    # nested; this machine's root .bashrc runs pyenv, whose lock a killed
                    # node can leave behind, stalling every later command for a minute.
                    environment,
                    "",
                ]
            )
        )
        self.pid_file.unlink(missing_ok=True)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        self.process = subprocess.Popen(
            ["taskset", "-c", str(self.core), SSHD, "-D", "-f", str(config), "-E", str(self.folder / "sshd.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=become_subreaper,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd for {self.name} exited: {(self.folder / 'sshd.log').read_text()}")
            if self.pid_file.exists() and self._accepts():
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd for {self.name} did not start")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def processes(self) -> list[int]:
        """The sshd master's descendants: sessions, shells, POV-Ray."""
        return descendants(self.pid) if self.pid_file.exists() else []

    def povray_pids(self) -> list[int]:
        return [pid for pid in self.processes() if process_name(pid) == "povray"]

    def power_cut(self) -> None:
        """Kill the SSH server and everything it started, at once."""
        signal_all(self.freeze(), signal.SIGKILL)
        self._reap()

    def freeze(self) -> list[int]:
        """Stop the node's processes (SIGSTOP); it is alive but makes no progress.

        Stopped processes cannot fork, so listing again until nothing new shows
        up catches every process, even one started while the first list was made.
        """
        pids = [self.pid]
        signal_all(pids, signal.SIGSTOP)
        while True:
            new = [pid for pid in descendants(self.pid) if pid not in pids]
            if not new:
                return pids
            signal_all(new, signal.SIGSTOP)
            pids += new

    def thaw(self, pids: list[int]) -> None:
        signal_all(pids, signal.SIGCONT)

    def stop(self) -> None:
        if self.pid_file.exists():
            pids = self.freeze()
            signal_all(pids, signal.SIGKILL)
            signal_all(pids, signal.SIGCONT)
        self._reap()

    def _reap(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)


@dataclass
class SshCluster:
    """Several sshd nodes and the client side that reaches them."""

    folder: Path
    count: int
    nodes: list[SshNode] = field(default_factory=list)
    shell_delay: float = 0.0  # see SshNode
    environment: dict[str, str] = field(default_factory=dict)  # see SshNode

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client_key = self.folder / "client_ed25519"
        if not self.client_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)], check=True
            )
        self.authorized_keys = self.folder / "authorized_keys"
        shutil.copyfile(f"{self.client_key}.pub", self.authorized_keys)
        self.known_hosts = self.folder / "known_hosts"
        addresses = [f"127.0.0.{10 + i}" for i in range(self.count)]
        port = free_port(addresses, 20000 + os.getpid() % 20000)
        cores = os.cpu_count() or 1
        self.nodes = [
            SshNode(f"node{i + 1}", address, port, self.folder / f"node{i + 1}", core=i % cores,
                    shell_delay=self.shell_delay, environment=self.environment)
            for i, address in enumerate(addresses)
        ]

    def start(self) -> SshCluster:
        for node in self.nodes:
            node.start(self.authorized_keys)
        self.known_hosts.write_text("".join(node.host_key_line + "\n" for node in self.nodes))
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def inventory(self, nodes: list[SshNode] | None = None, **overrides: object) -> str:
        """cluster.yaml text for these nodes; overrides go into defaults."""
        defaults = {
            "user": getpass.getuser(),
            "key": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "threads": 1,
            "connect_timeout": 5,
            "workdir": str(self.folder / "shared-work"),  # one folder for all: nodes must not collide
            **overrides,
        }
        lines = ["defaults:"]
        lines += [f"  {key}: {_yaml(value)}" for key, value in defaults.items()]
        lines.append("nodes:")
        for node in nodes or self.nodes:
            lines += [
                f"  - name: {node.name}",
                f"    host: {node.address}",
                f"    port: {node.port}",
            ]
        return "\n".join(lines) + "\n"

    def all_povray_pids(self) -> list[int]:
        return [pid for node in self.nodes for pid in node.povray_pids()]


def _yaml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
