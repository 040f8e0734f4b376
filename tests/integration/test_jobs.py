"""inv jobs lists what renders/ holds; inv clean removes jobs here and on their nodes (real sshd nodes)."""

from __future__ import annotations

import datetime
import json

from tests.conftest import SCENES, copy_scene, run_inv, write_inventory


def test_jobs_are_listed_and_cleaned_here_and_on_the_nodes(ssh_cluster, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    remote = tmp_path / "remote"
    write_inventory(tmp_path, ssh_cluster.inventory(workdir=str(remote)))
    for size in ("--width=32", "--width=48"):
        done = run_inv("render", f"--scene={scene}", size, "--height=32", "--keep-remote", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    # In the order they were made: two jobs of one second have ids that sort either way.
    records = (tmp_path / "renders").glob("*/job.json")
    first, second = (p.parent for p in sorted(records, key=lambda p: json.loads(p.read_text())["created"]))
    unfinished = json.loads((second / "job.json").read_text())
    listed = run_inv("jobs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for folder, size in ((first, "32x32"), (second, "48x32")):
        line = next(line for line in listed.stdout.splitlines() if folder.name in line)
        assert "scene.pov" in line and "done" in line and size in line and "node1, node2, node3" in line
    assert sorted(p.name for p in remote.iterdir()) == sorted([first.name, second.name])

    one = run_inv("clean", f"--job={first.name}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert f"removed job {first.name}" in one.stdout
    assert not first.exists() and [p.name for p in remote.iterdir()] == [second.name]

    unfinished["status"] = "interrupted"  # only done jobs go by date
    (second / "job.json").write_text(json.dumps(unfinished))
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    kept = run_inv("clean", f"--done-before={tomorrow}", cwd=tmp_path)
    assert kept.returncode == 0 and "no job to remove" in kept.stdout and second.exists()
    unfinished["status"] = "done"
    (second / "job.json").write_text(json.dumps(unfinished))
    dated = run_inv("clean", f"--done-before={tomorrow}", cwd=tmp_path)
    assert dated.returncode == 0, dated.stderr
    assert not second.exists() and not list(remote.iterdir())


def test_clean_without_a_choice_or_with_a_bad_date_says_so(tmp_path):
    for args, said in (([], "give --job ID, or --done-before"), (["--done-before=12/05"], "YYYY-MM-DD")):
        result = run_inv("clean", *args, cwd=tmp_path)
        assert result.returncode == 1 and said in result.stderr and "Traceback" not in result.stderr
