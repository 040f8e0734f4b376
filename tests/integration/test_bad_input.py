"""Bad input ends in one clear line and a non-zero exit; hostile names run nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SCENES, assert_same_pixels, copy_scene, reference, run_inv, write_inventory


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("povfarm:")]


def assert_clean_failure(result, *fragments: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def still(tmp_path: Path) -> Path:
    return copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")


def render(tmp_path: Path, scene: Path, *args: str):
    size = [] if any(a.startswith("--width") for a in args) else ["--width=64", "--height=64"]
    return run_inv("render", f"--scene={scene}", *size, *args, cwd=tmp_path)


def test_missing_scene(ssh_cluster, tmp_path):
    write_inventory(tmp_path, ssh_cluster.inventory())
    assert_clean_failure(render(tmp_path, tmp_path / "nope.pov"), "nope.pov: scene not found", "--scene")


def test_missing_include_is_named(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory())
    (still.parent / "props.inc").unlink()
    assert_clean_failure(render(tmp_path, still), "scene.pov line 6", "'props.inc' not found")


def test_parse_error_is_reported_once_with_file_and_line(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory())
    still.write_text(still.read_text() + "\nsphere { 0, 1 pigment { Blu } }\n")
    result = render(tmp_path, still)
    line = assert_clean_failure(result, "scene.pov line", "POV-Ray parse error", "Blu")
    assert result.stderr.count("Parse Error") + result.stderr.count("parse error") == 1, result.stderr
    assert "fix the scene" in line


@pytest.mark.parametrize(
    "inventory, fragments",
    [
        ("nodes: [\n", ("cluster.yaml", "does not parse as YAML")),
        ("nodes:\n  - {name: a, host: 127.0.0.1, flavour: x}\n", ("node 'a'", "unknown field 'flavour'")),
        ("nodes:\n  - {name: a, transport: local}\n  - {name: a, transport: local}\n", ("duplicate node name",)),
        ("nodes:\n  - {name: a, host: 127.0.0.1, port: 0}\n", ("node 'a'", "field 'port'")),
    ],
)
def test_broken_inventory(tmp_path, still, inventory, fragments):
    write_inventory(tmp_path, inventory)
    assert_clean_failure(render(tmp_path, still), *fragments)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--width=0"], ("--width 0", "must be 1 or more")),
        (["--frames=-2"], ("--frames -2", "must be 1 or more")),
        (["--width=wide"], ("--width 'wide'", "whole number")),
        (["--args=+Oelsewhere.png"], ("+Oelsewhere.png is set by povfarm", "--output")),
        (["--args=+ZZ9"], ("POV-Ray rejected an option", "+ZZ9")),
        (["--args=Input_File_Name=/etc/passwd"], ("Input_File_Name=/etc/passwd is set by povfarm", "--scene")),
        (["--output=out.jpg"], ("--output out.jpg", ".png name")),
        (["--output=."], ("--output .", "is a folder")),
    ],
)
def test_bad_options(ssh_cluster, tmp_path, still, args, fragments):
    write_inventory(tmp_path, ssh_cluster.inventory())
    assert_clean_failure(render(tmp_path, still, *args), *fragments)
    assert not list(tmp_path.glob("renders/*/parts/*.png"))  # refused before anything rendered


def test_the_output_never_replaces_the_scene(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory())
    texture = still.parent / "textures" / "tile.png"
    before = still.read_bytes(), texture.read_bytes()
    assert_clean_failure(render(tmp_path, still, f"--output={still}"), "--output", ".png name")
    assert_clean_failure(render(tmp_path, still, f"--output={texture}"), "would replace", "tile.png")
    assert (still.read_bytes(), texture.read_bytes()) == before


def test_node_without_povray_says_provision(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory(povray="/opt/nowhere/povray"))
    line = assert_clean_failure(render(tmp_path, still), "no node is usable", "not installed; run inv provision")
    assert "node1" in line and "node3" in line


def test_unwritable_workdir_is_named(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory(workdir="/proc/povfarm"))
    assert_clean_failure(render(tmp_path, still), "workdir /proc/povfarm cannot be written")


def test_unknown_host_key_is_refused_with_the_way_to_trust_it(ssh_cluster, tmp_path, still):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    write_inventory(tmp_path, ssh_cluster.inventory(known_hosts=str(empty)))
    line = assert_clean_failure(render(tmp_path, still), "host key unknown", "ssh-keyscan", "trust_on_first_use")
    assert "node1" in line
    assert not (tmp_path / "renders").exists() or not any((tmp_path / "renders").glob("*/parts/*.png"))


def test_changed_host_key_is_refused(ssh_cluster, tmp_path, still):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    impostor = " ".join((tmp_path / "impostor.pub").read_text().split()[:2])
    wrong = tmp_path / "known_hosts"
    wrong.write_text("".join(f"{n.host_key_line.split()[0]} {impostor}\n" for n in ssh_cluster.nodes))
    write_inventory(tmp_path, ssh_cluster.inventory(known_hosts=str(wrong)))
    assert_clean_failure(render(tmp_path, still), "host key CHANGED", "ssh-keygen -R")


def test_trust_on_first_use_records_the_keys(ssh_cluster, tmp_path, still):
    known = tmp_path / "known_hosts"
    write_inventory(tmp_path, ssh_cluster.inventory(known_hosts=str(known), trust_on_first_use=True))
    result = render(tmp_path, still)
    assert result.returncode == 0, result.stderr
    recorded = known.read_text()
    for node in ssh_cluster.nodes:
        assert node.host_key_line.split()[2] in recorded
        said = rf"node {node.name} \(\S*{node.address}:{node.port}\): trusted its unknown host key"
        assert len(re.findall(said, result.stderr)) == 1, result.stderr
    again = run_inv("health", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "trusted" not in again.stderr  # known now: nothing more to say


def test_a_malformed_known_hosts_line_is_named(ssh_cluster, tmp_path, still):
    known = tmp_path / "known_hosts"
    known.write_text(ssh_cluster.known_hosts.read_text() + "127.0.0.9 ssh-ed25519 AAAA!!broken\n")
    write_inventory(tmp_path, ssh_cluster.inventory(known_hosts=str(known)))
    lines = len(known.read_text().splitlines())
    rendered = run_inv("render", f"--scene={still}", "--width=32", "--height=32", cwd=tmp_path)
    assert_clean_failure(rendered, f"{known} line {lines}", "fix or remove that line")
    health = run_inv("health", cwd=tmp_path)
    assert_clean_failure(health, "3 node(s) down")
    said = " ".join(health.stdout.split())  # the table's console may wrap a long line
    assert said.count(f"{known} line {lines} is not a valid host key line") == 3, health.stdout


def test_a_missing_key_file_is_named_with_its_path(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory(key=str(tmp_path / "no-such-key")))
    assert_clean_failure(render(tmp_path, still), "key file", str(tmp_path / "no-such-key"), "check 'key'")


def test_hostile_scene_name_renders_and_runs_nothing(ssh_cluster, tmp_path, still):
    folder = tmp_path / "my scenes; $(touch pwned-dir)"
    shutil.copytree(still.parent, folder)
    hostile = folder / "a b'$(touch pwned)`touch pwned2`;touch pwned3.pov"
    (folder / "scene.pov").rename(hostile)
    write_inventory(tmp_path, ssh_cluster.inventory())
    args = "+A0.3 Declare=Note=1"
    result = run_inv(
        "render", f"--scene={hostile}", "--width=64", "--height=64", f"--args={args}", "--output=out put.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert_same_pixels(tmp_path / "out put.png", reference(hostile, "+W64", "+H64", *args.split(),
                                                            out=tmp_path / "ref.png"))
    everywhere = [tmp_path, *(n.folder for n in ssh_cluster.nodes), ssh_cluster.folder]
    assert not [p for root in everywhere for p in root.rglob("pwned*")]


def test_files_outside_the_scene_folder_need_consent(ssh_cluster, tmp_path):
    (tmp_path / "shared").mkdir()
    shutil.copyfile(SCENES / "still" / "textures" / "tile.png", tmp_path / "shared" / "tile.png")
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    scene.write_text(scene.read_text().replace('"textures/tile.png"', '"../shared/tile.png"'))
    write_inventory(tmp_path, ssh_cluster.inventory())
    line = assert_clean_failure(render(tmp_path, scene), "outside", "shared/tile.png", "--allow-outside")
    assert "scene" in line
    allowed = render(tmp_path, scene, "--allow-outside", "--output=out.png")
    assert allowed.returncode == 0, allowed.stderr
    assert "outside the scene's folder" in allowed.stderr
    assert_same_pixels(tmp_path / "out.png", reference(scene, "+W64", "+H64", out=tmp_path / "ref.png"))


def test_nodes_sharing_a_workdir_never_collide(ssh_cluster, tmp_path, still):
    write_inventory(tmp_path, ssh_cluster.inventory(workdir=str(tmp_path / "one-folder")))
    result = run_inv("render", f"--scene={still}", "--width=64", "--height=256", "--keep-remote", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (job_folder,) = (tmp_path / "one-folder").iterdir()
    for node in ("node1", "node2", "node3"):
        assert (job_folder / node / "povfarm.ini").is_file()
    (record,) = (tmp_path / "renders").glob("*/job.json")
    nodes_used = {part["node"] for part in json.loads(record.read_text())["parts"].values()}
    assert len(nodes_used) >= 2


def test_an_empty_settings_section_keeps_the_defaults(tmp_path, still):
    write_inventory(tmp_path, "nodes:\n  - {name: here, transport: local}\n")
    config = tmp_path / "empty.yaml"
    config.write_text("povfarm:\n  render:\n")
    result = run_inv("-f", str(config), "render", f"--scene={still}", "--width=32", "--height=32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "value, fragments",
    [
        ("overlap: two", ("invoke.yaml povfarm.render.overlap: 'two' is not a whole number", "default 1")),
        ("hang_grace: -3", ("povfarm.render.hang_grace: -3 is not a number >= 0",)),
        ("cuts: 'no'", ("povfarm.render.cuts: 'no' is not true or false", "default True")),
        ("overlapp: 2", ("invoke.yaml povfarm.render.overlapp: unknown setting", "did you mean 'overlap'?")),
    ],
)
def test_a_bad_setting_in_invoke_yaml_is_named(tmp_path, still, value, fragments):
    write_inventory(tmp_path, "nodes:\n  - {name: here, transport: local}\n")
    config = tmp_path / "bad.yaml"
    config.write_text(f"povfarm:\n  render:\n    {value}\n")
    result = run_inv("-f", str(config), "render", f"--scene={still}", "--width=32", "--height=32", cwd=tmp_path)
    assert_clean_failure(result, *fragments)
