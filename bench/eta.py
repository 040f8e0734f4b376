"""How true the ETA is on a real render: what the farm showed against the time that really remained.

Renders a still on sshd nodes on this machine (each pinned to a core), in
this process, with a reporter that keeps every ETA the coordinator showed.
Prints, for the time after a quarter of the work (a quarter of the render's
time: its cores are all busy) and with a second or more left, how far each
ETA was from the truth.

    python bench/eta.py --scene scenes/nebula.pov --size 1600x1200 --nodes 3 --rounds 2

Only loopback addresses are used; the rounds are bounded by --rounds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.nodes import loopback_nodes  # noqa: E402
from fabfile.engine import RenderRequest, render  # noqa: E402
from fabfile.progress import QuietReporter  # noqa: E402 - the repository's root goes on the path first


class Recorder(QuietReporter):
    """Keeps (when, ETA shown, rows counted) at every ETA the coordinator gives."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[tuple[float, float | None, int]] = []
        self.total = self.done = self.in_parts = 0
        self.stopped: float | None = None

    def start(self, total: int, done: int, unit: str, nodes: list[str]) -> None:
        self.total, self.done = total, done

    def advance(self, node: str, units: int, parts: int) -> None:
        self.done += units

    def running(self, units: int, now: dict[str, str]) -> None:
        self.in_parts = units

    def eta(self, seconds: float | None) -> None:
        self.samples.append((time.monotonic(), seconds, self.done + self.in_parts))

    def stop(self) -> None:
        self.stopped = time.monotonic()  # the bar and its ETA end here; stitching and the report follow


def one_round(scene: Path, size: tuple[int, int], inventory: Path, work: Path) -> list[float]:
    recorder = Recorder()
    request = RenderRequest(scene=scene, cluster=inventory, renders=Path(tempfile.mkdtemp(dir=work)),
                            width=size[0], height=size[1])
    render(request, recorder)
    end = recorder.stopped or time.monotonic()
    # A quarter of the work: of the render's time, its cores all busy (the nebula's first quarter
    # of rows holds a tenth of its work: rows would judge it before the dear ones are seen).
    begun = recorder.samples[0][0] if recorder.samples else end
    quarter = begun + (end - begun) / 4
    return [abs(eta - (end - when)) / (end - when) for when, eta, rows in recorder.samples
            if eta is not None and when >= quarter and end - when >= 1.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, default=REPO / "scenes" / "nebula.pov")
    parser.add_argument("--size", default="1600x1200", help="WIDTHxHEIGHT")
    parser.add_argument("--nodes", type=int, default=3, help="sshd nodes, each pinned to a core")
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    size = tuple(int(v) for v in options.size.split("x"))
    with loopback_nodes("povfarm-eta-", options.nodes) as (work, inventory):
        for index in range(max(1, min(options.rounds, 10))):
            errors = sorted(one_round(options.scene.resolve(), size, inventory, work))
            within = sum(e <= 0.3 for e in errors) / len(errors) if errors else 1.0
            print(f"round {index + 1}: after a quarter of the work, ETA within 30% {within:.0%} of the time; "
                  f"median error {errors[len(errors) // 2]:.0%}, worst {errors[-1]:.0%}" if errors else
                  f"round {index + 1}: too short to judge", flush=True)


if __name__ == "__main__":
    main()
