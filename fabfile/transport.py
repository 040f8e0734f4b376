"""The transport: run commands and move files on a node.

The only module that imports Fabric and Paramiko. A node is reached over
SSH (one Connection and one SFTP session kept open for a whole job) or, for
`transport: local`, on this machine through Invoke's local runner. Both take
the same shell command strings, built with `shell_join` so no name reaches a
shell unquoted.

Host keys are checked against the node's known_hosts file; an unknown key is
refused with the command that would trust it, unless the inventory opts in
to trust-on-first-use for that node.
"""

from __future__ import annotations

import select
import shlex
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import fabric.runners
import invoke
import paramiko
from fabric import Config, Connection

from fabfile.agentlink import AGENT_SOURCE, AgentLink
from fabfile.errors import HostKeyError, NodeError
from fabfile.inventory import Node


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def shell_join(argv: Iterable[str]) -> str:
    """One shell command line with every word quoted."""
    return shlex.join(list(argv))


class _WaitingStdin:
    """A command's stdin fed from a pipe (PartControl) without polling.

    Invoke's stdin thread wakes every 10 ms (`input_sleep`) for the whole of a
    command; a part runs for seconds or minutes, on the machine the nodes may
    share. This one sleeps in select() until a word comes or the command ends.
    """

    def handle_stdin(self, input_: BinaryIO, output: object, echo: bool = False) -> None:
        while not self.program_finished.is_set():  # type: ignore[attr-defined]
            ready, _, _ = select.select([input_], [], [], 0.1)
            if not ready:
                continue
            data = input_.read(4096)
            if not data:
                return  # the pipe closed: nothing more will come
            self.write_proc_stdin(data.decode())  # type: ignore[attr-defined]


class PromptRemote(_WaitingStdin, fabric.runners.Remote):
    """Fabric's runner for a node over SSH, told of a command's end at once.

    Invoke polls for the end of a command (`input_sleep`; PromptLocal's pauses of up
    to 20 ms were ~10 ms late on average per part). Paramiko sets the channel's
    status event as the exit status arrives (or the channel closes): wait on that.
    """

    def wait(self) -> None:
        # The timeout only bounds how late a reader thread's death is noticed.
        while not (self.process_is_finished or self.has_dead_threads):
            self.channel.status_event.wait(0.05)


class PromptLocal(_WaitingStdin, invoke.runners.Local):
    """Invoke's runner for a `transport: local` node, noticing a command's end sooner.

    Invoke checks for the end of a command every 10 ms (`input_sleep`), most of
    what a short command costs. Checking often at first and less as it runs
    brings that to ~3 ms and keeps long parts cheap to wait on.
    """

    def wait(self) -> None:
        pause = 0.0005
        while not (self.process_is_finished or self.has_dead_threads):
            time.sleep(pause)
            pause = min(pause * 1.5, 0.02)


OutputHandler = Callable[[str], None]


class _OutputStream:
    """What Invoke writes a command's output to, as it arrives: a handler's calls."""

    def __init__(self, handler: OutputHandler) -> None:
        self._handler = handler

    def write(self, text: str) -> None:
        try:
            self._handler(text)
        except Exception:  # noqa: BLE001 - watching a command's output must not fail the command
            pass

    def flush(self) -> None:
        pass


def _streamed(on_output: OutputHandler | None, stdin: BinaryIO | None = None) -> dict:
    """run() options that hand a command's stdout, as it arrives, to `on_output`, and
    what is written to `stdin` (a pipe's reading end), as it comes, to the command."""
    options: dict = {} if stdin is None else {"in_stream": stdin}
    if on_output is None:
        return options
    return {**options, "hide": "stderr", "out_stream": _OutputStream(on_output)}


def _run_config() -> dict:
    # No stdin forwarding (parts run in worker threads), no echo, and a
    # failing command is a result to inspect, not an exception.
    return {
        "run": {"hide": True, "warn": True, "in_stream": False},
        "runners": {"remote": PromptRemote, "local": PromptLocal},
    }


