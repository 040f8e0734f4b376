"""How povfarm scales: POV-Ray alone against the farm, side by side, in one run.

Starts its own sshd nodes on loopback (127.0.0.10 and up, node i pinned to
core i mod cores), then times, several runs each:

  povray +WT1 alone (pinned to one core), povray +WT<cores> alone (all cores),
  `inv render` on 1, 2 and 4 nodes (4 is oversubscribed on 2 cores), and on
  this machine as one local node with all its cores (the default cluster),
  once as povfarm chooses (a still: one part with POV-Ray's own threads) and
  once with --threads=1 (a part per core),

for an even scene, an uneven one (a media nebula off-centre), an
animation, three of POV-Ray's own examples and a cheap scene at 6000x4000,
and prints medians, min-max and the ratios, plus what the farm spent
outside POV-Ray. Two more nodes, whose login shell spends 0.1 s of CPU on
every command (a .bashrc that runs pyenv), render each scene too. Only loopback addresses are used; every loop is
bounded by --runs.

    python bench/scaling.py              # the full table (several minutes)
    python bench/scaling.py --quick      # tiny sizes, one run: checks that it works
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = Path("/usr/share/doc/povray/examples")  # Debian's povray-examples
SLOW_SHELL = 0.1  # seconds of CPU a slow login shell (a .bashrc running pyenv) adds to every command
sys.path.insert(0, str(REPO))

from tests.sshnodes import SshCluster  # noqa: E402 - the harness the tests use, after the path is set


@dataclass(frozen=True)
class Scene:
    name: str
    path: Path
    width: int
    height: int
    args: str = ""
    frames: int | None = None

    def povray_input(self) -> list[str]:
        """What names the scene to POV-Ray: its INI file (output switched on: an INI may turn it off), or +I."""
        if self.path.suffix.lower() == ".ini":
            return [self.path.name, "+FN"]
        return [f"+I{self.path.name}"]

    def povray_args(self) -> list[str]:
        args = [f"+W{self.width}", f"+H{self.height}", *self.args.split()]
        if self.frames:
            args += ["+KFI1", f"+KFF{self.frames}"]
        return args

    def farm_args(self) -> list[str]:
        args = [f"--scene={self.path}", f"--width={self.width}", f"--height={self.height}"]
        if self.args:
            args.append(f"--args={self.args}")
        if self.frames:
            args.append(f"--frames={self.frames}")
        return args


def scenes(quick: bool) -> list[Scene]:
    if quick:
        return [
            Scene("even", REPO / "tests/scenes/slow/slow.pov", 64, 64, "Declare=Samples=20"),
            Scene("uneven", REPO / "scenes/nebula.pov", 96, 72),
            Scene("animation", REPO / "tests/scenes/anim/anim.pov", 48, 36, "", frames=4),
        ]
    return [
        Scene("even", REPO / "tests/scenes/slow/slow.pov", 480, 360, "Declare=Samples=320"),
        Scene("uneven", REPO / "scenes/nebula.pov", 1920, 1440, "+A0.3"),
        Scene("animation", REPO / "tests/scenes/anim/anim.pov", 480, 360, "+A0.1", frames=64),
        # POV-Ray's own examples, which nobody here wrote (Debian's povray-examples): media whose
        # cost grows towards the bottom, isosurfaces in one region, a chess board's dear middle.
        Scene("mediasky", EXAMPLES / "advanced" / "mediasky.pov", 320, 240),
        Scene("isocacti", EXAMPLES / "advanced" / "isocacti.pov", 640, 480),
        Scene("chess2", EXAMPLES / "advanced" / "chess2.pov", 400, 300),
        # The heavy ones (issue #22): radiosity, shared by a pretrace across the nodes; POV-Ray's
        # benchmark through its own INI (photons, a jittered area light), at a reduced size.
        Scene("cornell", EXAMPLES / "radiosity" / "cornell.pov", 1280, 960),
        Scene("benchmark", EXAMPLES / "advanced" / "benchmark" / "benchmark.ini", 96, 96),
        # A cheap scene, big: stitching and encoding 24 megapixels must not eat the gain.
        Scene("big", REPO / "tests/scenes/still/scene.pov", 6000, 4000),
    ]


def time_povray(scene: Scene, threads: int, cores: str, out: Path) -> float:
    """POV-Ray alone, in the scene's folder, pinned to the given cores."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run(
        ["taskset", "-c", cores, "povray", *scene.povray_input(), *scene.povray_args(), "-D", "-P",
         f"+WT{threads}", f"+O{out}/"],
        cwd=scene.path.parent, check=True, capture_output=True,
    )
    return time.monotonic() - started


