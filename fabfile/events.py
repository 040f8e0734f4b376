"""The scheduler's language: parts, the events it is told, the commands it gives.

Plain frozen values, so that the coordinator, the workers, the simulator and
the tests all speak of the same things.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """Units first..last (indices into the plan), one attempt of them; `columns`
    (block column indices, inclusive) narrows its last unit to those columns."""

    first: int
    last: int
    attempt: int = 1
    columns: tuple[int, int] | None = None

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def units(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def whole(self) -> range:
        """The units it renders across the full width."""
        return range(self.first, self.last) if self.columns else self.units


# -- events in -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class Interrupt:
    """The user stopped the job: each running part keeps what it has rendered, nothing more starts."""

    now: float


@dataclass(frozen=True)
class Progress:
    """A running part has finished `units_done` of its units (from its first, those
    restored from a state file included; fractions within a unit, and a last unit
    narrowed to some columns counting as one)."""

    node: str
    part: Part
    units_done: float
    now: float


@dataclass(frozen=True)
class PartDone:
    node: str
    part: Part
    now: float
    cpu: float | None = None  # POV-Ray's CPU seconds for the units this run rendered
    startup: float | None = None  # POV-Ray's idle seconds (wall minus CPU), its start-up
    setup: float = 0.0  # POV-Ray's seconds before tracing: parsing, photons...
    weights: tuple[float, ...] | None = None  # how that CPU fell on the units, if the log told


@dataclass(frozen=True)
class PartStopped:
    """A part's POV-Ray stopped as a cut asked; its state file holds `units_done`."""

    node: str
    part: Part
    units_done: float
    now: float
    cpu: float | None = None
    weights: tuple[float, ...] | None = None  # how that CPU fell on the units it rendered, if the log told


@dataclass(frozen=True)
class PartFailed:
    node: str
    part: Part
    reason: str
    now: float
    node_fault: bool = True  # False: the scene's or the user's fault, not the node's


@dataclass(frozen=True)
class NodeLost:
    node: str
    reason: str
    now: float


Event = Tick | Interrupt | Progress | PartDone | PartStopped | PartFailed | NodeLost


# -- commands out --------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Render `part` on `node`; with `resume_from`, continue that part's state file."""

    node: str
    part: Part
    resume_from: Part | None = None
    units_before: float = 0.0  # units of the part in that state file


@dataclass(frozen=True)
class Cut:
    """Stop `part`'s POV-Ray on `node`: it will continue over first..keep_last, or,
    with `keep_column`, over all its units with its last narrowed up to that column
    (a band of several units then renders on until it has that column)."""

    node: str
    part: Part
    keep_last: int
    keep_column: int | None = None

    @property
    def kept(self) -> Part:
        """What the part continues over once stopped."""
        return kept_part(self.part, self.keep_last, self.keep_column)


def kept_part(part: Part, keep_last: int | None, keep_column: int | None) -> Part:
    """What a part cut after unit `keep_last`, or after block column `keep_column` of its
    last unit, continues over."""
    if keep_column is not None:
        first = part.columns[0] if part.columns else 0
        return Part(part.first, part.last, part.attempt, (first, keep_column))
    return Part(part.first, part.last if keep_last is None else keep_last, part.attempt)


HUNG = "presumed hung"  # a Stop's reason when the part is handed on: its outcome is still awaited


@dataclass(frozen=True)
class Stop:
    """End `part`'s POV-Ray on `node`: nobody will use what it renders (but the
    scheduler still awaits how a hung part ends, to know its node answers)."""

    node: str
    part: Part
    reason: str


@dataclass(frozen=True)
class Keep:
    """A finished part's output is new: record it and stitch it; `new_units` are
    the units it completed."""

    node: str
    part: Part
    new_units: tuple[int, ...]


@dataclass(frozen=True)
class Warn:
    text: str  # "{part}" in it stands for the rows or frames of `part`
    part: Part | None = None
    node: str | None = None  # the node it is about, if one


@dataclass(frozen=True)
class LeaveOut:
    node: str
    reason: str


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class GiveUp:
    reason: str


Command = Start | Cut | Stop | Keep | Warn | LeaveOut | Finish | GiveUp
