"""inv provision and inv health against real sshd nodes; the ISO and router chores end to end."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SCENES, copy_scene, run_inv, write_inventory
from tests.sshnodes import SshCluster

TINY_PACKAGE = "hello"  # GNU hello: small, harmless, from Debian's own archive


def installed(package: str) -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return status.stdout.endswith("install ok installed")


@pytest.fixture
def without_tiny_package():
    subprocess.run(["dpkg", "-r", TINY_PACKAGE], capture_output=True)
    assert not installed(TINY_PACKAGE)
    yield
    subprocess.run(["dpkg", "-r", TINY_PACKAGE], capture_output=True)


def test_provision_installs_what_is_missing_then_changes_nothing(ssh_cluster, tmp_path, without_tiny_package):
    workdir = tmp_path / "fresh" / "work"
    write_inventory(tmp_path, ssh_cluster.inventory(workdir=str(workdir), packages=[TINY_PACKAGE]))
    dry = run_inv("provision", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    for node in ssh_cluster.nodes:
        assert f"{node.name}:" in dry.stdout
    assert "env DEBIAN_FRONTEND=noninteractive apt-get" in dry.stdout and TINY_PACKAGE in dry.stdout
    assert f"would run: mkdir -p {workdir}" in dry.stdout
    assert not installed(TINY_PACKAGE) and not workdir.exists()  # a dry run changes nothing

    first = run_inv("provision", cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    assert installed(TINY_PACKAGE) and workdir.is_dir()
    assert "changed:" in first.stdout and "POV-Ray 3.7" in first.stdout
    # Each long step is said as it starts, before the node's result.
    said = first.stdout.index(f"node1: apt-get install {TINY_PACKAGE}: this can take minutes...")
    assert said < first.stdout.index("node1: changed:")
    assert "node1: test-rendering with povray" in first.stdout

    second = run_inv("provision", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("ok, nothing to change") == 3, second.stdout
    assert "apt-get" not in second.stdout


def test_provision_reports_a_failing_node_and_goes_on(ssh_cluster, tmp_path):
    text = ssh_cluster.inventory(workdir=str(tmp_path / "work"))
    text += "  - name: ghost\n    host: 127.0.0.99\n    port: 9\n"
    write_inventory(tmp_path, text)
    result = run_inv("provision", cwd=tmp_path)
    assert result.returncode == 1
    assert "ghost: failed" in result.stdout and "connection refused" in result.stdout
    assert result.stdout.count("nothing to change") + result.stdout.count("changed:") == 3


def test_health_reports_a_stopped_node_down_with_its_reason(own_cluster, tmp_path):
    write_inventory(tmp_path, own_cluster.inventory())
    own_cluster.nodes[1].stop()
    result = run_inv("health", "--json", cwd=tmp_path)
    assert result.returncode == 1
    records = {record["name"]: record for record in json.loads(result.stdout)}
    assert set(records) == {"node1", "node2", "node3"}
    assert records["node2"]["up"] is False and "connection refused" in records["node2"]["reason"]
    for name in ("node1", "node3"):
        record = records[name]
        assert record["up"] is True and record["povray"].startswith("POV-Ray 3.7")
        assert record["cores"] == 1  # each node is pinned to one core
        assert record["command_ms"] > 0 and record["mem_free_mb"] > 0 and record["disk_free_mb"] > 0
        assert 0 < record["probe_s"] < 30  # the test render's trace time, one thread
        assert len(record["load"]) == 3
    table = run_inv("health", cwd=tmp_path)
    assert table.returncode == 1
    assert "node2 is down: unreachable: connection refused" in table.stdout and "1 node(s) down: node2" in table.stderr


@pytest.fixture
def small_disks(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A read-only folder and a nearly full one: tmpfs mounts of 1 MiB."""
    read_only, full = tmp_path / "read-only", tmp_path / "full"
    mounted = []
    try:
        for folder, options in ((read_only, "size=1m,ro"), (full, "size=1m")):
            folder.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
            mounted.append(folder)
        yield read_only, full
    finally:
        for folder in mounted:
            subprocess.run(["umount", str(folder)], check=True)