@dataclass
class FarmRun:
    """One `inv render`, end to end, and what its job record says about it."""

    seconds: float
    timings: dict
    ends_apart: float | None  # between the first and the last node to finish its last part (None: one node)
    warnings: list[str]
    client_cpu: float  # CPU seconds of the `inv render` process itself (all its threads), the submitting side


def time_farm(
    scene: Scene, inventory: Path, work: Path, out: Path, renders: Path, extra: tuple[str, ...] = ()
) -> FarmRun:
    """`inv render` end to end, as a user runs it: its wall time, the job's timings,
    how far apart the nodes finished and what it warned about."""
    out.mkdir(parents=True, exist_ok=True)
    output = out if scene.frames else out / f"{scene.path.stem}.png"
    cpu_before = children_cpu()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "render", *scene.farm_args(),
         f"--cluster={inventory}", f"--renders={renders}", f"--output={output}", *extra],
        cwd=work, capture_output=True, text=True,
    )
    seconds = time.monotonic() - started
    client_cpu = children_cpu() - cpu_before
    if result.returncode != 0:
        raise SystemExit(f"farm render of {scene.name} failed: {result.stderr.strip().splitlines()[-1:]}")
    records = sorted(renders.glob("*/job.json"), key=lambda p: p.stat().st_mtime)
    record = json.loads(records[-1].read_text())
    ends: dict[str, float] = {}
    for part in record["parts"].values():
        if part.get("started") is not None:
            ends[part["node"]] = max(ends.get(part["node"], 0.0), part["started"] + part["seconds"])
    warnings = [line.strip() for line in (result.stdout + result.stderr).splitlines()
                if line.strip().startswith("warning:")]
    apart = max(ends.values()) - min(ends.values()) if len(ends) > 1 else None
    return FarmRun(seconds, record["timings"], apart, warnings, client_cpu)


