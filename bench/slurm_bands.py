"""How many bands a still gets on Slurm: a deterministic model, over the simulator's profiles.

Slurm hands an array's tasks out in order as CPUs come free, and starting a task there
costs a scheduling delay (measured on the test cluster: 1.5-3 s between waves; real
clusters are slower, not faster). More bands even out rows of uneven cost; each band
past the first wave pays the delay again. For bands per task slot k (fabfile.slurm's
PARTS_PER_TASK) and delays of 1, 3 and 10 s, this prints the makespan against the ideal
(work / slots + one delay + one start-up), worst and mean over every cost profile.

    python bench/slurm_bands.py
"""

from __future__ import annotations

import heapq
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.simulate import PROFILES, STILL_UNITS, recorded_profiles, scaled  # noqa: E402
from fabfile.slurmjob import band_units  # noqa: E402

STARTUP = 0.6  # POV-Ray's start-up and parse per task (bench/NOTES.md)
WORK_PER_SLOT = 60.0  # seconds of one CPU's work per task slot: a job worth a cluster
SLOTS = (4, 16, 64)
DELAYS = (1.0, 3.0, 10.0)


def makespan(costs: list[float], slots: int, per_slot: int, delay: float, again: bool = False) -> float:
    """Bands taken in order by whichever slot frees first, each after `delay` + start-up.
    `again`: sized by the costs a first render measured, each band's spread over its rows."""
    units = list(range(len(costs)))
    weights = dict.fromkeys(units, 1.0)
    if again:
        weights = {}
        for first, last in band_units(units, dict.fromkeys(units, 1.0), slots, per_slot):
            weights.update(dict.fromkeys(range(first, last + 1), sum(costs[first : last + 1]) / (last - first + 1)))
    free = [0.0] * slots
    for first, last in band_units(units, weights, slots, per_slot):
        start = heapq.heappop(free)
        heapq.heappush(free, start + delay + STARTUP + sum(costs[first : last + 1]))
    return max(free)


def main() -> int:
    profiles = {name: make(STILL_UNITS) for name, make in PROFILES.items()}
    profiles.update({name: costs for name, (costs, _) in recorded_profiles(REPO / "bench" / "profiles").items()})
    print(f"{len(profiles)} profiles; makespan / ideal, worst and mean, at {WORK_PER_SLOT:.0f} s of work per slot")
    for again in (False, True):
        print("render again, bands sized by the first's band costs" if again else "first render, even bands")
        print(f"{'delay s':>7} {'slots':>5} " + " ".join(f"{f'k={k} worst':>11} {'mean':>5}" for k in range(1, 6)))
        for delay in DELAYS:
            for slots in SLOTS:
                cells = []
                for per_slot in range(1, 6):
                    ratios = []
                    for costs in profiles.values():
                        work = scaled(costs, WORK_PER_SLOT * slots)
                        ideal = WORK_PER_SLOT + delay + STARTUP
                        ratios.append(makespan(work, slots, per_slot, delay, again) / ideal)
                    cells.append(f"{max(ratios):>11.2f} {statistics.mean(ratios):>5.2f}")
                print(f"{delay:>7.0f} {slots:>5} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
