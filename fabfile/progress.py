"""How a job tells the user what happens: progress while it runs, words when needed.

The core calls a Reporter; the CLI passes a RichReporter (a progress bar
with ETA and a line per node), tests and scripts a QuietReporter.
"""

from __future__ import annotations

import sys
from typing import Protocol

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class JobOnly(ProgressColumn):
    """A column shown on the job's line only; node lines are just their text."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self.inner = inner

    def render(self, task: Task) -> RenderableType:
        return Text("") if task.fields.get("node") else self.inner.render(task)


class Reporter(Protocol):
    def info(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...
    def start(self, total: int, done: int, unit: str, nodes: list[str]) -> None: ...
    def advance(self, node: str, units: int, parts: int) -> None: ...
    def running(self, units: int) -> None: ...
    def stop(self) -> None: ...


class QuietReporter:
    """Keeps what it is told, prints nothing."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []

    def info(self, text: str) -> None:
        self.messages.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def start(self, total: int, done: int, unit: str, nodes: list[str]) -> None:
        pass

    def advance(self, node: str, units: int, parts: int) -> None:
        pass

    def running(self, units: int) -> None:
        pass

    def stop(self) -> None:
        pass


class RichReporter:
    """A progress bar with ETA for the job and a line per node, on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 160)
        self._progress: Progress | None = None
        self._job: TaskID | None = None
        self._nodes: dict[str, TaskID] = {}
        self._counts: dict[str, list[int]] = {}
        self._unit = "rows"
        self._total = self._done = self._running = 0

    def info(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        self.console.print(f"warning: {text}", style="yellow", highlight=False, markup=False, soft_wrap=True)

    def start(self, total: int, done: int, unit: str, nodes: list[str]) -> None:
        self._unit = unit
        self._total, self._done, self._running = total, done, 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            JobOnly(BarColumn()),
            JobOnly(MofNCompleteColumn()),
            JobOnly(TextColumn(unit)),
            JobOnly(TimeElapsedColumn()),
            JobOnly(TextColumn("ETA")),
            JobOnly(TimeRemainingColumn()),
            console=self.console,
            transient=False,
            # Rich redraws 10 times a second by default: 5% of a core in a terminal, taken
            # from POV-Ray when the farm renders on this machine. Progress comes every few
            # tenths of a second anyway.
            refresh_per_second=2,
        )
        self._job = self._progress.add_task("render", total=total, completed=done)
        for node in nodes:
            self._counts[node] = [0, 0]
            self._nodes[node] = self._progress.add_task(f"  {node}: 0 parts", total=None, node=True)
        self._progress.start()

    def advance(self, node: str, units: int, parts: int) -> None:
        if self._progress is None or self._job is None:
            return
        self._done += units
        self._show()
        counts = self._counts.setdefault(node, [0, 0])
        counts[0] += parts
        counts[1] += units
        if node in self._nodes:
            self._progress.update(
                self._nodes[node], description=f"  {node}: {counts[0]} parts, {counts[1]} {self._unit}"
            )

    def running(self, units: int) -> None:
        """Units finished inside parts still running (from POV-Ray's progress)."""
        self._running = units
        self._show()

    def _show(self) -> None:
        if self._progress is not None and self._job is not None:
            self._progress.update(self._job, completed=min(self._total, self._done + self._running))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
