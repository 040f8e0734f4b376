"""What each node did in a job, from the job's own part records.

One source for the table printed at the end, `job.json`'s `summary` and the
report page: per node, the parts and the rows (or frames) it rendered itself,
its busy time as wall time with at least one of its parts running (parts
that overlap count once), its idle time within the render, and its share of
the work. A part's record holds when it started and how long it took, in
the render session (a first render, or a --resume) that rendered it; parts
fetched by `inv collect` have no times and add no busy time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from fabfile.jobs import Job, PartRecord
from fabfile.plan import parse_part_name


@dataclass(frozen=True)
class NodeSummary:
    node: str
    parts: int
    units: float  # rows (a piece of a row counts its share of the width) or frames
    busy: float  # seconds with one or more of its parts running
    idle: float  # seconds of the job's render sessions with none
    share: float  # of the units rendered, 0-1

    def as_json(self) -> dict:
        return {key: round(value, 3) if isinstance(value, float) else value for key, value in asdict(self).items()}


def summarise(job: Job) -> list[NodeSummary]:
    """Every node that rendered a part of the job, or took part in a session of it, in name order."""
    width = int(job.settings.get("width") or 0)
    units: dict[str, float] = defaultdict(float)
    runs: dict[str, set[tuple[int, float, float]]] = defaultdict(set)  # a part's files share one run
    for name, record in job.parts.items():
        span = parse_part_name(name)
        if span is None:
            continue
        if span.columns and width:
            units[record.node] += span.size * (span.columns[1] - span.columns[0] + 1) / width
        else:
            units[record.node] += span.size
        runs[record.node].add(_run(record))
    total = sum(units.values()) or 1.0
    render_seconds = sum(session.get("render_seconds", 0.0) for session in job.sessions)
    summaries = []
    for node in sorted(set(units) | set(job.nodes)):
        busy = busy_seconds(runs.get(node, set()))
        summaries.append(NodeSummary(node, len(runs.get(node, ())), units.get(node, 0.0), busy,
                                     max(0.0, render_seconds - busy), units.get(node, 0.0) / total))
    return summaries


def _run(record: PartRecord) -> tuple[int, float, float]:
    started = -1.0 if record.started is None else record.started  # collected: no times
    return record.session, started, record.seconds


def busy_seconds(runs: set[tuple[int, float, float]]) -> float:
    """The length of the union of the runs' intervals, session by session."""
    busy = 0.0
    by_session: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for session, started, seconds in runs:
        if started >= 0 and seconds > 0:
            by_session[session].append((started, started + seconds))
    for intervals in by_session.values():
        end = -1.0
        for first, last in sorted(intervals):
            if last > end:
                busy += last - max(first, end)
                end = last
    return busy