def children_cpu() -> float:
    """CPU seconds of this script's finished children: an `inv render`, with its threads,
    and what it ran itself."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def differing_pixels(folder: Path, reference: Path) -> str:
    """How the PNGs in `folder` compare with those of the same names in `reference`."""
    from PIL import Image, ImageChops  # only the comparison needs Pillow

    count = worst = 0
    names = sorted(p.name for p in reference.glob("*.png"))
    for name in names:
        if not (folder / name).exists():
            return f"{name} missing"
        with Image.open(folder / name) as a, Image.open(reference / name) as b:
            diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
        marks = [band.point(lambda v: 1 if v else 0) for band in diff.split()]
        for band in marks[1:]:
            marks[0] = ImageChops.lighter(marks[0], band)
        count += marks[0].histogram()[1]
        worst = max(worst, *(high for _, high in diff.getextrema()))
    return "identical" if not count else f"{count} pixel(s) differ, by up to {worst}/255"


def summary(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.2f}s  ({min(samples):.2f}-{max(samples):.2f})"


class Bench:
    """The configurations timed on one set of sshd nodes, scene by scene."""

    def __init__(self, work: Path, cluster: SshCluster, runs: int, slow: SshCluster) -> None:
        self.work = work
        self.runs = runs
        self.cores = os.cpu_count() or 1
        self.wt_all = f"povray +WT{self.cores}"
        self.inventories: dict[int, Path] = {}
        for count in (1, 2, 4):
            path = work / f"nodes{count}.yaml"
            path.write_text(cluster.inventory(cluster.nodes[:count]))
            self.inventories[count] = path
        self.slow = work / "slow.yaml"  # two nodes whose login shell is slow to start
        self.slow.write_text(slow.inventory())
        self.local = work / "local.yaml"  # the default cluster's node: this machine, every core
        self.local.write_text(f"nodes:\n  - {{name: local, transport: local, workdir: '{work / 'local-work'}'}}\n")
        self.local_runs = {"farm, local node": (), "farm, local, 1 thread": ("--threads=1",)}

    def measure(self, scene: Scene) -> tuple[dict[str, list[float]], dict[str, list[FarmRun]]]:
        """Every configuration, `runs` times: wall times by label (in the table's order)
        and the farm's runs."""
        for old in self.work.glob("*/*.png"):
            old.unlink()
        labels = ["povray +WT1", self.wt_all, *(f"farm, {count} node(s)" for count in self.inventories)]
        if not scene.frames:
            labels.insert(labels.index("farm, 2 node(s)") + 1, "farm, 2 nodes, again")
        labels.insert(labels.index("farm, 2 node(s)") + 1, "farm, 2 nodes, slow shell")
        labels += list(self.local_runs)
        results: dict[str, list[float]] = {label: [] for label in labels}
        farm_runs: dict[str, list[FarmRun]] = {label: [] for label in labels if label.startswith("farm")}

        def farm(label: str, run: FarmRun) -> None:
            results[label].append(run.seconds)
            farm_runs[label].append(run)

        work = self.work
        for run in range(self.runs):
            results["povray +WT1"].append(time_povray(scene, 1, "0", work / "wt1"))
            results[self.wt_all].append(time_povray(scene, self.cores, f"0-{self.cores - 1}", work / "wtall"))
            # Two nodes right after +WT<cores>: their ratio run by run compares the same minutes.
            for count in sorted(self.inventories, key=lambda c: c != 2):
                # A fresh renders folder: the first render of the scene, no costs known.
                renders = work / f"renders-{scene.name}-{count}-{run}"
                inventory = self.inventories[count]
                farm(f"farm, {count} node(s)", time_farm(scene, inventory, work, work / f"farm{count}", renders))
                if count == 2 and not scene.frames:
                    # Rendered again: the first bands are sized by the costs just measured.
                    farm("farm, 2 nodes, again", time_farm(scene, inventory, work, work / "again", renders))
                if count == 2:
                    slow = work / f"renders-{scene.name}-slow-{run}"
                    farm("farm, 2 nodes, slow shell", time_farm(scene, self.slow, work, work / "slow", slow))
            for index, (label, extra) in enumerate(self.local_runs.items()):
                renders = work / f"renders-{scene.name}-local{index}-{run}"
                farm(label, time_farm(scene, self.local, work, work / f"local{index}", renders, extra))
        return results, farm_runs

    def report(self, scene: Scene, results: dict[str, list[float]], farm_runs: dict[str, list[FarmRun]]) -> None:
        work = self.work
        one = statistics.median(results["povray +WT1"])
        best = statistics.median(results[self.wt_all])
        print(f"{'':22} {'median (min-max)':>24} {'speedup vs +WT1':>16} {'speed vs ' + self.wt_all[7:]:>16}")
        for label, samples in results.items():
            median = statistics.median(samples)
            print(f"{label:22} {summary(samples):>24} {one / median:15.2f}x {best / median:15.2f}x")
        # The machine's speed drifts over minutes: ratios of neighbours in time are fairer than of medians.
        two = results["farm, 2 node(s)"]
        paired = [wt / farm for wt, farm in zip(results[self.wt_all], two, strict=True)]
        paired_one = [wt / farm for wt, farm in zip(results["povray +WT1"], two, strict=True)]
        print(f"2 nodes against {self.wt_all[7:]}, run by run (timed one after the other): "
              + " ".join(f"{ratio:.2f}x" for ratio in paired) + f", median {statistics.median(paired):.2f}x;"
              + " against +WT1 (timed just before): "
              + " ".join(f"{ratio:.2f}x" for ratio in paired_one) + f", median {statistics.median(paired_one):.2f}x")
        print(f"pixels against +WT1: {self.wt_all[7:]} {differing_pixels(work / 'wtall', work / 'wt1')}; "
              + ", ".join(f"farm on {count} {differing_pixels(work / f'farm{count}', work / 'wt1')}"
                          for count in self.inventories)
              + ("" if scene.frames else f", again {differing_pixels(work / 'again', work / 'wt1')}")
              + f", slow shell {differing_pixels(work / 'slow', work / 'wt1')}"
              + f", local {differing_pixels(work / 'local0', work / 'wt1')}"
              + f", local 1 thread {differing_pixels(work / 'local1', work / 'wt1')}")
        print("farm outside POV-Ray (medians): start = connect + upload, per part = SSH round trip"
              " + fetch beyond POV-Ray's own wall time, stitch = while rendering + at the end,"
              " cuts = running bands cut and continued, client = CPU of the `inv render` process"
              " (on sshd nodes the submitting side alone; here it shares the nodes' cores),"
              " ends apart = between the first and the last node to finish (median, max);"
              " then any warning a run printed")
        for label, farmed in farm_runs.items():
            records = [farm.timings for farm in farmed]

            def med(key: str, rows: list[dict] = records) -> float:
                return statistics.median(r.get(key, 0.0) for r in rows)

            parts = med("parts") or 1
            per_part = (med("part_commands") - med("povray_wall") + med("fetch")) / parts
            apart = [farm.ends_apart for farm in farmed if farm.ends_apart is not None]
            # On the local node POV-Ray runs under `inv render` itself: its CPU is not the client's.
            client_cpu = statistics.median(farm.client_cpu for farm in farmed)
            client = "" if label in self.local_runs else f"client {client_cpu:4.2f}s  "
            ends = f"ends apart {statistics.median(apart):4.2f}s (max {max(apart):.2f})" if apart else "one node"
            print(f"  {label:20} parts {parts:4.0f}  start {med('start'):5.2f}s  fetch {med('fetch'):5.2f}s"
                  f"  per part {per_part * 1000:5.1f}ms  parse {med('povray_parse'):5.2f}s"
                  f"  stitch {med('stitch_while_rendering'):4.2f}+{med('merge'):4.2f}s"
                  f"  cleanup {med('cleanup'):5.2f}s  cuts {med('cuts'):2.0f}"
                  f"  {client}{ends}")
        for label, farmed in farm_runs.items():
            for number, farm in enumerate(farmed, 1):
                for warning in dict.fromkeys(farm.warnings):
                    print(f"  {label}, run {number}: {warning}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny scenes, one run: a smoke test")
    parser.add_argument("--scenes", default="",
                        help="comma-separated subset: even,uneven,animation,mediasky,isocacti,chess2,"
                             "cornell,benchmark,big")
    options = parser.parse_args()
    # A stopped benchmark still stops its sshd nodes (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runs = 1 if options.quick else max(1, min(options.runs, 20))
    chosen = [s for s in scenes(options.quick) if not options.scenes or s.name in options.scenes.split(",")]
    # A user's Python caches povfarm's compiled modules on its first run. A machine that
    # forbids writing them (PYTHONDONTWRITEBYTECODE, as this project's does) would add
    # ~25 ms of compiling to every timed run: compile them once, as that first run would.
    compileall.compile_dir(REPO / "fabfile", quiet=1)
    compileall.compile_file(REPO / "tasks.py", quiet=1)

    with tempfile.TemporaryDirectory(prefix="povfarm-bench-") as temporary:
        work = Path(temporary)
        cluster = SshCluster(work / "cluster", 4).start()
        slow = SshCluster(work / "slow-cluster", 2, shell_delay=SLOW_SHELL).start()
        try:
            bench = Bench(work, cluster, runs, slow)
            print(f"machine: {platform.machine()}, {bench.cores} cores, {platform.system()} {platform.release()}, "
                  f"Python {platform.python_version()}; {runs} run(s) each; nodes pinned to core i mod {bench.cores}")
            for scene in chosen:
                frames = f", {scene.frames} frames" if scene.frames else ""
                shown = scene.path.relative_to(REPO) if scene.path.is_relative_to(REPO) else scene.path
                print(f"\n## {scene.name}: {shown} {scene.width}x{scene.height}"
                      f" {scene.args}{frames}")
                bench.report(scene, *bench.measure(scene))
        finally:
            cluster.stop()
            slow.stop()


if __name__ == "__main__":
    main()
