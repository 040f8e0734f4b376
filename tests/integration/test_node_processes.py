"""What povfarm starts on a node ends by itself once nobody will use it (real sshd, real POV-Ray)."""

from __future__ import annotations

import time

from fabfile import nodejob
from fabfile.inventory import parse_cluster
from fabfile.nodejob import NodeJob
from fabfile.plan import ROWS, Span
from fabfile.prepare import povray_ini_line
from fabfile.transport import open_session
from tests.conftest import SCENES, copy_scene


def test_a_continuation_left_at_its_gate_ends_by_itself(ssh_cluster, tmp_path, monkeypatch):
    # The client that started it died, or never came back to open its gate.
    monkeypatch.setattr(nodejob, "GATE_WAIT_LIMIT", 1)
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    node = parse_cluster(ssh_cluster.inventory(workdir=str(tmp_path / "work"))).nodes[0]
    session = open_session(node)
    try:
        job = NodeJob(session, str(tmp_path / "work"), "job", node.povray, ["scene.pov", "props.inc",
                                                                             "textures/tile.png"])
        job.prepare(scene.parent, povray_ini_line("Input_File_Name", "scene.pov"))
        span = Span(ROWS, 1, 32)
        assert job.launch_gated(span, ["+W64", "+H64", "-D", "-P"])
        waiting = ssh_cluster.nodes[0].povray_pids()
        assert waiting, "POV-Ray waits at its gate"
        deadline = time.monotonic() + 15
        while ssh_cluster.nodes[0].povray_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not ssh_cluster.nodes[0].povray_pids()
    finally:
        session.close()
