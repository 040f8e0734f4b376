"""The report page's content, from a job record (the browser test is in tests/integration)."""

from __future__ import annotations

from PIL import Image

from fabfile.jobs import PartRecord, create_job
from fabfile.plan import plan_still
from fabfile.report import write_report


def test_the_page_maps_every_part_and_marks_each_warning_on_its_nodes_lane(tmp_path):
    plan = plan_still(40, 1)
    job = create_job(tmp_path, tmp_path / "a.pov", cluster="c.yaml", options={}, settings={"width": 20},
                     plan_kind=plan.kind, plan_units=[list(u) for u in plan.units], output=str(tmp_path / "a.png"))
    Image.new("RGB", (20, 40), (200, 10, 10)).save(tmp_path / "a.png")
    job.nodes = {"n1": {}, "n2": {}}
    job.sessions = [{"started": 0.0, "render_seconds": 4.0}]
    job.parts = {"rows-0001-0025": PartRecord("n1", 3.0, "x", 0.5), "rows-0026-0040": PartRecord("n2", 2.5, "x", 1.0)}
    job.note(2.0, "node n2: rows 26-40 is taking far longer than expected", "n2")
    job.note(3.0, "every node left is busy")  # about no node: listed, not marked on a lane
    page = write_report(job).read_text()
    assert page.count('class="part"') == 2 and page.count('class="run"') == 2
    assert page.count('class="event"') == 1 and "taking far longer" in page
    assert page.count("<li>") == 2
    assert "a.png, 20x40" in page
