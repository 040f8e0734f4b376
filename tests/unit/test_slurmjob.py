"""The Slurm engine's pure parts: the task script, sbatch's line, reading a look, following parts."""

import subprocess

import pytest

from fabfile.errors import JobError
from fabfile.inventory import SlurmOptions
from fabfile.slurmjob import (
    HELD_LOOKS,
    ArrayBook,
    Finished,
    Look,
    band_units,
    look_command,
    parse_array_id,
    parse_cpus,
    parse_look,
    sbatch_argv,
    task_script,
)


def test_the_task_script_runs_the_part_of_its_array_index_and_leaves_its_status(tmp_path):
    scene, parts = tmp_path / "scene dir", tmp_path / "parts"
    scene.mkdir()
    script = task_script("job-1", [("rows-0001-0010", ["sh", "-c", "echo one >&2"]),
                                   ("rows-0011-0020", ["sh", "-c", "echo 'it''s two' >&2; exit 3"])],
                         str(scene), str(parts))
    path = tmp_path / "array.sh"
    path.write_text(script)
    for index in (0, 1):
        env = {"SLURM_ARRAY_TASK_ID": str(index), "SLURMD_NODENAME": "n7", "PATH": "/usr/bin:/bin"}
        subprocess.run(["bash", str(path)], env=env, check=False)
    first, second = parts / "rows-0001-0010", parts / "rows-0011-0020"
    assert (first / "rc").read_text() == "0\n" and (first / "log").read_text() == "one\n"
    assert (second / "rc").read_text() == "3\n" and (second / "log").read_text() == "its two\n"
    assert (first / "node").read_text() == "n7\n"
    start, end = map(float, (first / "times").read_text().split())
    assert 0 <= end - start < 60


def test_sbatch_gets_one_array_named_for_the_job_with_the_inventorys_options():
    options = SlurmOptions(partition="render", time="00:30:00", cpus_per_task=4, account="vis")
    argv = sbatch_argv(options, "20261205-nebula-abc", 6, "/scratch/job", "/scratch/job/slurm/array-1.sh")
    assert argv[0] == "sbatch" and argv[-1] == "/scratch/job/slurm/array-1.sh"
    for option in ("--parsable", "--array=0-5", "--job-name=povfarm-20261205-nebula-abc", "--time=00:30:00",
                   "--cpus-per-task=4", "--partition=render", "--account=vis", "--requeue"):
        assert option in argv
    assert not any(a.startswith("--partition") for a in sbatch_argv(SlurmOptions(), "j", 1, "/r", "/r/s.sh"))


def test_sbatchs_job_id_is_read_with_or_without_a_cluster_name():
    assert parse_array_id("1234\n") == "1234"
    assert parse_array_id("1234;big\n") == "1234"


def test_tasks_at_once_count_cpus_that_are_up_in_whole_tasks():
    assert parse_cpus("0/8/0/8\n", 1) == 8
    assert parse_cpus("2/6/4/12\n", 4) == 2  # 4 CPUs down or drained
    assert parse_cpus("", 1) == 0


def test_a_look_reads_squeue_the_rc_files_and_the_logs_tails():
    output = ("12_0 RUNNING\n12_1 PENDING\n--povfarm-rc--\nrows-0001-0010 0 n1 100.5 103.0\n"
              "rows-0011-0020 139 n2\n--povfarm-log-- rows-0021-0030\nRendered 320 of 3200 pixels\n")
    look = parse_look(output.replace("PENDING", "PENDING Resources"))
    assert look.alive == {"12_0": "RUNNING", "12_1": "PENDING"}
    assert look.reasons == {"12_1": "Resources"}
    assert look.finished["rows-0001-0010"] == Finished(0, "n1", 100.5, 103.0)
    assert look.finished["rows-0011-0020"] == Finished(139, "n2", None, None)
    assert "Rendered 320 of 3200" in look.logs["rows-0021-0030"]
    command = look_command(SlurmOptions(), "j", "/w/parts", ["rows-0021-0030"])
    assert "--name=povfarm-j" in command and "rows-0021-0030/log" in command


def test_parts_are_done_failed_or_lost_by_what_a_look_shows():
    book = ArrayBook(["a", "b", "c", "d"], max_failures=1)
    book.submitted("7", ["a", "b", "c", "d"])
    look = Look(alive={"7_3": "RUNNING"}, finished={"a": Finished(0), "b": Finished(2)})
    assert book.observe(look) == (["a"], ["b"], [])  # c: gone without an rc, once: not yet lost
    assert book.observe(Look(alive={"7_3": "RUNNING"})) == ([], [], ["c"])
    assert book.flying == {"d": "7_3"}
    assert book.retry("c") and book.waiting == ["c"]
    book.submitted("8", ["c"])
    assert book.observe(Look(alive={"7_3": "RUNNING"})) == ([], [], [])
    assert book.observe(Look(alive={"7_3": "RUNNING"})) == ([], [], ["c"])
    assert not book.retry("c")  # failed twice with max_failures 1: the job stops
    assert not book.finished


def test_a_task_still_in_squeue_is_not_judged_by_an_old_rc_file():
    book = ArrayBook(["a"])
    book.submitted("7", ["a"])
    # Slurm requeued the task: the rc of its first run is still there while it runs again.
    assert book.observe(Look(alive={"7_0": "RUNNING"}, finished={"a": Finished(1)})) == ([], [], [])
    assert book.observe(Look(alive={"7_0": "COMPLETING"}, finished={"a": Finished(0)})) == (["a"], [], [])
    assert book.finished


def test_a_resumed_job_follows_the_tasks_an_earlier_session_left_in_squeue():
    book = ArrayBook(["x", "y", "z"])
    adopted = book.adopt({"5": ["x", "y"], "6": ["z"]}, {"5_1": "RUNNING", "6_0": "PENDING"})
    assert adopted == ["y", "z"] and book.waiting == ["x"]
    assert book.flying == {"y": "5_1", "z": "6_0"}


def test_a_still_gets_bands_of_about_equal_cost_per_task_slot():
    units = list(range(12))
    assert band_units(units, dict.fromkeys(units, 1.0), 2, 3) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]
    dear_top = {u: (10.0 if u < 3 else 1.0) for u in units}
    assert band_units(units, dear_top, 2, 2) == [(0, 0), (1, 1), (2, 2), (3, 11)]
    assert band_units([3, 4], {3: 1.0, 4: 1.0}, 8, 3) == [(3, 3), (4, 4)]


def test_tasks_slurm_will_never_start_are_told_from_tasks_that_wait_their_turn():
    book = ArrayBook(["a", "b"])
    book.submitted("9", ["a", "b"])
    output = "9_0 PENDING PartitionTimeLimit\n9_1 PENDING PartitionTimeLimit\n--povfarm-rc--\n"
    assert [book.never_starts(parse_look(output)) for _ in range(HELD_LOOKS - 1)] == [None] * (HELD_LOOKS - 1)
    assert book.never_starts(parse_look(output)).startswith("PartitionTimeLimit: its time limit (slurm.time)")
    assert book.never_starts(parse_look(output.replace("PartitionTimeLimit", "Priority"))) is None
    for _ in range(HELD_LOOKS):  # one task runs: the job is not held
        assert book.never_starts(parse_look("9_0 RUNNING None\n9_1 PENDING PartitionTimeLimit\n")) is None


def test_sbatch_printing_no_job_id_is_a_clear_error():
    with pytest.raises(JobError, match="sbatch printed 'Submitted batch job 12', not a job id"):
        parse_array_id("Submitted batch job 12\n")
