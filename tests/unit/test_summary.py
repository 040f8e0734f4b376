"""What each node did, from the part records: overlaps counted once, sessions apart, shares of the work."""

from __future__ import annotations

import pytest

from fabfile.jobs import PartRecord, create_job
from fabfile.plan import plan_still
from fabfile.summary import busy_seconds, summarise


def job_with(tmp_path, parts: dict[str, PartRecord], sessions=(10.0,), width: int = 100):
    plan = plan_still(40, 1)
    job = create_job(tmp_path, tmp_path / "a.pov", cluster="c.yaml", options={}, settings={"width": width},
                     plan_kind=plan.kind, plan_units=[list(u) for u in plan.units], output="o.png")
    job.parts = parts
    job.sessions = [{"started": 0.0, "render_seconds": s} for s in sessions]
    job.nodes = {"a": {}, "b": {}, "c": {}}
    return job


def test_busy_time_is_the_union_of_a_nodes_runs_session_by_session():
    assert busy_seconds({(0, 0.0, 4.0), (0, 2.0, 4.0), (0, 10.0, 1.0)}) == pytest.approx(7.0)  # 0-6 and 10-11
    assert busy_seconds({(0, 0.0, 4.0), (1, 0.0, 4.0)}) == pytest.approx(8.0)  # two renders of the job
    assert busy_seconds({(0, -1.0, 0.0)}) == 0.0  # collected: no times


def test_each_node_is_credited_with_what_it_rendered_itself(tmp_path):
    parts = {
        "rows-0001-0010": PartRecord("a", 6.0, "x", 0.0),  # a cut band: a kept its first rows...
        "rows-0011-0020": PartRecord("b", 3.0, "x", 3.0),  # ...b took the rest
        "rows-0021-0040": PartRecord("c", 8.0, "x", 0.0),
        "rows-0041-0041-c0041-0051-0100": PartRecord("b", 1.0, "x", 7.0),  # half of a row's width
        "rows-0001-0001-x": PartRecord("a", 1.0, "x", 0.0),  # not a part name: ignored
    }
    parts.pop("rows-0001-0001-x")
    summary = {node.node: node for node in summarise(job_with(tmp_path, parts))}
    assert summary["a"].units == 10 and summary["b"].units == 10.5 and summary["c"].units == 20
    assert summary["b"].parts == 2 and summary["b"].busy == pytest.approx(4.0) and summary["b"].idle == 6.0
    assert sum(node.share for node in summary.values()) == pytest.approx(1.0)
    assert summary["c"].share == pytest.approx(20 / 40.5)


def test_a_frames_part_counts_once_and_a_node_that_rendered_nothing_is_listed(tmp_path):
    parts = {f"frames-{n:04d}-{n:04d}": PartRecord("a", 2.0, "x", 1.0) for n in (1, 2, 3)}
    summary = {node.node: node for node in summarise(job_with(tmp_path, parts, sessions=(5.0, 4.0)))}
    assert summary["a"].parts == 1 and summary["a"].units == 3 and summary["a"].busy == 2.0
    assert summary["a"].idle == pytest.approx(7.0)
    assert summary["b"].parts == 0 and summary["b"].busy == 0.0 and summary["b"].share == 0.0
