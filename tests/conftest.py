"""Shared fixtures: real sshd nodes on loopback, POV-Ray references, the CLI."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import png
import pytest
from PIL import Image

from tests.sshnodes import SshCluster

REPO = Path(__file__).resolve().parent.parent
SCENES = REPO / "tests" / "scenes"

# The tests interrupt renders with SIGINT, as Ctrl-C does. A program started with SIGINT
# ignored (a background job of a non-interactive shell) passes that on to what it starts, and
# Python then never raises KeyboardInterrupt: here pytest takes SIGINT back, for its children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    """Three healthy sshd nodes for the whole session; tests must not break them."""
    cluster = SshCluster(tmp_path_factory.mktemp("cluster"), 3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[SshCluster]:
    """Three sshd nodes of this test's own, for tests that hurt nodes."""
    cluster = SshCluster(tmp_path / "own-cluster", 3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def slow_shell_cluster(tmp_path: Path) -> Iterator[SshCluster]:
    """Two nodes whose login shell spends 0.25 s of CPU starting, as a .bashrc running pyenv does."""
    cluster = SshCluster(tmp_path / "slow-cluster", 2, shell_delay=0.25).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def run_inv(*args: str, cwd: Path, timeout: float = 600, **popen: object) -> subprocess.CompletedProcess:
    """Run `inv ARGS` with the repo's tasks, from cwd, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def reference(scene: Path, *args: str, out: Path) -> Path:
    """What POV-Ray alone makes of the scene, run in the scene's folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    entry = [scene.name]
    if scene.suffix != ".ini":
        # POV-Ray splits +I at spaces; an INI names any file whole.
        quote = "'" if "'" not in scene.name else '"'
        ini = out.parent / f"{out.stem}-input.ini"
        ini.write_text(f"Input_File_Name={quote}{scene.name}{quote}\n")
        entry = [str(ini)]
    subprocess.run(
        ["povray", *entry, *args, "-D", "-P", "+WT1", f"+O{out}"],
        cwd=scene.parent,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def pixels(path: Path) -> tuple:
    """Size, channels, depth and every sample of a PNG, read losslessly."""
    with path.open("rb") as handle:
        width, height, rows, info = png.Reader(file=handle).read()
        samples = [tuple(row) for row in rows]
    return (width, height, info["planes"], info["bitdepth"], samples)


def assert_same_pixels(result: Path, expected: Path) -> None:
    got, want = pixels(result), pixels(expected)
    assert got[:4] == want[:4], f"{result}: {got[:4]} != {want[:4]} (width, height, channels, depth)"
    if got[4] != want[4]:
        bad = [y for y, (a, b) in enumerate(zip(got[4], want[4], strict=True)) if a != b]
        raise AssertionError(f"{result}: {len(bad)} rows differ from POV-Ray alone, first at row {bad[0] + 1}")


def mean_brightness(path: Path) -> float:
    with Image.open(path) as image:
        gray = image.convert("L")
        return sum(gray.getdata()) / (gray.width * gray.height)


def copy_scene(source: Path, target: Path) -> Path:
    """A copy of a scene's folder to render from; returns the copied entry file."""
    shutil.copytree(source.parent, target, dirs_exist_ok=True)
    return target / source.name


def write_inventory(folder: Path, text: str) -> Path:
    path = folder / "cluster.yaml"
    path.write_text(text)
    return path


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
