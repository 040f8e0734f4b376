"""What every engine's render shares: its pacing, its summary, and how it is stopped."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fabfile.errors import JobError
from fabfile.jobs import Job
from fabfile.scheduler import Policy
from fabfile.summary import NodeSummary, summarise


@dataclass(frozen=True)
class Tuning:
    """How the farm paces itself; invoke.yaml may change these."""

    cuts: bool = True  # stills: one band per slot, then cut the band that will end last
    overlap: int = 1  # frames: parts per node beyond its cores, to hide POV-Ray's start-up
    guided_factor: float = 1.5
    latency_factor: float = 1.0
    max_failures: int = 2
    hang_grace: float = 20.0
    hang_factor: float = 4.0
    stop_timeout: float = 10.0  # seconds a node may take to stop its POV-Rays
    tick: float = 0.5  # seconds between the scheduler's looks at the clock

    def policy(self) -> Policy:
        return Policy(
            cuts=self.cuts, guided_factor=self.guided_factor, max_failures=self.max_failures,
            hang_grace=self.hang_grace, hang_factor=self.hang_factor, latency_factor=self.latency_factor,
        )


@dataclass
class RenderSummary:
    job: Job
    output: Path
    wall_seconds: float
    unit: str
    nodes: list[NodeSummary] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def record_done(job: Job, timings: Mapping[str, float]) -> list[NodeSummary]:
    """Mark a rendered job done with its figures and what each node did (saved); the summary."""
    job.status = "done"
    job.timings = {key: round(value, 3) for key, value in timings.items()}
    nodes_summary = summarise(job)
    job.summary = [node.as_json() for node in nodes_summary]
    job.save()
    return nodes_summary


def part_args(job: Job) -> list[str]:
    """The POV-Ray options every part of the job gets, its thread count included."""
    return [*job.options["job_args"], f"+WT{job.options['threads']}"]


class JobInterrupted(JobError):
    """The user stopped the job; finished parts are kept."""


class signals_interrupt:
    """SIGTERM and SIGHUP (a closed terminal) stop the job as Ctrl-C does."""

    def __enter__(self) -> None:
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self.previous[sig] = signal.signal(sig, _raise_interrupt)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum: int, frame: object) -> None:
    if signum == signal.SIGHUP:
        # The terminal is gone: a write to it would fail (EIO) and end the job
        # before its POV-Rays are stopped. What is left to say goes nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    raise KeyboardInterrupt