class LocalSession:
    """This machine, through Invoke's local runner."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._context = invoke.Context(invoke.Config(overrides=_run_config()))

    def run(
        self, command: str, timeout: float | None = None, on_output: OutputHandler | None = None,
        stdin: BinaryIO | None = None,
    ) -> CommandResult:
        try:
            result = self._context.run(command, timeout=timeout, **_streamed(on_output, stdin))
        except invoke.CommandTimedOut:
            raise NodeError(f"node {self.node.name}: command timed out after {timeout:.0f}s") from None
        return CommandResult(result.exited, result.stdout, result.stderr)

    def sudo(self, command: str, password: str | None) -> CommandResult:
        result = self._context.sudo(command, password=password)
        return CommandResult(result.exited, result.stdout, result.stderr)

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def close(self) -> None:
        pass


class SshSession:
    """A node over SSH: one Connection and one SFTP client for the job, and one channel to
    povfarm's agent on the node, which runs every command without a login shell of its own
    (fabfile.agentlink); without python3 there, each command goes through the login shell."""

    def __init__(self, node: Node, connection: Connection) -> None:
        self.node = node
        self._connection = connection
        self._sftp_lock = threading.Lock()
        self.agent = _start_agent(node, connection)

    def run(
        self, command: str, timeout: float | None = None, on_output: OutputHandler | None = None,
        stdin: BinaryIO | None = None,
    ) -> CommandResult:
        if self.agent is not None:
            return CommandResult(*self.agent.run(command, timeout, on_output, stdin))
        return self.run_in_login_shell(command, timeout, on_output, stdin)

    def run_in_login_shell(
        self, command: str, timeout: float | None = None, on_output: OutputHandler | None = None,
        stdin: BinaryIO | None = None,
    ) -> CommandResult:
        """A command on a channel of its own, through the user's login shell (as `ssh node command`)."""
        try:
            result = self._connection.run(command, timeout=timeout, **_streamed(on_output, stdin))
        except invoke.CommandTimedOut:
            raise NodeError(f"node {self.node.name}: command timed out after {timeout:.0f}s") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise NodeError(f"node {self.node.name}: connection lost ({_reason(exc)})") from None
        return CommandResult(result.exited, result.stdout, result.stderr)

    def sudo(self, command: str, password: str | None) -> CommandResult:
        """Run as root through sudo; Invoke answers sudo's prompt, nothing is echoed."""
        try:
            result = self._connection.sudo(command, password=password)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise NodeError(f"node {self.node.name}: connection lost ({_reason(exc)})") from None
        except invoke.AuthFailure:
            raise NodeError(f"node {self.node.name}: sudo refused the password") from None
        return CommandResult(result.exited, result.stdout, result.stderr)

    def put(self, local: Path, remote: str) -> None:
        with self._sftp_lock:
            try:
                self._connection.sftp().put(str(local), remote)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise NodeError(f"node {self.node.name}: upload of {local.name} failed ({_reason(exc)})") from None

    def get(self, remote: str, local: Path) -> None:
        with self._sftp_lock:
            try:
                self._connection.sftp().get(remote, str(local))
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise NodeError(f"node {self.node.name}: download of {remote} failed ({_reason(exc)})") from None

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
        try:
            self._connection.close()
        except Exception:  # noqa: BLE001 - closing a dead link must not hide the real error
            pass


def _start_agent(node: Node, connection: Connection) -> AgentLink | None:
    """povfarm's agent on the node (fabfile/agent.py), or None where it cannot run."""
    channel = None
    try:
        channel = connection.transport.open_session(timeout=node.connect_timeout)
        channel.exec_command(shell_join(["python3", "-u", "-c", AGENT_SOURCE]))
        return AgentLink(channel, node.name, node.connect_timeout)
    except (NodeError, paramiko.SSHException, OSError, EOFError):
        if channel is not None:
            channel.close()
        return None


Session = LocalSession | SshSession


def remote_workdir(node: Node, session: Session) -> str:
    """The node's workdir, with a leading ~ expanded on the node itself."""
    if not node.workdir.startswith("~"):
        return node.workdir
    home = session.run('printf %s "$HOME"').stdout.strip() or "/tmp"
    return home + node.workdir[1:]


