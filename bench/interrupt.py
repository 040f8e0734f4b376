"""Ctrl-C at 60% of a render, then --resume: how long the resume takes against a whole render.

Issue #19's measure: with one band per node, an interrupt keeps what each band
rendered, so the resume should take well under 60% of a whole render. Each
round times a whole first render, then the same render interrupted (SIGINT)
at 60% of that time and resumed; the two outputs must be pixel-identical.

    python bench/interrupt.py --scene scenes/nebula.pov --size 1280x960 --rounds 3

Only loopback addresses are used; the rounds are bounded by --rounds.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.nodes import loopback_nodes  # noqa: E402
from bench.scaling import differing_pixels  # noqa: E402 - the repository's root goes on the path first


def inv(scene: Path, size: tuple[int, int], inventory: Path, renders: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), "render", f"--scene={scene}",
            f"--width={size[0]}", f"--height={size[1]}", f"--cluster={inventory}", f"--renders={renders}",
            f"--output={output}", *extra]


def one_round(scene: Path, size: tuple[int, int], inventory: Path, work: Path, at: float) -> tuple[float, float]:
    """A whole render's seconds, and the seconds of the resume after an interrupt at `at` of that."""
    whole_renders, cut_renders = Path(tempfile.mkdtemp(dir=work)), Path(tempfile.mkdtemp(dir=work))
    started = time.monotonic()
    subprocess.run(inv(scene, size, inventory, whole_renders, work / "whole" / "out.png"), cwd=work, check=True,
                   capture_output=True)
    whole = time.monotonic() - started
    process = subprocess.Popen(inv(scene, size, inventory, cut_renders, work / "resumed" / "out.png"), cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(at * whole)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    started = time.monotonic()
    subprocess.run(inv(scene, size, inventory, cut_renders, work / "resumed" / "out.png", "--resume"), cwd=work,
                   check=True, capture_output=True)
    resumed = time.monotonic() - started
    compared = differing_pixels(work / "resumed", work / "whole")
    if compared != "identical":
        raise SystemExit(f"the resumed image is not the whole render's: {compared}")
    return whole, resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, default=REPO / "scenes" / "nebula.pov")
    parser.add_argument("--size", default="1280x960", help="WIDTHxHEIGHT")
    parser.add_argument("--nodes", type=int, default=2, help="sshd nodes, each pinned to a core")
    parser.add_argument("--at", type=float, default=0.6, help="when to interrupt, as a share of a whole render")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    size = tuple(int(v) for v in options.size.split("x"))
    with loopback_nodes("povfarm-interrupt-", options.nodes) as (work, inventory):
        shares = []
        for index in range(max(1, min(options.rounds, 10))):
            whole, resumed = one_round(options.scene.resolve(), size, inventory, work, options.at)
            shares.append(resumed / whole)
            print(f"round {index + 1}: whole {whole:.2f}s  resume after Ctrl-C at {options.at:.0%}: "
                  f"{resumed:.2f}s ({resumed / whole:.0%} of whole)", flush=True)
        print(f"resume / whole: median {statistics.median(shares):.0%} (max {max(shares):.0%}); "
              "images identical")


if __name__ == "__main__":
    main()
