"""Renders through real sshd nodes, compared pixel for pixel with POV-Ray alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from itertools import accumulate
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from fabfile.plan import parse_part_name
from fabfile.radiosity import pretrace_strips
from tests.conftest import REPO, SCENES, assert_same_pixels, copy_scene, reference, run_inv, wait_for, write_inventory

EXAMPLES = Path("/usr/share/doc/povray/examples")  # Debian's povray-examples


def job_record(folder: Path) -> dict:
    (record,) = (folder / "renders").glob("*/job.json")
    return json.loads(record.read_text())


def render_still_as_povray_would(
    cluster, tmp_path: Path, source: Path, width: int, height: int, args: str = "", nodes: int | None = None,
    settings: str = "", **inventory: object,
):
    """Render a copy of a still on the cluster (or its first `nodes`) into out.png, check it
    against POV-Ray alone; `settings`: invoke.yaml text for the render; `inventory`: the
    cluster.yaml defaults to change."""
    scene = copy_scene(source, tmp_path / "scene")
    write_inventory(tmp_path, cluster.inventory(cluster.nodes[:nodes], **inventory))
    extra = [f"--args={args}"] if args else []
    config = []
    if settings:
        (tmp_path / "settings.yaml").write_text(settings)
        config = ["-f", str(tmp_path / "settings.yaml")]
    result = run_inv(
        *config, "render", f"--scene={scene}", f"--width={width}", f"--height={height}", *extra, "--output=out.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = reference(scene, f"+W{width}", f"+H{height}", *args.split(), out=tmp_path / "ref.png")
    assert_same_pixels(tmp_path / "out.png", expected)
    return result


def test_still_with_antialiasing_and_alpha_matches_povray_alone(ssh_cluster, tmp_path):
    result = render_still_as_povray_would(ssh_cluster, tmp_path, SCENES / "still" / "scene.pov", 160, 240, "+A0.3 +UA")
    record = job_record(tmp_path)
    assert record["status"] == "done"
    assert len({part["node"] for part in record["parts"].values()}) >= 2, "the work was not shared"
    assert "out.png" in result.stdout


def test_sixteen_bit_png_keeps_its_low_byte(ssh_cluster, tmp_path):
    render_still_as_povray_would(ssh_cluster, tmp_path, SCENES / "still" / "scene.pov", 128, 100, "+A0.2 +AM2 +FN16")


def test_animation_frames_match_povray_alone(ssh_cluster, tmp_path):
    scene = copy_scene(SCENES / "anim" / "anim.pov", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory())
    result = run_inv(
        "render", f"--scene={scene}", "--width=64", "--height=48", "--frames=6", "--output=frames", "--fps=12",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "frames").glob("*.png"))
    assert [p.name for p in written] == [f"anim{i}.png" for i in range(1, 7)]
    reference(scene, "+W64", "+H48", "+KFI1", "+KFF6", out=tmp_path / "ref" / "anim.png")
    for frame in written:
        assert_same_pixels(frame, tmp_path / "ref" / frame.name)
    # Stored once: each frame is its part's file under a second name.
    (parts,) = (tmp_path / "renders").glob("*/parts")
    assert {frame.stat().st_ino for frame in written} == {part.stat().st_ino for part in parts.glob("*.png")}
    # As video: an MP4 of six frames at 12 a second and a GIF of six, as FFmpeg's own ffprobe reads them
    # (a GIF's delays are in hundredths of a second: no exact 12 a second).
    assert video_frames(tmp_path / "frames" / "anim.mp4") == (6, "12/1")
    assert video_frames(tmp_path / "frames" / "anim.gif")[0] == 6


def video_frames(path: Path) -> tuple[int, str]:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,r_frame_rate", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    (stream,) = json.loads(probe.stdout)["streams"]
    return int(stream["nb_read_frames"]), stream["r_frame_rate"]


def test_ini_scene_renders_what_povray_renders_from_the_ini(ssh_cluster, tmp_path):
    ini = copy_scene(SCENES / "anim" / "anim.ini", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory())
    # The command line overrides the INI's width, as in POV-Ray.
    result = run_inv("render", f"--scene={ini}", "--args=+W80 +SF2 +EF4", "--output=frames", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "frames").glob("*.png"))
    assert [p.name for p in written] == ["anim2.png", "anim3.png", "anim4.png"]
    reference(ini, "+W80", "+SF2", "+EF4", out=tmp_path / "ref" / "anim.png")
    for frame in written:
        assert_same_pixels(frame, tmp_path / "ref" / frame.name)


def test_default_cluster_renders_the_bundled_nebula_without_ssh(tmp_path):
    result = run_inv(
        "render", f"--scene={REPO / 'scenes' / 'nebula.pov'}", f"--cluster={REPO / 'cluster.yaml'}",
        "--width=96", "--height=72", "--output=nebula.png", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = reference(REPO / "scenes" / "nebula.pov", "+W96", "+H72", out=tmp_path / "ref.png")
    assert_same_pixels(tmp_path / "nebula.png", expected)
    assert "local" in result.stdout
    # A still uses every core of the node through POV-Ray's own threads: one band.
    (record,) = (tmp_path / "renders").glob("*/job.json")
    job = json.loads(record.read_text())
    assert job["options"]["threads"] == len(os.sched_getaffinity(0))
    assert len(job["parts"]) == 1


def test_an_animation_on_the_default_cluster_renders_a_frame_per_core(tmp_path):
    scene = copy_scene(SCENES / "anim" / "anim.pov", tmp_path / "scene")
    result = run_inv(
        "render", f"--scene={scene}", f"--cluster={REPO / 'cluster.yaml'}", "--width=32", "--height=24",
        "--frames=4", "--output=frames", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (record,) = (tmp_path / "renders").glob("*/job.json")
    assert json.loads(record.read_text())["options"]["threads"] == 1
    reference(scene, "+W32", "+H24", "+KFI1", "+KFF4", out=tmp_path / "ref" / "anim.png")
    for frame in sorted((tmp_path / "frames").glob("*.png")):
        assert_same_pixels(frame, tmp_path / "ref" / frame.name)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 4


@pytest.mark.parametrize(
    "example, args",
    [
        ("advanced/crater/crater.pov", "+A0.3"),
        ("advanced/drums2/drums.pov", "+A0.3"),
        ("advanced/woodbox.pov", "+A0.3 +AM2"),
    ],
)
def test_povray_example_scenes_match(ssh_cluster, tmp_path, example, args):
    render_still_as_povray_would(ssh_cluster, tmp_path, EXAMPLES / example, 120, 96, args)


def test_radiosity_still_shares_one_pretrace_and_shows_no_seam(ssh_cluster, tmp_path):
    # Radiosity's pretrace samples the region rendered: plain bands show a seam at every
    # boundary. The farm gathers one pretrace across the nodes; every band loads it.
    scene = copy_scene(EXAMPLES / "radiosity" / "cornell.pov", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory(ssh_cluster.nodes[:2]))
    size = ["+W384", "+H288"]
    result = run_inv("render", f"--scene={scene}", "--width=384", "--height=288", "--output=out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "radiosity from one pretrace gathered across the nodes" in result.stdout
    record = job_record(tmp_path)
    assert record["timings"]["pretrace"] > 0 and (tmp_path / record["folder"] / "radiosity.rad").stat().st_size > 0
    # The first bands' POV-Rays started up while the pretrace was gathered, and waited at their gate.
    assert record["timings"]["early_bands"] >= 1, record["timings"]
    starts = sorted({parse_part_name(name).start for name in record["parts"]})
    assert len(starts) >= 2
    # The last bands' POV-Rays wind down by themselves (~0.3 s after their PNG is whole).
    wait_for(lambda: not ssh_cluster.all_povray_pids(), timeout=5, what="no POV-Ray left on the nodes")
    one = reference(scene, *size, out=tmp_path / "ref1.png")
    two = farthest_two_thread_run(scene, size, one)
    # The pretrace was gathered in strips of columns: no seam where one strip meets the next.
    strip_starts = [first for first, _ in pretrace_strips(384, 2)]
    assert_seam_free(tmp_path / "out.png", one, two, starts, noise_factor=2.0, column_starts=strip_starts)
    # A part lost: --resume renders it again, with the cache the others loaded.
    folder = tmp_path / record["folder"]
    cache = (folder / "radiosity.rad").read_bytes()
    lost = sorted(record["parts"])[-1]
    (folder / "parts" / f"{lost}.png").unlink()
    again = run_inv("render", f"--scene={scene}", "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "gathering the pretrace" not in again.stderr and (folder / "radiosity.rad").read_bytes() == cache
    resumed = job_record(tmp_path)
    again_parts = [name for name, part in resumed["parts"].items() if part["session"] == 1]
    assert again_parts and min(parse_part_name(name).start for name in again_parts) == parse_part_name(lost).start
    kept = [name for name in resumed["parts"] if (folder / "parts" / f"{name}.png").is_file()]
    assert_seam_free(tmp_path / "out.png", one, two, sorted({parse_part_name(n).start for n in kept}), 2.0)
    # The check can fail: plain bands of POV-Ray alone, at the same boundaries, show their seams.
    plain = tmp_path / "plain.png"
    stitch_plain_bands(scene, size, starts, 288, plain)
    with pytest.raises(AssertionError, match="seam at row"):
        assert_seam_free(plain, one, two, starts, noise_factor=10.0)
    # And so do plain strips of columns, at the pretrace strips' boundaries.
    stitch_plain_bands(scene, size, strip_starts, 384, plain, columns=True)
    with pytest.raises(AssertionError, match="seam at column"):
        assert_seam_free(plain, one, two, [], noise_factor=10.0, column_starts=strip_starts)


def test_a_long_pretrace_says_how_far_it_is(ssh_cluster, tmp_path):
    # Five times cornell's radiosity samples: ~8 s of pretrace per node. Every few seconds
    # a line says how far each node's strip is, from POV-Ray's own count, never going back.
    scene = copy_scene(EXAMPLES / "radiosity" / "cornell.pov", tmp_path / "scene")
    text = scene.read_text()
    assert "count 200" in text
    scene.write_text(text.replace("count 200", "count 1000"))
    write_inventory(tmp_path, ssh_cluster.inventory(ssh_cluster.nodes[:2]))
    result = run_inv("render", f"--scene={scene}", "--width=160", "--height=120", "--output=out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = re.findall(r"gathering the pretrace: (.*)", result.stdout + result.stderr)
    assert lines, result.stdout + result.stderr
    seen: dict[str, int] = {}
    for line in lines:
        for node, share in re.findall(r"(node\d) (\d+)%", line):
            assert 0 <= int(share) <= 100 and int(share) >= seen.get(node, 0), lines
            seen[node] = int(share)
    assert seen and set(seen) <= {"node1", "node2"}, lines


def test_radiosity_switched_off_where_povfarm_cannot_see_renders_plain_bands_identical(ssh_cluster, tmp_path):
    # povfarm cannot tell `Bounce > 0`: it gathers a pretrace, and starts the first bands at
    # their gate meanwhile. POV-Ray gathers no sample: the bands render the scene itself,
    # identical to POV-Ray alone, and the POV-Rays at their gate are stopped.
    source = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "source")
    text = source.read_text()
    assert "global_settings { assumed_gamma 1.0 }" in text
    switched = "global_settings { assumed_gamma 1.0 #if (Bounce > 0) radiosity { count 20 } #end }"
    source.write_text(text.replace("global_settings { assumed_gamma 1.0 }", f"#declare Bounce = 0;\n{switched}"))
    result = render_still_as_povray_would(ssh_cluster, tmp_path, source, 160, 120, nodes=2)
    said = result.stdout + result.stderr
    assert "gathering the pretrace" in said and "POV-Ray gathered no sample" in said
    assert job_record(tmp_path)["timings"].get("early_bands", 0) == 0
    wait_for(lambda: not ssh_cluster.all_povray_pids(), timeout=5, what="no POV-Ray left on the nodes")


def test_radiosity_the_scene_hides_from_povfarm_is_named_when_povray_reports_it(ssh_cluster, tmp_path):
    scene = copy_scene(EXAMPLES / "radiosity" / "cornell.pov", tmp_path / "scene")
    text = scene.read_text()
    assert "radiosity{" in text
    scene.write_text("#macro Lighting() radiosity #end\n" + text.replace("radiosity{", "Lighting(){"))
    write_inventory(tmp_path, ssh_cluster.inventory(ssh_cluster.nodes[:2]))
    result = run_inv("render", f"--scene={scene}", "--width=64", "--height=64", "--output=out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "POV-Ray used radiosity, which povfarm did not find in the scene's code" in result.stderr
    assert job_record(tmp_path)["timings"]["radiosity_unseen"] == 1


def stitch_plain_bands(scene: Path, size: list[str], starts: list[int], extent: int, out: Path,
                       columns: bool = False) -> None:
    """POV-Ray alone, a run per band (its own pretrace each), stitched; strips of columns
    when `columns` (then `extent` is the width)."""
    canvas = None
    first, last = ("+SC", "+EC") if columns else ("+SR", "+ER")
    for start, end in zip(starts, [*(s - 1 for s in starts[1:]), extent], strict=True):
        band = out.with_name(f"band-{first}{start}.png")
        subprocess.run(["povray", f"+I{scene.name}", *size, "-D", "-P", "+WT1", f"{first}{start}", f"{last}{end}",
                        f"+O{band}"], cwd=scene.parent, check=True, capture_output=True)
        with Image.open(band) as image:
            box = (start - 1, 0, end, image.height) if columns else (0, start - 1, image.width, end)
            canvas = canvas or Image.new("RGB", image.size)
            canvas.paste(image.convert("RGB").crop(box), box[:2])
    canvas.save(out)


def test_photon_scene_bands_match_with_one_thread_count(ssh_cluster, tmp_path):
    render_still_as_povray_would(ssh_cluster, tmp_path, EXAMPLES / "lights" / "phot_met_glass.pov", 96, 128)
    assert len(job_record(tmp_path)["parts"]) >= 2


def test_a_nodes_later_parts_load_the_photon_map_its_first_part_shot(ssh_cluster, tmp_path):
    # grenadine shoots photons for 4.4 s and traces its glass unevenly: the band that ends
    # first takes pieces of the other, which load its node's map instead of shooting again.
    render_still_as_povray_would(ssh_cluster, tmp_path, EXAMPLES / "advanced" / "grenadine" / "grenadine.pov",
                                 640, 480, nodes=2)
    record = job_record(tmp_path)
    assert record["options"]["shared_photons"]
    assert record["timings"]["cuts"] >= 1 and len(record["parts"]) >= 3
    # Only the two first bands shot photons; every later part loaded a map (0.02 s).
    log = subprocess.run(["povray", "+Igrenadine.pov", "+W64", "+H48", "-D", "-P", "+WT1", "-F"],
                         cwd=tmp_path / "scene", capture_output=True, text=True, check=True).stderr
    shot = float(re.search(r"Photon Time:.*\(([\d.]+) seconds\)", log).group(1))
    assert record["timings"]["povray_photon"] < 2.5 * shot, (record["timings"], shot)


def biggest_difference(a: Image.Image, b: Image.Image) -> int:
    return max(high for _, high in ImageChops.difference(a, b).getextrema())


def row_steps(ours: Image.Image, one: Image.Image, window: int = 64) -> list[float]:
    """For each row from the second, how much the difference from POV-Ray alone changes
    from the row above: the step, smoothed along the row over `window` pixels (a seam is a
    straight line, radiosity's and random noise is not), its mean size."""
    width = ours.width
    a, b = ours.convert("L").tobytes(), one.convert("L").tobytes()
    difference = [x - y for x, y in zip(a, b, strict=True)]
    steps = []
    for row in range(1, ours.height):
        step = [difference[row * width + x] - difference[(row - 1) * width + x] for x in range(width)]
        running = [0, *accumulate(step)]
        smoothed = [(running[x + window] - running[x]) / window for x in range(width - window + 1)]
        steps.append(sum(abs(value) for value in smoothed) / len(smoothed))
    return steps


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def farthest_two_thread_run(scene: Path, size: Sequence[str], one: Path, runs: int = 3,
                            by: Callable[[Image.Image, Image.Image], float] = mean_difference) -> Path:
    """POV-Ray's own two threads, `runs` times: the run farthest from `one` (its +WT1 render)
    `by` that measure. Their noise varies from run to run (cornell at 384x288: a mean
    difference from 0.35 to 0.58), so one run stands poorly for it."""
    def from_wt1(run: Path) -> float:
        with Image.open(run) as a, Image.open(one) as b:
            return by(a.convert("RGB"), b.convert("RGB"))

    paths = [one.with_name(f"ref2-{index}.png") for index in range(runs)]
    for path in paths:
        subprocess.run(["povray", f"+I{scene.name}", *size, "-D", "-P", "+WT2", f"+O{path}"],
                       cwd=scene.parent, check=True, capture_output=True)
    return max(paths, key=from_wt1)


def assert_seam_free(farm: Path, reference_wt1: Path, reference_wt2: Path, starts: list[int],
                     noise_factor: float = 1.0, column_starts: Sequence[int] = ()) -> None:
    """The farm's still against one POV-Ray run with one thread: on average about as far from
    it as POV-Ray's own two threads are (within 1.25x), its largest difference no more than `noise_factor`
    times theirs, and at each part's first row a step in the difference (row_steps) no
    bigger than 95% of the steps inside the parts; the same at each of `column_starts`
    (the first columns of regions rendered apart, as the radiosity pretrace's strips)."""
    with Image.open(farm) as a, Image.open(reference_wt1) as b, Image.open(reference_wt2) as c:
        ours, one, two = a.convert("RGB"), b.convert("RGB"), c.convert("RGB")
    # Random streams make the two differences alike in size: a coin toss which is bigger.
    assert mean_difference(ours, one) <= 1.25 * mean_difference(two, one)
    assert biggest_difference(ours, one) <= noise_factor * biggest_difference(two, one)
    assert_no_step(row_steps(ours, one), starts, "row")
    across = Image.Transpose.TRANSPOSE  # columns become rows
    assert_no_step(row_steps(ours.transpose(across), one.transpose(across)), column_starts, "column")


def assert_no_step(steps: list[float], starts: Sequence[int], what: str) -> None:
    """No step into one of `starts` (a first row or column) above 95% of the others."""
    seams = {start - 2 for start in starts if start > 1}  # steps[i] is the step into row i + 2
    inside = sorted(step for index, step in enumerate(steps) if index not in seams)
    typical = inside[int(len(inside) * 0.95)]
    found = {index + 2: round(steps[index], 3) for index in sorted(seams)}
    assert all(steps[index] <= typical for index in seams), f"a seam at {what} {found}, against {typical:.3f} inside"


@pytest.mark.parametrize("example", ["lights/arealit3.pov", "advanced/mtmand.pov"])
def test_random_stream_scenes_render_in_bands_seam_free(ssh_cluster, tmp_path, example):
    # Jittered area lights and crand draw from one random stream per POV-Ray run: bands differ
    # from one run by the noise POV-Ray's own threads make, and show no seam.
    scene = copy_scene(EXAMPLES / example, tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory())
    result = run_inv("render", f"--scene={scene}", "--width=160", "--height=120", "--output=out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the image is seam-free" in result.stdout
    starts = [parse_part_name(name).start for name in job_record(tmp_path)["parts"]]
    assert len(starts) >= 2
    one = reference(scene, "+W160", "+H120", out=tmp_path / "ref1.png")
    # POV-Ray's own two threads are random too: arealit3's +WT2 lies 61-63 from +WT1 in 8 runs
    # of 9, 24 in the ninth.
    two = farthest_two_thread_run(scene, ["+W160", "+H120"], one, by=biggest_difference)
    assert_seam_free(tmp_path / "out.png", one, two, starts)


def test_exact_renders_a_random_stream_scene_whole_identical_to_one_thread(ssh_cluster, tmp_path):
    result = render_still_as_povray_would(ssh_cluster, tmp_path, EXAMPLES / "lights" / "arealit3.pov", 64, 96,
                                          "", settings="povfarm:\n  render:\n    exact: true\n")
    assert "identical to povray +WT1" in result.stdout
    record = job_record(tmp_path)
    assert list(record["parts"]) == ["rows-0001-0096"] and record["options"]["threads"] == 1


def test_a_slow_band_is_cut_and_continued_and_still_matches(ssh_cluster, tmp_path):
    # The top quarter holds all the cost: the node given the top band is still busy when the
    # others finish, so its POV-Ray is interrupted, continues its first rows from its state
    # file (+C) and hands the rest to an idle node.
    scene = SCENES / "uneven" / "uneven.pov"
    render_still_as_povray_would(ssh_cluster, tmp_path, scene, 160, 384, "+A0.3 Declare=Samples=1500")
    record = job_record(tmp_path)
    assert record["timings"].get("cuts", 0) >= 1, record["parts"]
    # A continuation's POV-Ray started up while the band it continues still rendered (on a
    # loaded machine one may not reach its gate in time; then it starts after the stop).
    assert record["timings"].get("gated_cuts", 0) >= 1, record["timings"]
    assert not ssh_cluster.all_povray_pids(), "a POV-Ray was left on a node"
    # The parts still tile the image: the cut band's rows are split between two parts.
    rows = sorted({(span.start, span.end) for span in map(parse_part_name, record["parts"])})
    assert rows[0][0] == 1 and rows[-1][1] == 384
    assert all(after[0] == before[1] + 1 for before, after in zip(rows, rows[1:], strict=False))
    assert len(rows) > 3
    assert len(record["unit_costs"]) == 12  # what each row block cost, kept for the next render
    assert_summary_agrees_with_the_parts(record)

    # Rendered again: the first bands are sized by those costs, and the image is the same.
    again = run_inv(
        "render", f"--scene={tmp_path / 'scene' / 'uneven.pov'}", "--width=160", "--height=384",
        "--args=+A0.3 Declare=Samples=1500", "--output=again.png", cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert f"first bands sized by the cost of rows measured in job {record['id']}" in again.stderr
    assert_same_pixels(tmp_path / "again.png", tmp_path / "ref.png")


def assert_summary_agrees_with_the_parts(record: dict) -> None:
    """job.json's summary, against the part records it is made of (worked out here afresh)."""
    (session,) = record["sessions"]
    summary = {entry["node"]: entry for entry in record["summary"]}
    for node in record["nodes"]:
        parts = [(name, part) for name, part in record["parts"].items() if part["node"] == node]
        intervals = sorted((part["started"], part["started"] + part["seconds"]) for _, part in parts)
        busy, end = 0.0, 0.0
        for first, last in intervals:
            busy += max(0.0, last - max(first, end))
            end = max(end, last)
        width = record["settings"]["width"]
        spans = [parse_part_name(name) for name, _ in parts]  # a piece of a row: its share of the width
        rows = sum(s.size * ((s.columns[1] - s.columns[0] + 1) / width if s.columns else 1) for s in spans)
        entry = summary[node]
        assert entry["parts"] == len(parts) and entry["units"] == pytest.approx(rows, abs=0.001), (node, entry, parts)
        assert entry["busy"] == pytest.approx(busy, abs=0.01)
        assert entry["busy"] <= session["render_seconds"] + 0.01
        assert entry["idle"] == pytest.approx(session["render_seconds"] - busy, abs=0.01)
    assert sum(entry["units"] for entry in summary.values()) == pytest.approx(record["settings"]["height"], abs=0.01)


def test_nodes_with_a_slow_login_shell_render_the_same_image(slow_shell_cluster, tmp_path):
    # Every command on such a node pays 0.25 s of CPU before it starts; the bands are still cut.
    render_still_as_povray_would(
        slow_shell_cluster, tmp_path, SCENES / "uneven" / "uneven.pov", 160, 384, "+A0.3 Declare=Samples=1500"
    )
    record = job_record(tmp_path)
    assert record["timings"].get("cuts", 0) >= 1
    assert not slow_shell_cluster.all_povray_pids(), "a POV-Ray was left on a node"
    # The shell's start-up is paid once per connection (povfarm's agent runs the commands), not
    # once for each of the job's commands: parts, cuts, progress, fetches' clean-up.
    assert len(record["parts"]) >= 4
    for node in slow_shell_cluster.nodes:
        assert len(node.login_shells.read_text().split()) == 1, node.name


def test_bands_of_several_threads_are_cut_and_continued_and_still_match(ssh_cluster, tmp_path):
    # A real farm's nodes have several cores, and a band runs with POV-Ray's own threads, whose
    # blocks end out of order (and whose counts arrive out of order). Here two threads share
    # each node's one core. The dear top band is cut and continued from its state file all the
    # same, and the image is POV-Ray's.
    render_still_as_povray_would(ssh_cluster, tmp_path, SCENES / "uneven" / "uneven.pov", 160, 384,
                                 "+A0.3 Declare=Samples=1500", nodes=2, threads=2)
    record = job_record(tmp_path)
    assert record["options"]["threads"] == 2
    assert record["timings"].get("cuts", 0) >= 1, record["parts"]
    assert not ssh_cluster.all_povray_pids(), "a POV-Ray was left on a node"


def test_a_block_row_is_cut_by_columns_when_it_is_all_that_is_left(ssh_cluster, tmp_path):
    # Two block rows on two nodes: the top one is dear and cannot be cut by rows. When the
    # bottom one's node is idle, the top one keeps its left blocks and continues (+C) over
    # them alone; its right blocks go to the idle node. The image still matches.
    scene = SCENES / "tiers" / "tiers.pov"
    render_still_as_povray_would(
        ssh_cluster, tmp_path, scene, 320, 64, "+A0.3 Declare=Samples=60 Declare=TopSamples=4000", nodes=2
    )
    record = job_record(tmp_path)
    assert record["timings"].get("column_cuts", 0) >= 1, (record["timings"], record["parts"])
    rectangles = [name for name in record["parts"] if "-c0001-" in name]
    assert len(rectangles) >= 2 and len({record["parts"][n]["node"] for n in rectangles}) == 2, record["parts"]
    assert not ssh_cluster.all_povray_pids(), "a POV-Ray was left on a node"


def test_a_users_include_header_travels_and_a_cut_band_with_it_matches(ssh_cluster, tmp_path):
    # The scene's own header (+HI) makes the media dear; it travels with the scene, and a band
    # cut and continued from its state file with it still matches. povfarm's early-started
    # continuation waits at a header of its own, so here it starts once the band has stopped.
    (tmp_path / "scene").mkdir()
    (tmp_path / "scene" / "dear_media.inc").write_text("#declare Samples = 1500;\n")
    scene = SCENES / "uneven" / "uneven.pov"
    render_still_as_povray_would(ssh_cluster, tmp_path, scene, 160, 384, "+A0.3 +HIdear_media.inc")
    record = job_record(tmp_path)
    assert record["timings"].get("cuts", 0) >= 1, record["parts"]
    assert record["timings"].get("gated_cuts", 0) == 0, record["timings"]


def test_bands_without_antialiasing_start_and_are_cut_off_the_block_grid(ssh_cluster, tmp_path):
    # No antialiasing: bands of 4-row units, three of 120 rows (121 and 241 are off POV-Ray's
    # 32-row grid); the dear top band is cut at a row of its own and continued (+C).
    scene = SCENES / "uneven" / "uneven.pov"
    render_still_as_povray_would(ssh_cluster, tmp_path, scene, 160, 360, "Declare=Samples=2000")
    record = job_record(tmp_path)
    assert record["timings"].get("cuts", 0) >= 1, record["parts"]
    starts = sorted(int(name[5:9]) for name in record["parts"])
    assert 121 in starts and 241 in starts
    assert any(start % 32 != 1 for start in starts if start not in (121, 241)), starts


def test_focal_blur_bands_off_the_block_grid_match(ssh_cluster, tmp_path):
    render_still_as_povray_would(ssh_cluster, tmp_path, EXAMPLES / "camera" / "focalblur.pov", 96, 100)
    assert len(job_record(tmp_path)["parts"]) >= 2
