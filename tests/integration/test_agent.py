"""povfarm's agent (fabfile/agent.py) run for real as a local process, through the client's
AgentLink, its pipes standing in for the SSH channel (the SSH tests use it through sshd)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from fabfile.agentlink import AGENT_SOURCE, AgentLink
from fabfile.errors import NodeError
from tests.conftest import wait_for


class PipeChannel:
    """A local agent process, seen as the channel AgentLink reads and writes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-u", "-c", AGENT_SOURCE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)

    def sendall(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def makefile(self, mode: str) -> BinaryIO:
        return self.process.stdout

    def settimeout(self, timeout: float | None) -> None:
        pass

    def close(self) -> None:
        self.process.stdin.close()


@pytest.fixture
def agent() -> Iterator[tuple[AgentLink, PipeChannel]]:
    channel = PipeChannel()
    link = AgentLink(channel, "here", ready_timeout=10)
    yield link, channel
    link.close()
    try:
        channel.process.wait(timeout=10)
    finally:
        channel.process.kill()
        channel.process.wait()
        link._reader.join(timeout=10)
        channel.process.stdout.close()


def test_a_command_gives_its_status_stdout_and_stderr(agent):
    link, _ = agent
    assert link.run("echo out; echo err >&2; exit 3", timeout=10) == (3, "out\n", "err\n")
    assert link.run("printf 'caf\\303\\251'", timeout=10) == (0, "café", "")


def test_output_comes_as_it_is_written(agent, tmp_path: Path):
    # The command goes on only once its first line has reached the caller: held back until
    # the command's end, it would wait for ever (and time out).
    link, _ = agent
    seen = tmp_path / "seen"
    code, out, _ = link.run(f"echo first; while [ ! -e {seen} ]; do sleep 0.05; done; echo second", timeout=20,
                            on_output=lambda text: seen.touch() if "first" in text else None)
    assert (code, out) == (0, "first\nsecond\n")


def test_words_reach_a_running_commands_stdin(agent):
    link, _ = agent
    reading, writing = os.pipe()
    stdin = os.fdopen(reading, "rb", buffering=0)
    threading.Timer(0.3, lambda: os.write(writing, b"cut\n")).start()
    try:
        assert link.run("read word; echo got $word", timeout=10, stdin=stdin) == (0, "got cut\n", "")
    finally:
        os.close(writing)
        stdin.close()


def test_commands_run_side_by_side(agent, tmp_path: Path):
    # Each command waits until all four have started: run one after another, they would time out.
    link, _ = agent
    results: list[tuple[int, str, str]] = []
    wait_all = " && ".join(f"[ -e {tmp_path}/{n} ]" for n in range(4))
    threads = [threading.Thread(target=lambda n=n: results.append(link.run(
        f"touch {tmp_path}/{n}; until {wait_all}; do sleep 0.05; done; echo {n}", timeout=20)))
        for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [(0, f"{n}\n", "") for n in range(4)]


def test_a_command_that_outlives_its_timeout_is_an_error_and_the_link_goes_on(agent):
    link, _ = agent
    with pytest.raises(NodeError, match="command timed out after 0s"):
        link.run("sleep 2", timeout=0.3)
    assert link.run("echo still here", timeout=10)[1] == "still here\n"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_command_given_up_on_is_killed_with_what_it_started(agent, tmp_path: Path):
    link, _ = agent
    pid_file = tmp_path / "pid"
    with pytest.raises(NodeError, match="timed out"):
        link.run(f"sleep 60 & echo $! >{pid_file}; wait", timeout=0.5)
    wait_for(pid_file.exists, timeout=10, what="the command to start")
    wait_for(lambda: not alive(int(pid_file.read_text())), timeout=10, what="its sleep to be killed")


def test_closing_the_link_cancels_the_commands_still_awaited(agent, tmp_path: Path):
    # A part of a node that froze: nobody will read its end, and it must not render on for nobody.
    link, channel = agent
    pid_file = tmp_path / "pid"
    threading.Thread(target=_ignore_lost, args=(link, f"sleep 60 & echo $! >{pid_file}; wait"), daemon=True).start()
    wait_for(pid_file.exists, timeout=10, what="the command to start")
    link.close()
    wait_for(lambda: not alive(int(pid_file.read_text())), timeout=10, what="its sleep to be killed")
    assert channel.process.wait(timeout=10) == 0


def test_a_lost_agent_ends_waiting_commands_as_a_lost_connection(agent):
    link, channel = agent
    threading.Timer(0.3, channel.process.kill).start()
    with pytest.raises(NodeError, match="connection lost"):
        link.run("sleep 5", timeout=10)
    with pytest.raises(NodeError, match="connection lost"):
        link.run("true", timeout=10)


def test_commands_finish_after_the_client_is_gone_and_then_the_agent_ends(agent, tmp_path: Path):
    link, channel = agent
    done = tmp_path / "done"
    threading.Thread(target=lambda: _ignore_lost(link, f"sleep 1; while true; do echo tick; sleep 0.1; "
                                                       f"[ -e {done}.go ] && break; done; touch {done}"),
                     daemon=True).start()
    time.sleep(0.3)
    channel.close()  # the client is gone (killed: nothing cancelled) while the command runs and writes output
    (tmp_path / "done.go").touch()
    wait_for(done.exists, timeout=10, what="the command to finish")
    assert channel.process.wait(timeout=10) == 0  # and then the agent ended by itself


def _ignore_lost(link: AgentLink, command: str) -> None:
    try:
        link.run(command, timeout=30)
    except NodeError:
        pass


def test_a_channel_where_the_agent_does_not_start_is_refused():
    class Silent(PipeChannel):
        def __init__(self) -> None:
            self.process = subprocess.Popen(["sh", "-c", "echo 'python3: not found' >&2; exit 127"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    channel = Silent()
    with pytest.raises(NodeError, match="agent did not start"):
        AgentLink(channel, "bare", ready_timeout=5)
    channel.process.wait(timeout=5)
    channel.process.stdin.close()
    channel.process.stdout.close()
