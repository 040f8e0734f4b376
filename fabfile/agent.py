"""The node's side of povfarm's command channel: one process per job's connection.

fabfile.transport starts it once per SSH connection (`python3 -u -c <this file>`),
so the user's login shell starts once, not once per command (a .bashrc that
runs `pyenv init` costs ~0.1 s of the CPU POV-Ray needs, each time). It reads
requests from stdin and writes replies to stdout, one JSON object per line:

    {"id": 7, "run": "<shell command>", "stdin": false}   run it with bash -c
    {"id": 7, "in": "cut\\n"}                              to that command's stdin
    {"id": 7, "cancel": true}                             the client gave up on it: kill it
    {"id": 7, "out": "..."} / {"id": 7, "err": "..."}     its output as it comes
    {"id": 7, "rc": 0}                                    its end (-1: killed by a signal)

When its stdin closes (the client is gone), it closes the running commands'
stdin, as sshd does for a closed channel, and exits once they have ended,
reading their output to the end so that none blocks writing it: a part's
POV-Ray finishes and leaves its rc file for `inv collect`, and a word sent
before the close (a frozen node's `stop`) is still delivered. Standard library
only, for any python3 a node has.
"""

import codecs
import json
import os
import signal
import subprocess
import sys
import threading

SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
# bash reads ~/.bashrc when it thinks sshd started it (SSH_CLIENT set, SHLVL below 2):
# the commands started here must not pay the login shell's start-up again.
ENVIRONMENT = {key: value for key, value in os.environ.items() if key not in ("SSH_CLIENT", "SSH2_CLIENT")}
ENVIRONMENT["SHLVL"] = str(max(2, int(ENVIRONMENT.get("SHLVL", "1") or 1)))

_write_lock = threading.Lock()
_running = {}
_cancelled = set()
_threads = []
_client = {"gone": False}


def send(message):
    data = (json.dumps(message) + "\n").encode()
    with _write_lock:
        if _client["gone"]:
            return
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError:
            _client["gone"] = True  # output from here on is read and dropped


def pump(ident, stream, key):
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        chunk = os.read(stream.fileno(), 65536)
        text = decoder.decode(chunk, final=not chunk)
        if text:
            send({"id": ident, key: text})
        if not chunk:
            return


def run(ident, command, with_stdin):
    if ident in _cancelled:
        return
    try:
        # A process group of its own: a cancel reaches what the command started too.
        process = subprocess.Popen(
            [SHELL, "-c", command], stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENVIRONMENT, start_new_session=True,
        )
    except OSError as exc:
        send({"id": ident, "err": f"povfarm agent: {exc}\n", "rc": 127})
        return
    _running[ident] = process
    if ident in _cancelled:
        kill(process)
    pumps = [threading.Thread(target=pump, args=(ident, stream, key), daemon=True)
             for stream, key in ((process.stdout, "out"), (process.stderr, "err"))]
    for thread in pumps:
        thread.start()
    code = process.wait()
    for thread in pumps:
        thread.join()
    _running.pop(ident, None)
    send({"id": ident, "rc": code if code >= 0 else -1})


def kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass


def cancel(ident):
    _cancelled.add(ident)
    process = _running.get(ident)
    if process is not None:
        kill(process)


def feed(ident, text):
    process = _running.get(ident)
    if process is None or process.stdin is None:
        return
    try:
        process.stdin.write(text.encode())
        process.stdin.flush()
    except OSError:
        pass  # the command no longer reads: a word for it changes nothing


def main():
    send({"ready": 1})
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "run" in message:
            thread = threading.Thread(target=run, args=(message["id"], message["run"], message.get("stdin")),
                                      daemon=True)
            _threads.append(thread)
            thread.start()
        elif "in" in message:
            feed(message["id"], message["in"])
        elif "cancel" in message:
            cancel(message["id"])
    for process in list(_running.values()):
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
    for thread in _threads:
        thread.join()


if __name__ == "__main__":
    main()
