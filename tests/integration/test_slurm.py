"""The Slurm engine against a real slurmctld, slurmd and munged (tests/slurmcluster.py),
its login node a real sshd on loopback: real POV-Ray renders, real pixels compared."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SCENES, assert_same_pixels, copy_scene, reference, run_inv, wait_for, write_inventory
from tests.slurmcluster import NODE, SHORT, SlurmCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def job_record(renders: Path) -> dict:
    (folder,) = [path for path in renders.iterdir() if (path / "job.json").is_file()]
    return json.loads((folder / "job.json").read_text())


def job_tasks(slurm: SlurmCluster, renders: Path) -> list[str]:
    return slurm.tasks(f"povfarm-{job_record(renders)['id']}")


def test_a_still_renders_through_slurm_identical_to_povray_alone(slurm, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, slurm.inventory())
    result = run_inv("render", "--scene", str(scene), "--width", "160", "--height", "120", "--output", "out.png",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_same_pixels(tmp_path / "out.png", reference(scene, "+W160", "+H120", out=tmp_path / "ref.png"))
    record = job_record(tmp_path / "renders")
    assert len(record["options"]["slurm_arrays"]) == 1  # one submission, every band in one array
    assert {part["node"] for part in record["parts"].values()} == {NODE}  # the node Slurm chose, as it said
    assert len(record["parts"]) > 1
    assert job_tasks(slurm, tmp_path / "renders") == []
    assert not (slurm.workdir / record["id"]).exists(), "the job's shared folder is removed once fetched"
    assert record["unit_costs"] and len(record["unit_costs"]) == len(record["plan_units"])
    assert (tmp_path / record["folder"] / "preview.png").is_file()


def test_an_animation_renders_through_slurm_frame_by_frame(slurm, tmp_path):
    scene = copy_scene(SCENES / "anim" / "anim.ini", tmp_path / "anim")
    write_inventory(tmp_path, slurm.inventory())
    result = run_inv("render", "--scene", str(scene), "--output", "frames", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reference(scene, out=tmp_path / "ref" / "anim.png")
    for frame in range(1, 6):
        assert_same_pixels(tmp_path / "frames" / f"anim{frame}.png", tmp_path / "ref" / f"anim{frame}.png")
    assert (tmp_path / "frames" / "anim.mp4").stat().st_size > 0
    assert sorted(job_record(tmp_path / "renders")["parts"]) == [f"frames-{n:04d}-{n:04d}" for n in range(1, 6)]


def test_a_task_that_fails_is_reported_and_submitted_again(slurm, tmp_path):
    # A POV-Ray that crashes the first time any task runs it, as a flaky node would.
    crashed = tmp_path / "crashed-once"
    wrapper = tmp_path / "flaky-povray"
    wrapper.write_text(f"#!/bin/sh\nif mkdir {crashed} 2>/dev/null; then echo 'Segmentation fault' >&2; exit 139; fi\n"
                       'exec povray "$@"\n')
    wrapper.chmod(0o755)
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, slurm.inventory().replace("connect_timeout: 5", f"connect_timeout: 5, povray: {wrapper}"))
    result = run_inv("render", "--scene", str(scene), "--width", "120", "--height", "90", "--output", "out.png",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "POV-Ray failed (exit 139): Segmentation fault; submitting it again" in result.stderr
    assert_same_pixels(tmp_path / "out.png", reference(scene, "+W120", "+H90", out=tmp_path / "ref.png"))
    record = job_record(tmp_path / "renders")
    assert len(record["options"]["slurm_arrays"]) == 2  # the band again, in an array of its own
    assert any("Segmentation fault" in event["text"] for event in record["events"])


def test_a_scene_error_stops_the_job_with_povrays_message(slurm, tmp_path):
    scene = tmp_path / "broken.pov"
    scene.write_text("#version 3.7;\ncamera { location <0, 0, -3> look_at 0 }\nsphere { 0, 1 pigment { rgb 1 }\n")
    write_inventory(tmp_path, slurm.inventory())
    result = run_inv("render", "--scene", str(scene), "--width", "64", "--height", "48", cwd=tmp_path)
    assert result.returncode == 1
    assert "broken.pov line" in result.stderr and "POV-Ray parse error" in result.stderr
    assert "Traceback" not in result.stderr
    assert job_tasks(slurm, tmp_path / "renders") == []


def slow_render(tmp_path: Path, *extra: str) -> subprocess.Popen:
    scene = copy_scene(SCENES / "slow" / "slow.pov", tmp_path / "scene")
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "render", "--scene", str(scene),
         "--width", "160", "--height", "160", "--args", "Declare=Samples=150", "--output", "out.png", *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def parts_here(tmp_path: Path) -> set[str]:
    folders = [path for path in (tmp_path / "renders").glob("*/parts") if path.is_dir()]
    return {path.stem for folder in folders for path in folder.glob("*.png")}


def test_ctrl_c_cancels_the_array_and_resume_submits_only_what_is_missing(slurm, tmp_path):
    write_inventory(tmp_path, slurm.inventory())
    process = slow_render(tmp_path)
    wait_for(lambda: len(parts_here(tmp_path)) >= 1, timeout=120, what="a first part")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "the job's Slurm tasks are cancelled" in err and "--resume" in err and "Traceback" not in err
    assert job_tasks(slurm, tmp_path / "renders") == []
    kept = parts_here(tmp_path)
    record = job_record(tmp_path / "renders")
    assert 1 <= len(kept) < len(record["options"]["slurm_arrays"][next(iter(record["options"]["slurm_arrays"]))])
    resumed = run_inv("render", "--scene", "scene/slow.pov", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    arrays = job_record(tmp_path / "renders")["options"]["slurm_arrays"]
    assert len(arrays) == 2
    second = set(list(arrays.values())[1])
    assert not second & kept, "a part kept before the interrupt was submitted again"
    scene = tmp_path / "scene" / "slow.pov"
    expected = reference(scene, "+W160", "+H160", "Declare=Samples=150", out=tmp_path / "ref.png")
    assert_same_pixels(tmp_path / "out.png", expected)


def test_tasks_that_outlive_the_submitter_are_collected_later(slurm, tmp_path):
    write_inventory(tmp_path, slurm.inventory())
    process = slow_render(tmp_path)
    wait_for(lambda: (tmp_path / "renders").is_dir() and any((tmp_path / "renders").glob("*/job.json"))
             and job_record(tmp_path / "renders")["options"].get("slurm_arrays"), timeout=60, what="a submission")
    process.kill()  # the laptop is gone; Slurm renders on
    process.communicate(timeout=30)
    wait_for(lambda: job_tasks(slurm, tmp_path / "renders") == [], timeout=180, what="Slurm to finish the array")
    collected = run_inv("collect", cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert "complete, wrote" in collected.stdout
    scene = tmp_path / "scene" / "slow.pov"
    assert_same_pixels(tmp_path / "out.png",
                       reference(scene, "+W160", "+H160", "Declare=Samples=150", out=tmp_path / "ref.png"))


def test_a_partition_slurm_does_not_have_is_one_clear_line(slurm, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, slurm.inventory(partition="nowhere"))
    result = run_inv("render", "--scene", str(scene), "--width", "32", "--height", "24", cwd=tmp_path)
    assert result.returncode == 1
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (slurm.workdir / job_record(tmp_path / "renders")["id"]).exists(), "uploaded for a job Slurm cannot run"


def test_a_job_slurm_will_never_start_stops_with_slurms_reason(slurm, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, slurm.inventory(partition=SHORT, time="00:05:00"))  # the partition allows 1 minute
    result = run_inv("render", "--scene", str(scene), "--width", "32", "--height", "24", cwd=tmp_path)
    assert result.returncode == 1
    assert "Slurm will not start the job's tasks (PartitionTimeLimit: its time limit (slurm.time)" in result.stderr
    assert "Traceback" not in result.stderr
    assert job_tasks(slurm, tmp_path / "renders") == []


def test_no_sbatch_on_the_login_node_is_one_clear_line(slurm, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, slurm.inventory(sinfo="/nonexistent/sinfo"))
    result = run_inv("render", "--scene", str(scene), "--width", "32", "--height", "24", cwd=tmp_path)
    assert result.returncode == 1
    assert "no /nonexistent/sinfo there" in result.stderr and "slurm-client" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_shows_the_partitions_nodes_and_their_povray(slurm, tmp_path):
    write_inventory(tmp_path, slurm.inventory())
    result = run_inv("health", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = {record["name"]: record for record in json.loads(result.stdout)}
    assert records["login"]["up"]
    assert records[NODE]["up"] and records[NODE]["povray"].startswith("POV-Ray 3.7")
    assert records[NODE]["cores"] >= 1
    table = run_inv("health", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert NODE in table.stdout and "login" in table.stdout