def test_a_node_that_is_up_but_cannot_render_is_not_healthy(ssh_cluster, tmp_path, small_disks):
    read_only, full = small_disks
    text = ssh_cluster.inventory()
    for name, line in (("node1", "povray: /opt/nowhere/povray"), ("node2", f"workdir: {read_only}/work"),
                       ("node3", f"workdir: {full}/work")):
        text = text.replace(f"  - name: {name}\n", f"  - name: {name}\n    {line}\n")
    write_inventory(tmp_path, text)
    result = run_inv("health", "--json", cwd=tmp_path)
    assert result.returncode == 1
    records = {record["name"]: record for record in json.loads(result.stdout)}
    assert all(record["up"] and not record["ready"] for record in records.values())
    assert "POV-Ray (/opt/nowhere/povray) is not installed" in records["node1"]["problems"][0]
    assert "cannot be written" in records["node2"]["problems"][0]
    assert "its disk is full (1 MB free" in records["node3"]["problems"][0]
    table = run_inv("health", cwd=tmp_path)
    assert "3 node(s) cannot render: node1, node2, node3" in table.stderr
    assert "node3 cannot render: its disk is full" in table.stdout
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    render = run_inv("render", f"--scene={scene}", "--width=32", "--height=32", cwd=tmp_path)
    assert render.returncode == 1 and "node node3: its disk is full" in render.stderr


def test_a_node_whose_povray_cannot_render_a_scene_is_not_healthy(tmp_path):
    # POV-Ray is there and says its version, but the povray.ini it reads names an include
    # header that is not there: every scene fails to parse. The test render finds it out.
    broken = tmp_path / "povray.ini"
    broken.write_text("Include_Header=/nonexistent/missing.inc\n")
    cluster = SshCluster(tmp_path / "cluster", 1, environment={"POVINI": str(broken)}).start()
    try:
        write_inventory(tmp_path, cluster.inventory())
        result = run_inv("health", "--json", cwd=tmp_path)
    finally:
        cluster.stop()
    assert result.returncode == 1
    (record,) = json.loads(result.stdout)
    assert record["up"] and record["povray"].startswith("POV-Ray 3.7") and not record["ready"]
    assert "fails to render a test scene" in record["problems"][0], record["problems"]
    assert "missing.inc" in record["problems"][0] and record["probe_s"] is None


def test_health_shows_what_a_slow_login_shell_costs_and_that_povfarms_commands_do_not_pay_it(
        slow_shell_cluster, tmp_path):
    write_inventory(tmp_path, slow_shell_cluster.inventory())
    result = run_inv("health", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert all(record["login_shell_ms"] >= 250 for record in records), result.stdout
    assert all(record["command_ms"] < 100 for record in records), result.stdout  # through povfarm's agent
    table = run_inv("health", cwd=tmp_path)
    assert "ms login shell" in table.stdout


def test_health_of_an_untrusted_host_says_so(ssh_cluster, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    write_inventory(tmp_path, ssh_cluster.inventory(known_hosts=str(empty)))
    result = run_inv("health", "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert all("host key unknown" in r["reason"] for r in json.loads(result.stdout))


def test_check_iso_task(tmp_path):
    iso = tmp_path / "ubuntu.iso"
    iso.write_bytes(b"\x00" * 3_000_000)
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(iso.read_bytes()).hexdigest()} *ubuntu.iso\n")
    good = run_inv("provision.check-iso", f"--iso={iso}", f"--sums={sums}", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "SHA256 OK" in good.stdout
    iso.write_bytes(b"\x01" + b"\x00" * 2_999_999)
    bad = run_inv("provision.check-iso", f"--iso={iso}", f"--sums={sums}", cwd=tmp_path)
    assert bad.returncode == 1 and "SHA256 mismatch" in bad.stderr and "Traceback" not in bad.stderr


def test_router_task_writes_the_notes(tmp_path):
    result = run_inv("provision.router", f"--cluster={REPO / 'cluster.example.yaml'}", "--output=notes.md",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "00:1e:67:00:00:13=eagle=192.168.2.13=1440" in (tmp_path / "notes.md").read_text()
    assert "warning" not in result.stderr and "Not your network yet" not in (tmp_path / "notes.md").read_text()


def test_router_notes_without_a_router_section_say_so(tmp_path):
    result = run_inv("provision.router", f"--cluster={REPO / 'cluster.yaml'}", "--output=notes.md", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "has no router: section" in result.stderr and "192.168.2.1/24" in result.stderr
    assert "Not your network yet" in (tmp_path / "notes.md").read_text()
