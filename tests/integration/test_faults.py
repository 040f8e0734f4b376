"""Real faults on real sshd nodes: power cuts, hangs, interrupts, nodes down at the start."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from fabfile.plan import parse_part_name
from fabfile.radiosity import pretrace_strips
from tests.conftest import REPO, SCENES, assert_same_pixels, copy_scene, reference, run_inv, wait_for, write_inventory
from tests.sshnodes import povrays_in

SIZE = ["--width=160", "--height=320"]
REF_SIZE = ["+W160", "+H320"]
COST = "Declare=Samples=300"


def start_render(folder: Path, scene: Path, *extra: str, cost: str = COST) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *extra, "render", f"--scene={scene}",
         *SIZE, f"--args={cost}", "--output=out.png"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def parts_done(folder: Path) -> int:
    records = list((folder / "renders").glob("*/job.json"))
    if not records:
        return 0
    try:
        return len(json.loads(records[0].read_text())["parts"])
    except ValueError:
        return 0  # caught mid-rename


def resume(tmp_path: Path, scene: Path, cost: str = COST):
    return run_inv("render", f"--scene={scene}", *SIZE, f"--args={cost}", "--output=out.png", "--resume", cwd=tmp_path)


def slow_scene(tmp_path: Path) -> Path:
    return copy_scene(SCENES / "slow" / "slow.pov", tmp_path / "scene")


def many_parts(tmp_path: Path) -> list[str]:
    """Options for a job of many small parts (guided, no cuts): some finish while others run."""
    config = tmp_path / "many-parts.yaml"
    config.write_text("povfarm:\n  render:\n    cuts: false\n")
    return ["-f", str(config)]


def expected_image(scene: Path, tmp_path: Path, cost: str = COST) -> Path:
    return reference(scene, *REF_SIZE, cost, out=tmp_path / "ref.png")


def test_a_node_that_loses_power_mid_render_is_replaced(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    victim = own_cluster.nodes[1]
    process = start_render(tmp_path, scene)
    wait_for(lambda: victim.povray_pids(), what="node2 rendering")
    victim.power_cut()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "node2" in err and "goes back to the queue" in err
    assert "Traceback" not in err
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path))


def test_a_hung_node_is_detected_and_its_part_rendered_elsewhere(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    config = tmp_path / "fast-hang.yaml"
    config.write_text("povfarm:\n  render:\n    hang_grace: 3\n    hang_factor: 3\n")
    victim = own_cluster.nodes[2]
    cost = "Declare=Samples=900"  # node3's band: seconds of work left when it wakes
    process = start_render(tmp_path, scene, "-f", str(config), cost=cost)
    # Frozen while the others render their bands: once they finish, the pace is known. Frozen
    # while tracing: POV-Ray frozen in its start-up gives up by itself once thawed.
    victim_logs = own_cluster.folder / "shared-work"
    wait_for(lambda: any("Rendered" in log.read_text(errors="replace")
                         for log in victim_logs.glob("*/node3/parts/*/log")), what="node3 tracing")
    frozen = victim.freeze()
    try:
        out, err = process.communicate(timeout=300)
    finally:
        victim.thaw(frozen)
    # Awake again, the node ends at once the part that was handed on: it renders nothing for nobody.
    node_folders = own_cluster.folder / "shared-work"
    wait_for(lambda: not povrays_in(node_folders, "node3"), timeout=1.5, what="node3's handed-on POV-Ray to end")
    assert process.returncode == 0, err
    assert "node node3" in err and "taking far longer than expected" in err
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path, cost))


def test_interrupt_stops_every_povray_and_resume_finishes_the_same_image(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    process = start_render(tmp_path, scene, *many_parts(tmp_path))
    wait_for(lambda: parts_done(tmp_path) >= 2 and own_cluster.all_povray_pids(), what="two parts")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    wait_for(lambda: not own_cluster.all_povray_pids(), timeout=10, what="no POV-Ray left on the nodes")
    kept = parts_done(tmp_path)
    assert kept >= 2
    resumed = resume(tmp_path, scene)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} parts already here" in resumed.stderr
    assert "ignoring --width, --height, --args" in resumed.stderr
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path))


def test_parts_finished_after_the_submitter_died_are_collected(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    process = start_render(tmp_path, scene, *many_parts(tmp_path))
    wait_for(lambda: parts_done(tmp_path) >= 1 and own_cluster.all_povray_pids(), what="a part running")
    process.kill()  # the laptop dies: nothing is stopped, parts finish on the nodes
    process.communicate(timeout=30)
    before = parts_done(tmp_path)
    wait_for(lambda: not own_cluster.all_povray_pids(), timeout=60, what="the nodes to finish")
    collected = run_inv("collect", cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert parts_done(tmp_path) > before
    assert "fetched" in collected.stdout
    assert "still missing; render them with: inv render --scene=scene/slow.pov --resume" in collected.stdout
    resumed = resume(tmp_path, scene)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path))
    merged = run_inv("merge", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path))


def test_a_node_down_at_the_start_is_left_out_with_a_warning(own_cluster, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, own_cluster.inventory())
    own_cluster.nodes[0].stop()
    result = run_inv("render", f"--scene={scene}", "--width=96", "--height=96", "--output=out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "leaving out node node1" in result.stderr and "connection refused" in result.stderr
    assert_same_pixels(tmp_path / "out.png", reference(scene, "+W96", "+H96", out=tmp_path / "ref.png"))


def test_the_job_folder_is_removed_from_the_nodes_unless_kept(ssh_cluster, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory(workdir=str(tmp_path / "remote")))
    result = run_inv("render", f"--scene={scene}", "--width=64", "--height=64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "remote").iterdir()) == []
    kept = run_inv("render", f"--scene={scene}", "--width=64", "--height=64", "--keep-remote", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    (job,) = (tmp_path / "remote").iterdir()
    assert sorted(p.name for p in job.iterdir()) == ["node1", "node2", "node3"]


def test_a_closed_terminal_stops_every_povray_and_keeps_the_job(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    terminal, tty = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "render", f"--scene={scene}", *SIZE,
         f"--args={COST}", "--output=out.png"],
        cwd=tmp_path, stdin=tty, stdout=tty, stderr=tty, start_new_session=True,
    )
    os.close(tty)
    try:
        wait_for(lambda: len(own_cluster.all_povray_pids()) >= 3, what="every node rendering")
        os.close(terminal)  # the terminal window closes: writes to it fail from now on
        process.send_signal(signal.SIGHUP)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    wait_for(lambda: not own_cluster.all_povray_pids(), timeout=15, what="no POV-Ray left on the nodes")
    (record,) = (tmp_path / "renders").glob("*/job.json")
    assert json.loads(record.read_text())["status"] == "interrupted"


def test_a_job_in_use_is_refused_to_every_other_command(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    process = start_render(tmp_path, scene)
    try:
        wait_for(lambda: own_cluster.all_povray_pids(), what="the render running")
        for command in (["render", f"--scene={scene}", "--resume"], ["collect"], ["merge"]):
            refused = run_inv(*command, cwd=tmp_path)
            assert refused.returncode == 1, refused.stderr
            assert f"is in use by process {process.pid} (inv render)" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path))


def test_a_scene_changed_before_resume_is_refused(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    process = start_render(tmp_path, scene, *many_parts(tmp_path))
    wait_for(lambda: parts_done(tmp_path) >= 1, what="a part done")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    original = scene.read_text()
    scene.write_text(original.replace("Samples", "Samples + 1", 1) if "Samples" in original else original + "\n")
    refused = resume(tmp_path, scene)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "slow.pov changed since the job started" in refused.stderr and "without --resume" in refused.stderr
    scene.write_text(original)  # undone: the job goes on, to the same image
    resumed = resume(tmp_path, scene)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path))


def test_a_damaged_or_deleted_part_is_named_and_rendered_again(ssh_cluster, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory())
    size = ["--width=96", "--height=192"]
    first = run_inv("render", f"--scene={scene}", *size, "--output=out.png", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    expected = reference(scene, "+W96", "+H192", out=tmp_path / "ref.png")
    parts = sorted((tmp_path / "renders").glob("*/parts/*.png"))
    assert len(parts) >= 2
    truncated = parts[0].read_bytes()[: parts[0].stat().st_size // 2]
    parts[0].write_bytes(truncated)
    parts[-1].unlink()
    merged = run_inv("merge", cwd=tmp_path)
    assert merged.returncode == 1 and "Traceback" not in merged.stderr
    assert f"{parts[0].name} is damaged" in merged.stderr and "--resume" in merged.stderr
    assert (parts[0].parent / "damaged" / parts[0].name).read_bytes() == truncated  # kept for a look
    resumed = run_inv("render", f"--scene={scene}", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_pixels(tmp_path / "out.png", expected)
    parts[-1].unlink()  # a part deleted from a finished job: --resume finds the job again
    again = run_inv("render", f"--scene={scene}", "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_same_pixels(tmp_path / "out.png", expected)


def band_progress(cluster) -> list[float]:
    """How far each running band's POV-Ray says it is, from the logs on the (shared) disk."""
    shares = []
    for log in cluster.folder.glob("shared-work/*/*/parts/*/log"):
        counts = re.findall(r"Rendered (\d+) of (\d+) pixels", log.read_text(errors="replace"))
        shares.append(int(counts[-1][0]) / int(counts[-1][1]) if counts else 0.0)
    return shares