class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host key once, append it to the known_hosts file, and say so.

    The one place below the tasks that prints: a key trusted without a check must
    never pass silently, whichever task opened the connection.
    """

    def __init__(self, node: Node, path: Path) -> None:
        self.node = node
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="ascii") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        print(
            f"warning: node {self.node.name} ({self.node.address}): trusted its unknown host key "
            f"{key.get_name()} {key.fingerprint} without a check (trust_on_first_use); added to {self.path}",
            file=sys.stderr,
        )


class PromptTransport(paramiko.Transport):
    """Paramiko's transport without TCP's waits for small packets.

    SSH's handshake and commands are small packets each way. With Nagle's
    algorithm on and the peer delaying its ACKs, a small packet can wait up to
    40 ms for the ACK of the one before it: measured on loopback, logging in
    took 60 ms instead of 20, and every command ~40 ms more.
    """

    def __init__(self, sock: socket.socket, *args: object, **kwargs: object) -> None:
        _set_tcp_option(sock, socket.TCP_NODELAY)
        super().__init__(sock, *args, **kwargs)

    def _parse_global_request(self, m: paramiko.Message) -> None:
        super()._parse_global_request(m)
        # Right after login OpenSSH's server sends its host keys (hostkeys-00@openssh.com),
        # which wants no reply: without an ACK for it now, Nagle holds the server's
        # answer to the first channel opened, and a job's first command waited 40 ms.
        _set_tcp_option(self.sock, getattr(socket, "TCP_QUICKACK", None))  # Linux only


def _set_tcp_option(sock: object, option: int | None) -> None:
    if option is not None and isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass


def open_session(node: Node) -> Session:
    """Connect to a node, or raise NodeError with the reason and the fix."""
    if node.is_local:
        return LocalSession(node)
    known_hosts = Path(node.known_hosts).expanduser()
    connection = _connection(node, known_hosts)
    try:
        connection.open()
        connection.transport.set_keepalive(5)
    except paramiko.BadHostKeyException:
        raise HostKeyError(
            f"node {node.name} ({node.address}): host key CHANGED from the one in {known_hosts}; "
            f"if the node was reinstalled, remove its line (ssh-keygen -R {_keyscan_host(node)} "
            f"-f {known_hosts}) and trust the new key"
        ) from None
    except paramiko.AuthenticationException:
        raise NodeError(
            f"node {node.name} ({node.address}): authentication failed"
            + (f" with key {node.key}" if node.key else "")
            + "; check 'user' and 'key' in the inventory"
        ) from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyError(
                f"node {node.name} ({node.address}): host key unknown; check it and trust it with: "
                f"ssh-keyscan -p {node.port} {node.host} >> {known_hosts} "
                "(or set trust_on_first_use: true for the node)"
            ) from None
        raise NodeError(f"node {node.name} ({node.address}): SSH failed: {_reason(exc)}") from None
    except TimeoutError:
        raise NodeError(
            f"node {node.name} ({node.address}): timed out after {node.connect_timeout:.0f}s; is it up?"
        ) from None
    except (OSError, EOFError) as exc:
        raise NodeError(f"node {node.name} ({node.address}): unreachable: {_reason(exc)}") from None
    return SshSession(node, connection)


def _connection(node: Node, known_hosts: Path) -> Connection:
    """A Fabric connection to a node, not yet open, that checks its host key."""
    config = Config(overrides=_run_config(), lazy=True)
    config.load_ssh_configs = False
    connection = Connection(
        node.host,
        user=node.user,
        port=node.port,
        config=config,
        connect_timeout=max(1, round(node.connect_timeout)),
        connect_kwargs=_connect_kwargs(node),
    )
    client = connection.client
    if known_hosts.is_file():
        _load_known_hosts(client, node, known_hosts)
    if node.trust_on_first_use:
        client.set_missing_host_key_policy(TrustOnFirstUse(node, known_hosts))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return connection


def _connect_kwargs(node: Node) -> dict:
    """Paramiko's options for a node: its timeouts, and its key alone if it names one."""
    kwargs: dict = {
        "transport_factory": PromptTransport,
        "banner_timeout": node.connect_timeout,
        "auth_timeout": node.connect_timeout,
        "channel_timeout": node.connect_timeout,
    }
    if node.key:
        if not Path(node.key).expanduser().is_file():
            raise NodeError(f"node {node.name}: key file {node.key} not found; check 'key' in the inventory")
        kwargs.update(key_filename=str(Path(node.key).expanduser()), look_for_keys=False, allow_agent=False)
    return kwargs


def _load_known_hosts(client: paramiko.SSHClient, node: Node, known_hosts: Path) -> None:
    try:
        client.load_host_keys(str(known_hosts))
    except paramiko.hostkeys.InvalidHostKey as exc:
        bad = str(exc.line).strip()
        lines = known_hosts.read_text(encoding="ascii", errors="replace").splitlines()
        number = next((i for i, line in enumerate(lines, start=1) if line.strip() == bad), "?")
        raise HostKeyError(
            f"node {node.name}: {known_hosts} line {number} is not a valid host key line; fix or remove that line"
        ) from None
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise HostKeyError(f"node {node.name}: cannot read known_hosts {known_hosts}: {exc}") from None


def _keyscan_host(node: Node) -> str:
    return node.host if node.port == 22 else f"'[{node.host}]:{node.port}'"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        errors = list(exc.errors.values())
        if errors and all(isinstance(e, ConnectionRefusedError) for e in errors):
            return "connection refused"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, EOFError):
        return "connection closed"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text
