"""A still's part is trusted only when POV-Ray says it rendered every pixel of the part's own region."""

from __future__ import annotations

from fabfile.coordinator import Geometry
from fabfile.events import Part
from fabfile.jobs import create_job
from fabfile.plan import column_ranges, plan_still


def geometry(tmp_path, width: int = 64, height: int = 64) -> Geometry:
    plan = plan_still(height, 16)
    job = create_job(
        tmp_path, tmp_path / "a.pov", cluster="cluster.yaml", options={}, settings={"width": width},
        plan_kind=plan.kind, plan_units=[list(u) for u in plan.units], output="out.png",
    )
    return Geometry(job, 1, column_ranges(width, 16))


def test_a_part_whose_pixels_were_all_rendered_is_trusted(tmp_path):
    shape = geometry(tmp_path)
    band = Part(0, 1)  # rows 1-32 of a 64-wide image
    assert shape.unrendered(band, (2048, 2048), continued=False) is None
    assert shape.unrendered(band, (1024, 2048), continued=True) is None  # the rest came from its state file
    assert shape.unrendered(band, None, continued=True) is None  # all of it did: POV-Ray counts nothing


def test_a_part_that_is_not_what_povray_rendered_is_refused(tmp_path):
    shape = geometry(tmp_path)
    band = Part(0, 1)
    assert "1024 of 2048" in shape.unrendered(band, (1024, 2048), continued=False)
    assert "which has 2048" in shape.unrendered(band, (1024, 1024), continued=False)  # another region's file
    assert "did not say" in shape.unrendered(band, None, continued=False)
    assert shape.unrendered(band, (4096, 2048), continued=True) is not None


def test_a_part_narrowed_to_block_columns_counts_its_columns_only(tmp_path):
    shape = geometry(tmp_path)
    narrowed = Part(2, 2, columns=(0, 1))  # rows 33-48, the first two 16-pixel block columns
    assert shape.region_pixels(narrowed) == 16 * 32
    assert shape.unrendered(narrowed, (512, 512), continued=False) is None
    assert shape.unrendered(narrowed, (1024, 1024), continued=False) is not None