def test_an_interrupt_keeps_what_each_band_rendered_and_resume_renders_only_the_rest(own_cluster, tmp_path):
    scene = slow_scene(tmp_path)
    write_inventory(tmp_path, own_cluster.inventory())
    cost = "Declare=Samples=1200"  # about 15 s: time to see every band well under way
    process = start_render(tmp_path, scene, cost=cost)
    wait_for(lambda: len(band_progress(own_cluster)) == 3 and min(band_progress(own_cluster)) >= 0.4,
             what="every band well under way")
    assert parts_done(tmp_path) == 0  # one band per node, none finished: all in progress
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=90)
    assert process.returncode == 130, err
    assert "keeping what each part has rendered" in err
    wait_for(lambda: not own_cluster.all_povray_pids(), timeout=10, what="no POV-Ray left on the nodes")
    (record,) = (tmp_path / "renders").glob("*/job.json")
    kept = [parse_part_name(name) for name in json.loads(record.read_text())["parts"]]
    kept_rows = sum(span.size for span in kept)
    assert kept_rows >= 0.3 * 320, (kept, err)  # each band kept the rows it had rendered
    assert "goes back to the queue" not in err
    resumed = resume(tmp_path, scene, cost)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} parts already here" in resumed.stderr
    assert_same_pixels(tmp_path / "out.png", expected_image(scene, tmp_path, cost))


