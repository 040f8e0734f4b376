"""Node workers: they run the coordinator's commands on one node and report what happened.

A worker decides nothing. Each node has one thread per slot, which takes
the next part to render from the node's queue, runs its command (one SSH
command: POV-Ray, then the fetch) and reports how it ended; and one
control thread, which stops or cuts running parts when told to (a slot's
thread is busy following its part then). Reports go to the coordinator's
queue as values, never as exceptions: a failure on a node is a report like
any other (Fabric's `group.py` does the same with one thread per host).

Threads: the slot and control threads are daemons that end when their
queue hands them None; they share nothing but the queues, and a part's
PixelTrace, which only its own slot thread feeds.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fabfile.errors import OptionsError, PovfarmError, SceneError
from fabfile.nodejob import NodeJob, PartInterrupted, PartOutcome
from fabfile.plan import Span
from fabfile.scheduler import Part
from fabfile.trace import PixelTrace

# -- what a worker reports ------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    node: str
    part: Part
    outcome: PartOutcome
    trace: PixelTrace | None


@dataclass(frozen=True)
class Interrupted:
    node: str
    part: Part
    pixels: int  # this POV-Ray run's own count when it stopped
    cpu: float | None
    trace: PixelTrace | None


@dataclass(frozen=True)
class Failed:
    node: str
    part: Part
    error: PovfarmError
    fatal: bool  # the scene's or the user's error: the same on every node


@dataclass(frozen=True)
class Logged:
    node: str
    part: Part
    pixels: int
    at: float


Report = Rendered | Interrupted | Failed | Logged


@dataclass(frozen=True)
class PartJob:
    """What a slot thread needs to render one part."""

    part: Part
    span: Span
    resume_from: Span | None
    streamed: bool  # a still's log streams back: progress and block costs


@dataclass(frozen=True)
class Settings:
    """What every part of the job shares."""

    args: Sequence[str]
    parts_folder: Path
    final_frame: int


class NodeWorker:
    """The threads that run one node's commands."""

    def __init__(self, node_job: NodeJob, slots: int, settings: Settings, report: Callable[[Report], None]) -> None:
        self.node_job = node_job
        self.name = node_job.name
        self.settings = settings
        self.report = report
        self.parts: queue.Queue[PartJob | None] = queue.Queue()
        self.controls: queue.Queue[tuple[str, Span] | None] = queue.Queue()
        self.threads = [threading.Thread(target=self._slot, daemon=True) for _ in range(slots)]
        self.threads.append(threading.Thread(target=self._control, daemon=True))
        for thread in self.threads:
            thread.start()

    # -- commands from the coordinator ------------------------------------------------
    def start(self, job: PartJob) -> None:
        self.parts.put(job)

    def cut(self, span: Span) -> None:
        self.controls.put(("cut", span))

    def stop(self, span: Span) -> None:
        self.controls.put(("stop", span))

    def close(self) -> None:
        """The threads end once their queues are drained (a part already rendering runs out)."""
        for _ in range(len(self.threads) - 1):
            self.parts.put(None)
        self.controls.put(None)

    # -- the threads -------------------------------------------------------------------
    def _slot(self) -> None:
        while (job := self.parts.get()) is not None:
            self.report(self._render(job))

    def _render(self, job: PartJob) -> Report:
        trace = PixelTrace() if job.streamed else None
        on_log = self._follow(job.part, trace) if trace is not None else None
        try:
            outcome = self.node_job.render(
                job.span, self.settings.args, self.settings.parts_folder, self.settings.final_frame,
                job.resume_from, on_log=on_log,
            )
        except PartInterrupted as exc:
            return Interrupted(self.name, job.part, exc.pixels, exc.povray_times.get("cpu"), trace)
        except (SceneError, OptionsError) as exc:
            return Failed(self.name, job.part, exc, fatal=True)
        except PovfarmError as exc:
            return Failed(self.name, job.part, exc, fatal=False)
        except Exception as exc:  # noqa: BLE001 - a surprise on one node is that node's failure
            return Failed(self.name, job.part, PovfarmError(f"node {self.name}: {type(exc).__name__}: {exc}"), False)
        return Rendered(self.name, job.part, outcome, trace)

    def _follow(self, part: Part, trace: PixelTrace) -> Callable[[str], None]:
        """The part's log as it streams back: into its trace, and a report when it grew."""

        def feed(text: str) -> None:
            before = trace.latest()
            trace.feed(text, time.monotonic())
            latest = trace.latest()
            if latest is not None and latest != before:
                self.report(Logged(self.name, part, latest[1], latest[0]))

        return feed

    def _control(self) -> None:
        while (item := self.controls.get()) is not None:
            action, span = item
            try:
                if action == "cut":
                    self.node_job.interrupt(span)
                else:
                    self.node_job.stop_part(span)
            except Exception:  # noqa: BLE001 - a node that does not answer: its part's own command reports it
                pass
