import time
from pathlib import Path

import pytest

from fabfile.jobs import JobInUse, create_job, earlier_costs, hold_job, resume_command
from fabfile.plan import plan_still


def new_still(renders: Path, scene: Path, height: int):
    plan = plan_still(height)
    return create_job(
        renders, scene, cluster="cluster.yaml", options={}, settings={}, plan_kind=plan.kind,
        plan_units=[list(unit) for unit in plan.units], output="out.png",
    )


def test_a_still_starts_from_the_costs_its_last_finished_render_measured(tmp_path):
    scene = tmp_path / "nebula.pov"
    first = new_still(tmp_path / "renders", scene, 64)
    assert earlier_costs(first) is None  # nothing rendered before
    first.status, first.unit_costs = "done", [3.0, 1.0]
    first.save()
    unfinished = new_still(tmp_path / "renders", scene, 64)  # interrupted, no costs: not used
    unfinished.unit_costs = [9.0, 9.0]
    unfinished.save()
    other = new_still(tmp_path / "renders", tmp_path / "elsewhere" / "nebula.pov", 64)
    other.status, other.unit_costs = "done", [1.0, 5.0]  # same name, another scene: not used
    other.save()
    time.sleep(0.01)
    bigger = new_still(tmp_path / "renders", scene, 128)
    found = earlier_costs(bigger)
    assert found is not None
    earlier, costs = found
    assert earlier.id == first.id
    assert costs == [1.5, 1.5, 0.5, 0.5]


def test_the_resume_hint_works_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scene = tmp_path / "scenes" / "my scene.pov"
    plain = new_still(Path("renders"), scene, 64)
    assert resume_command(plain) == "inv render --scene='scenes/my scene.pov' --resume"
    elsewhere = new_still(tmp_path / "out", scene, 64)
    elsewhere.cluster = str(tmp_path / "hpc.yaml")
    assert resume_command(elsewhere) == (
        "inv render --scene='scenes/my scene.pov' --resume --cluster=hpc.yaml --renders=out"
    )


def test_a_held_job_is_refused_to_a_second_holder_and_free_after(tmp_path):
    job = new_still(tmp_path / "renders", tmp_path / "a.pov", 64)
    with hold_job(job, "inv render") as held:
        assert held.id == job.id
        with pytest.raises(JobInUse, match=rf"job {job.id} is in use by process \d+ \(inv render\)"):
            with hold_job(job, "inv merge"):
                pass
    with hold_job(job, "inv merge"):
        pass
