"""The benchmark script works (one quick run); its timings belong to the script, not to tests."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_scaling_benchmark_quick_run_prints_its_table():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scaling.py"), "--quick"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    for scene in ("even", "uneven", "animation"):
        assert f"## {scene}:" in result.stdout
    for label in ("povray +WT1", "farm outside POV-Ray"):
        assert result.stdout.count(label) == 3, label
    for label in ("farm, 1 node(s)", "farm, 2 node(s)", "farm, 4 node(s)"):
        assert result.stdout.count(label) == 6, label  # a timing row and an overhead row per scene
    assert result.stdout.count("farm, 2 nodes, again") == 4  # stills only, rendered a second time
    assert result.stdout.count("farm, 2 nodes, slow shell") == 6  # nodes whose login shell is slow
    assert "speedup vs +WT1" in result.stdout
    assert result.stdout.count("pixels against +WT1") == 3
    assert result.stdout.count("2 nodes against +WT") == 3  # the headline ratio, run by run
    assert result.stdout.count("against +WT1 (timed just before)") == 3  # and against one core
    # Each legend, and each still's rows of 2 and 4 nodes (one band per node at first).
    assert result.stdout.count("ends apart") >= 3 + 3 + 3
    assert "differ" not in result.stdout and "missing" not in result.stdout
