"""The client's side of a node's command channel (fabfile/agent.py runs on the node).

One SSH channel carries every command of a connection, so the node's login shell
starts once per job instead of once per command. Each command is a call with its
own id: its output is handed to the caller as it comes, its stdin fed from a pipe
(a part's cut words), its end awaited with a timeout. One reader thread owns the
channel's output and hands each line to its call; writes share one lock. When the
channel ends, every call still waiting ends as a lost connection.
"""

from __future__ import annotations

import itertools
import json
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from fabfile.errors import NodeError

AGENT_SOURCE = (Path(__file__).with_name("agent.py")).read_text(encoding="utf-8")


class Channel(Protocol):
    """What is used of a Paramiko channel."""

    def sendall(self, data: bytes) -> None: ...
    def makefile(self, mode: str) -> BinaryIO: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Call:
    on_output: Callable[[str], None] | None
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    code: int | None = None
    lost: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class AgentLink:
    """Commands run by the node's agent over one channel."""

    def __init__(self, channel: Channel, name: str, ready_timeout: float) -> None:
        self.channel = channel
        self.name = name
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._lost = False
        self._output = channel.makefile("rb")
        channel.settimeout(ready_timeout)
        try:
            ready = json.loads(self._output.readline()).get("ready")
        except (ValueError, AttributeError, OSError, EOFError):
            ready = None
        if not ready:
            raise NodeError(f"node {name}: povfarm's agent did not start (is python3 installed there?)")
        channel.settimeout(None)
        self._reader = threading.Thread(target=self._read, name=f"agent-{name}", daemon=True)
        self._reader.start()

    def run(
        self, command: str, timeout: float | None = None, on_output: Callable[[str], None] | None = None,
        stdin: BinaryIO | None = None,
    ) -> tuple[int, str, str]:
        """Run a shell command on the node: its exit status, stdout and stderr."""
        ident = next(self._ids)
        call = _Call(on_output)
        with self._lock:
            if self._lost:
                raise NodeError(f"node {self.name}: connection lost")
            self._calls[ident] = call
        self._send({"id": ident, "run": command, "stdin": stdin is not None})
        if stdin is not None:
            threading.Thread(target=self._forward, args=(ident, call, stdin), daemon=True).start()
        finished = call.done.wait(timeout)
        with self._lock:
            self._calls.pop(ident, None)
        if not finished:
            try:
                self._send({"id": ident, "cancel": True})  # a frozen node must not start it when it wakes
            except NodeError:
                pass
            raise NodeError(f"node {self.name}: command timed out after {timeout:.0f}s")
        if call.lost:
            raise NodeError(f"node {self.name}: connection lost (connection closed)")
        return call.code if call.code is not None else -1, "".join(call.out), "".join(call.err)

    def close(self) -> None:
        """End the channel. Commands still awaited are cancelled (nobody will read their end:
        a hung part, a launch a frozen node never answered); the agent exits when the rest end."""
        with self._lock:
            waiting = list(self._calls)
        for ident in waiting:
            try:
                self._send({"id": ident, "cancel": True})
            except NodeError:
                break
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001 - closing a dead link must not hide the real error
            pass

    def _send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            with self._write_lock:
                self.channel.sendall(data)
        except (OSError, EOFError) as exc:
            raise NodeError(f"node {self.name}: connection lost ({exc or type(exc).__name__})") from None

    def _forward(self, ident: int, call: _Call, stdin: BinaryIO) -> None:
        """A command's stdin: what the pipe gives, as it comes, until the command ends."""
        try:
            while not call.done.is_set():
                ready, _, _ = select.select([stdin], [], [], 0.1)
                if not ready:
                    continue
                data = stdin.read(4096)
                if not data:
                    return
                self._send({"id": ident, "in": data.decode()})
        except (NodeError, OSError, ValueError):
            return  # the link or the pipe closed: no more words for this command

    def _read(self) -> None:
        try:
            for line in self._output:
                message = json.loads(line)
                with self._lock:
                    call = self._calls.get(message.get("id"))
                if call is not None:
                    self._deliver(call, message)
        except (OSError, EOFError, ValueError):
            pass
        with self._lock:
            self._lost = True
            calls = list(self._calls.values())
        for call in calls:
            call.lost = True
            call.done.set()

    @staticmethod
    def _deliver(call: _Call, message: dict) -> None:
        if "out" in message:
            call.out.append(message["out"])
            if call.on_output is not None:
                try:
                    call.on_output(message["out"])
                except Exception:  # noqa: BLE001 - watching a command's output must not fail the command
                    pass
        if "err" in message:
            call.err.append(message["err"])
        if "rc" in message:
            call.code = message["rc"]
            call.done.set()
