"""Node workers: they run the coordinator's commands on one node and report what happened.

A worker decides nothing. Each node has one thread per slot, which takes
the next part to render from the node's queue, runs its command (one SSH
command: POV-Ray, then the fetch) and reports how it ended; and one
control thread, which stops or cuts running parts when told to (a slot's
thread is busy following its part then). Reports go to the coordinator's
queue as values, never as exceptions: a failure on a node is a report like
any other (Fabric's `group.py` does the same with one thread per host).

A cut is the one place where a worker does more than it is told, and only
to be quicker: before it stops the band, the control thread starts the
band's continuation on the node, held at a gate (`NodeJob.launch_gated`),
so that POV-Ray's start-up (~0.3 s, mostly idle) overlaps the band's last
moments; the slot thread told to continue the band then opens that gate.
A continuation that turns out not to be wanted (the band ended whole) is
stopped by the worker itself.

Threads: the slot and control threads are daemons that end when their
queue hands them None. They share the queues, and the continuations started
early (`_early`, `_running`), under `_lock`; a part's PixelTrace is fed
only by its own slot thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fabfile.errors import OptionsError, PovfarmError, SceneError
from fabfile.events import Part
from fabfile.nodejob import NodeJob, PartControl, PartInterrupted, PartOutcome
from fabfile.plan import Span
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
    gated: bool = True  # start a cut band's continuation early (not with the scene's own include header)


# POV-Ray 3.7 aborts when its include header opens after it has waited ~10.5 s at it
# (vfepovms.cpp:150, m_Sanity; measured): a continuation that waited longer than this
# is replaced by one started then.
GATE_LIMIT = 6.0


class NodeWorker:
    """The threads that run one node's commands."""

    def __init__(self, node_job: NodeJob, slots: int, settings: Settings, report: Callable[[Report], None]) -> None:
        self.node_job = node_job
        self.name = node_job.name
        self.settings = settings
        self.report = report
        self.parts: queue.Queue[PartJob | None] = queue.Queue()
        self.controls: queue.Queue[tuple[str, Span, Span | None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._running: dict[Span, PartControl] = {}  # parts a slot thread is rendering now
        # A POV-Ray at its gate: (the band it continues, or None for a first band; since when).
        self._early: dict[Span, tuple[Span | None, float]] = {}
        self.gated_cuts = 0  # cuts whose continuation was started early and used
        self.early_bands = 0  # first bands started early and used
        self.threads = [threading.Thread(target=self._slot, daemon=True) for _ in range(slots)]
        self.threads.append(threading.Thread(target=self._control, daemon=True))
        for thread in self.threads:
            thread.start()

    # -- commands from the coordinator ------------------------------------------------
    def start(self, job: PartJob) -> None:
        self.parts.put(job)

    def cut(self, span: Span, kept: Span) -> None:
        """Stop the part rendering `span`; it will continue over `kept`."""
        self.controls.put(("cut", span, kept))

    def stop(self, span: Span) -> None:
        self.controls.put(("stop", span, None))

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
        control = PartControl()
        try:
            gated = self._take_early(job, control)
            outcome = self.node_job.render(
                job.span, self.settings.args, self.settings.parts_folder, self.settings.final_frame,
                job.resume_from, gated, on_log, control,
            )
        except PartInterrupted as exc:
            return Interrupted(self.name, job.part, exc.pixels, exc.povray_times.get("cpu"), trace)
        except (SceneError, OptionsError) as exc:
            return Failed(self.name, job.part, exc, fatal=True)
        except PovfarmError as exc:
            return Failed(self.name, job.part, exc, fatal=False)
        except Exception as exc:  # noqa: BLE001 - a surprise on one node is that node's failure
            return Failed(self.name, job.part, PovfarmError(f"node {self.name}: {type(exc).__name__}: {exc}"), False)
        finally:
            self._ended(job.span)
        return Rendered(self.name, job.part, outcome, trace)

    def _take_early(self, job: PartJob, control: PartControl) -> bool:
        """Whether this part's POV-Ray waits at its gate already (a continuation, see the module's
        doc, or a first band started early)."""
        with self._lock:
            self._running[job.span] = control
            early = self._early.pop(job.span, None)
        if early is None or early[0] != job.resume_from:
            return False
        if time.monotonic() - early[1] > GATE_LIMIT:
            self.node_job.cancel_gated(job.span, remove=True)
            return False
        if early[0] is None:
            self.early_bands += 1
        else:
            self.gated_cuts += 1
        return True

    def _ended(self, span: Span) -> None:
        with self._lock:
            control = self._running.pop(span, None)
        if control is not None:
            control.close()

    def _say(self, span: Span, word: str) -> bool:
        """Send a word to a running part (PartControl); False if it is not running here."""
        with self._lock:
            control = self._running.get(span)
            if control is not None:
                control.send(word)
        return control is not None

    def _cut(self, span: Span, kept: Span) -> None:
        """Start the continuation early where it can be, then stop the part."""
        with self._lock:
            launch = self.settings.gated and span in self._running
        if launch and self.node_job.launch_gated(kept, self.settings.args, span):
            with self._lock:
                wanted = span in self._running
                if wanted:
                    self._early[kept] = (span, time.monotonic())
            if not wanted:  # it ended whole meanwhile
                self.node_job.cancel_gated(kept, remove=True)
                return
        if not self._say(span, "cut"):
            self.node_job.interrupt(span)

    def adopt_early(self, span: Span, since: float) -> None:
        """A first band whose POV-Ray was started at its gate before the job's parts began (a
        radiosity still's, during its pretrace): the part that renders it opens the gate."""
        with self._lock:
            self._early[span] = (None, since)

    def drop_early(self, kept: Span) -> None:
        """A continuation started early that will not be asked for (its band ended
        whole, or failed): stopped."""
        with self._lock:
            early = self._early.pop(kept, None)
        if early is not None:
            self.controls.put(("cancel", kept, None))

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
            action, span, kept = item
            try:
                if action == "cut" and kept is not None:
                    self._cut(span, kept)
                elif action == "cancel":
                    self.node_job.cancel_gated(span, remove=True)
                elif not self._say(span, "stop"):
                    self.node_job.stop_part(span)
            except Exception:  # noqa: BLE001 - a node that does not answer: its part's own command reports it
                pass