def start_cornell(tmp_path: Path, cluster, *extra: str) -> tuple[Path, subprocess.Popen]:
    """A radiosity still (POV-Ray's cornell.pov, 384x288) rendering on the cluster."""
    from tests.integration.test_render import EXAMPLES

    scene = copy_scene(EXAMPLES / "radiosity" / "cornell.pov", tmp_path / "scene")
    write_inventory(tmp_path, cluster.inventory())
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *extra, "render", f"--scene={scene}",
         "--width=384", "--height=288", "--output=out.png"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    logs = cluster.folder / "shared-work"
    wait_for(lambda: any("Rendered" in log.read_text(errors="replace")
                         for log in logs.glob("*/node2/parts/pretrace-*/log")), what="node2 gathering its pretrace")
    return scene, process


def assert_rendered_seam_free_without_node2(tmp_path: Path, scene: Path) -> None:
    from tests.integration.test_render import assert_seam_free, farthest_two_thread_run

    record = json.loads(next((tmp_path / "renders").glob("*/job.json")).read_text())
    assert {part["node"] for part in record["parts"].values()} <= {"node1", "node3"}, record["parts"]
    one = reference(scene, "+W384", "+H288", out=tmp_path / "ref1.png")
    two = farthest_two_thread_run(scene, ["+W384", "+H288"], one)
    starts = sorted({parse_part_name(name).start for name in record["parts"]})
    strips = [first for first, _ in pretrace_strips(384, len(record["nodes"]))]  # as gathered
    assert_seam_free(tmp_path / "out.png", one, two, starts, noise_factor=2.0, column_starts=strips)


def test_a_node_that_loses_power_while_gathering_the_pretrace_is_replaced(own_cluster, tmp_path):
    # A radiosity still's first phase: each node gathers one strip's pretrace. node2 dies
    # in the middle of its strip: that strip goes to a node that finished, and the bands of
    # the second phase go to the two nodes left, every one with the whole pretrace.
    scene, process = start_cornell(tmp_path, own_cluster)
    own_cluster.nodes[1].power_cut()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "node2" in err and "Traceback" not in err
    assert_rendered_seam_free_without_node2(tmp_path, scene)


def test_a_node_that_hangs_while_gathering_the_pretrace_is_left_out(own_cluster, tmp_path):
    # node2 freezes in the middle of its strip's pretrace: past the hang limit its strip goes
    # to a node that finished, and the job renders on the two others, seam-free.
    config = tmp_path / "fast-hang.yaml"
    config.write_text("povfarm:\n  render:\n    hang_grace: 3\n    hang_factor: 3\n")
    scene, process = start_cornell(tmp_path, own_cluster, "-f", str(config))
    victim = own_cluster.nodes[1]
    frozen = victim.freeze()
    try:
        out, err = process.communicate(timeout=300)
    finally:
        victim.thaw(frozen)
    assert process.returncode == 0, err
    assert "node2" in err and "its pretrace took too long" in err and "Traceback" not in err
    assert_rendered_seam_free_without_node2(tmp_path, scene)
