"""Two versions of povfarm, or povfarm and POV-Ray alone, timed in pairs one after the other.

This machine's speed drifts by tens of percent over minutes: a change is
judged by pairs run back to back on the same sshd nodes (A then B, then B
then A, ...), and by the median of their ratios, never by one timing.

    python bench/pairs.py --base 5e78f9f --scene scenes/nebula.pov --size 1920x1440 --args=+A0.3
    python bench/pairs.py --scene x.pov --against-povray      # this tree against povray +WT<cores>

`--base REV` checks that commit out in a temporary git worktree and times
its `inv render` against this tree's. Every render is a first render (a
fresh renders folder) unless --again. Only loopback addresses are used and
the number of pairs is bounded by --pairs.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scaling import differing_pixels  # noqa: E402 - the repository's root goes on the path first
from tests.sshnodes import SshCluster  # noqa: E402


def farm_seconds(tree: Path, scene: Path, size: tuple[int, int], args: str, inventory: Path, work: Path,
                 label: str, extra: list[str]) -> float:
    out = work / label
    out.mkdir(parents=True, exist_ok=True)
    renders = Path(tempfile.mkdtemp(prefix="renders-", dir=work))
    output = out if any(e.startswith("--frames") for e in extra) else out / (scene.stem + ".png")
    command = [sys.executable, "-m", "invoke", "--search-root", str(tree), "render", f"--scene={scene}",
               f"--width={size[0]}", f"--height={size[1]}", f"--cluster={inventory}", f"--renders={renders}",
               f"--output={output}", *extra]
    if args:
        command.append(f"--args={args}")
    started = time.monotonic()
    result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{label}: inv render failed: {result.stderr.strip().splitlines()[-1:]}")
    return seconds


def povray_seconds(scene: Path, size: tuple[int, int], args: str, threads: int, work: Path,
                   frames: int | None) -> float:
    out = work / "povray"
    out.mkdir(parents=True, exist_ok=True)
    animation = ["+KFI1", f"+KFF{frames}"] if frames else []
    started = time.monotonic()
    subprocess.run(
        ["povray", f"+I{scene.name}", f"+W{size[0]}", f"+H{size[1]}", *args.split(), *animation, "-D", "-P",
         f"+WT{threads}", f"+O{out}/"], cwd=scene.parent, check=True, capture_output=True,
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--size", default="800x600", help="WIDTHxHEIGHT")
    parser.add_argument("--args", default="", help="POV-Ray options for both")
    parser.add_argument("--frames", type=int, help="an animation of this many frames")
    parser.add_argument("--nodes", type=int, default=2, help="sshd nodes, each pinned to a core")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--base", help="a commit to time against this tree")
    parser.add_argument("--against-povray", action="store_true", help="time povray +WT<cores> as the base")
    parser.add_argument("--shell-delay", type=float, default=0.0,
                        help="seconds each node's login shell sleeps (a slow .bashrc)")
    options = parser.parse_args()
    if not options.base and not options.against_povray:
        parser.error("give --base REV or --against-povray")
    size = tuple(int(v) for v in options.size.split("x"))
    scene = options.scene.resolve()
    pairs = max(1, min(options.pairs, 20))
    with tempfile.TemporaryDirectory(prefix="povfarm-pairs-") as temporary:
        work = Path(temporary)
        base_tree = None
        if options.base:
            base_tree = work / "base"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base_tree), options.base],
                           check=True, capture_output=True)
        for tree in [REPO, base_tree] if base_tree else [REPO]:
            compileall.compile_dir(tree / "fabfile", quiet=1)
        cluster = SshCluster(work / "cluster", options.nodes, shell_delay=options.shell_delay).start()
        try:
            inventory = work / "nodes.yaml"
            inventory.write_text(cluster.inventory())

            extra = [f"--frames={options.frames}"] if options.frames else []

            def run_base() -> float:
                if base_tree:
                    return farm_seconds(base_tree, scene, size, options.args, inventory, work, "base", extra)
                return povray_seconds(scene, size, options.args, options.nodes, work, options.frames)

            def run_this() -> float:
                return farm_seconds(REPO, scene, size, options.args, inventory, work, "this", extra)

            ratios = []
            for index in range(pairs):
                order = [run_base, run_this] if index % 2 == 0 else [run_this, run_base]
                times = {fn.__name__: fn() for fn in order}
                ratio = times["run_base"] / times["run_this"]
                ratios.append(ratio)
                print(f"pair {index + 1}: base {times['run_base']:.2f}s  this {times['run_this']:.2f}s  "
                      f"base/this {ratio:.3f}", flush=True)
            print(f"base/this median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
                  f" over {pairs} pairs; >1 means this tree is faster")
            if base_tree:
                print(f"pixels, this against base: {differing_pixels(work / 'this', work / 'base')}")
        finally:
            cluster.stop()
            if base_tree:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)],
                               capture_output=True)


if __name__ == "__main__":
    main()
