"""A real single-machine Slurm for the tests: munged, slurmctld and slurmd from Debian's
packages, started in the foreground without systemd, with their own key, config, state,
spool and logs in a temporary folder, on free loopback ports, and stopped by their pids.

The login node is a real sshd on loopback whose sessions get SLURM_CONF (sshd's SetEnv),
so sbatch, squeue and scancel there reach this Slurm and no other.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.sshnodes import SshCluster, free_port, signal_all

NODE = "slurmnode1"
PARTITION = "render"
SHORT = "short"


@dataclass
class SlurmCluster:
    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conf = self.folder / "slurm.conf"
        self.socket = self.folder / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.login = SshCluster(self.folder / "login", 1, environment={"SLURM_CONF": str(self.conf)})
        self.workdir = self.folder / "shared"  # the login's and the compute node's shared folder

    def start(self) -> SlurmCluster:
        try:
            self._start_munge()
            self._write_conf()
            self._daemon("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
            self._wait_for(lambda: self.run("sinfo", "-h").returncode == 0, "slurmctld to answer")
            self._daemon("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", NODE])
            self._wait_for(lambda: "idle" in self.run("sinfo", "-h", "-N", "-o", "%T").stdout, "slurmd to be idle")
            self.login.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._daemon("munged", [
            "munged", "-F", "--force", f"--key-file={key}", f"--socket={self.socket}",
            f"--pid-file={self.folder / 'munged.pid'}", f"--seed-file={self.folder / 'munged.seed'}",
            f"--log-file={self.folder / 'munged.log'}",
        ])
        self._wait_for(self.socket.exists, "munged's socket")

    def _write_conf(self) -> None:
        for name in ("state", "spool"):
            (self.folder / name).mkdir(exist_ok=True)
        self.workdir.mkdir(exist_ok=True)
        host = socket.gethostname().split(".")[0]  # slurmctld checks it runs on SlurmctldHost
        ctld_port = free_port(["127.0.0.1"], 16817 + os.getpid() % 2000)
        d_port = free_port(["127.0.0.1"], ctld_port + 1)
        f = self.folder
        lines = [
            "ClusterName=povfarmtest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}", "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.socket}",
            "SlurmUser=root", "SlurmdUser=root", f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}", f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}", f"SlurmdLogFile={f / 'slurmd.log'}",
            "ProctrackType=proctrack/pgid", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "MpiDefault=none",
            "ReturnToService=2", "KillWait=2", "MinJobAge=60", "MailProg=/bin/true",
            f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName={SHORT} Nodes=ALL MaxTime=1 State=UP",  # a minute: longer jobs never start
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _daemon(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / f"{name}.out", "wb")  # noqa: SIM115 - the daemon writes it until stopped
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)
        log.close()

    def _wait_for(self, condition, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: {(self.folder / f'{name}.out').read_text()[-2000:]}")
            if condition():
                return
            time.sleep(0.2)
        raise RuntimeError(f"waited {timeout:.0f} s for {what}")

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        """One of Slurm's commands against this cluster."""
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)

    def tasks(self, name: str | None = None) -> list[str]:
        """The tasks squeue shows (of the jobs called `name`)."""
        argv = ["squeue", "-h", "-r", "-o", "%i %j %T", *([f"--name={name}"] if name else [])]
        return self.run(*argv).stdout.split("\n")[:-1]

    def inventory(self, **slurm: object) -> str:
        """An engine: slurm inventory whose login is the test sshd."""
        node = self.login.nodes[0]
        options = {"partition": PARTITION, "time": "00:05:00", "cpus_per_task": 1, **slurm}
        return (
            "engine: slurm\n"
            f"login: {{host: {node.address}, port: {node.port}, user: {getpass.getuser()}, "
            f"key: {self.login.client_key}, "
            f"known_hosts: {self.login.known_hosts}, connect_timeout: 5}}\n"
            f"workdir: {self.workdir}\n"
            "slurm: {" + ", ".join(f"{key}: {value!r}" for key, value in options.items()) + "}\n"
        )

    def stepds(self) -> list[int]:
        """Every slurmstepd of this cluster (it leaves slurmd's tree): found by its SLURM_CONF."""
        found = []
        mark = f"SLURM_CONF={self.conf}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return [pid for pid in found if pid != os.getpid()]

    def stop(self) -> None:
        self.login.stop()
        if "slurmctld" in self.processes:
            self.run("scancel", "--partition", f"{PARTITION},{SHORT}")
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        signal_all([pid for pid in self.stepds() if _name(pid) != "pytest"], signal.SIGKILL)


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
