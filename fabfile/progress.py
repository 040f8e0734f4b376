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
    def running(self, units: int, now: dict[str, str]) -> None: ...
    def eta(self, seconds: float | None) -> None: ...
    def stop(self) -> None: ...


class ProgressBook:
    """The numbers shown while a job runs, kept apart from how they look.

    Units (rows or frames) are counted once: kept ones as parts are kept, plus
    those finished inside parts still running. The count shown never goes
    backwards (rows of a part that is cut or fails return to the queue, but
    stay counted until the count passes them again), and stays below the
    total until the last part is kept. `now` says what each node renders.
    """

    def __init__(self, total: int, done: int, nodes: list[str]) -> None:
        self.total = total
        self.done = done  # units of kept parts
        self.running = 0  # units finished inside running parts
        self.shown = min(done, total)
        self.parts = dict.fromkeys(nodes, 0)
        self.units = dict.fromkeys(nodes, 0)
        self.now = dict.fromkeys(nodes, "")
        self.eta: float | None = None

    def advance(self, node: str, units: int, parts: int) -> None:
        self.done += units
        self.parts[node] = self.parts.get(node, 0) + parts
        self.units[node] = self.units.get(node, 0) + units
        self._settle()

    def set_running(self, units: int, now: dict[str, str]) -> None:
        self.running = units
        self.now = {node: now.get(node, "") for node in self.now} | now
        self._settle()

    def _settle(self) -> None:
        ceiling = self.total if self.done >= self.total else self.total - 1
        self.shown = max(self.shown, min(ceiling, self.done + self.running))
        if self.done >= self.total:
            self.shown, self.eta = self.total, 0.0

    def node_line(self, node: str, unit: str) -> str:
        line = f"  {node}: {self.parts.get(node, 0)} parts, {self.units.get(node, 0)} {unit}"
        return f"{line}; now {self.now[node]}" if self.now.get(node) else line


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

    def running(self, units: int, now: dict[str, str]) -> None:
        pass

    def eta(self, seconds: float | None) -> None:
        pass

    def stop(self) -> None:
        pass


class EtaColumn(ProgressColumn):
    """The time left as the job estimates it (fabfile.eta), not as rows go."""

    def render(self, task: Task) -> RenderableType:
        seconds = task.fields.get("eta")
        if seconds is None:
            return Text("ETA -:--:--")
        whole = int(round(seconds))
        return Text(f"ETA {whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}")


class RichReporter:
    """A progress bar with ETA for the job and a line per node, on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 160)
        self._progress: Progress | None = None
        self._job: TaskID | None = None
        self._nodes: dict[str, TaskID] = {}
        self._unit = "rows"
        self.book = ProgressBook(0, 0, [])

    def info(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        self.console.print(f"warning: {text}", style="yellow", highlight=False, markup=False, soft_wrap=True)

    def start(self, total: int, done: int, unit: str, nodes: list[str]) -> None:
        self._unit = unit
        self.book = ProgressBook(total, done, nodes)
        self._progress = Progress(
            TextColumn("{task.description}"),
            JobOnly(BarColumn()),
            JobOnly(MofNCompleteColumn()),
            JobOnly(TextColumn(unit)),
            JobOnly(TimeElapsedColumn()),
            JobOnly(EtaColumn()),
            console=self.console,
            transient=False,
            # Rich redraws 10 times a second by default: 5% of a core in a terminal, taken
            # from POV-Ray when the farm renders on this machine. Progress comes every few
            # tenths of a second anyway.
            refresh_per_second=2,
        )
        self._job = self._progress.add_task("render", total=total, completed=done, eta=None)
        for node in nodes:
            self._nodes[node] = self._progress.add_task(self.book.node_line(node, unit), total=None, node=True)
        self._progress.start()

    def advance(self, node: str, units: int, parts: int) -> None:
        self.book.advance(node, units, parts)
        self._show()

    def running(self, units: int, now: dict[str, str]) -> None:
        """Units finished inside parts still running, and what each node renders now."""
        self.book.set_running(units, now)
        self._show()

    def eta(self, seconds: float | None) -> None:
        self.book.eta = seconds
        self._show()

    def _show(self) -> None:
        if self._progress is None or self._job is None:
            return
        self._progress.update(self._job, completed=self.book.shown, eta=self.book.eta)
        for node, task in self._nodes.items():
            self._progress.update(task, description=self.book.node_line(node, self._unit))

    def stop(self) -> None:
        if self._progress is not None:
            self._show()
            self._progress.stop()
            self._progress = None
