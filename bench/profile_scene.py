"""Measure where a scene's cost falls, band by band, with POV-Ray alone: a cost profile for
bench/simulate.py.

    python bench/profile_scene.py SCENE.pov --size 400x300 [--args "+A0.3"] [--bands 30] --out bench/profiles/NAME.json

Each band of rows is rendered on its own with one thread (+SR/+ER), and its
trace time, as POV-Ray reports it, is the band's cost: independent of
povfarm's own bookkeeping. With antialiasing, bands follow POV-Ray's 32-row
blocks and the profile says how many block columns a row has.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

TRACE = re.compile(r"Trace Time:.*\(([\d.]+) seconds\)")


def band_cost(scene: Path, width: int, height: int, args: list[str], first: int, last: int, out: Path) -> float:
    result = subprocess.run(
        ["povray", f"+I{scene.name}", f"+W{width}", f"+H{height}", *args, f"+SR{first}", f"+ER{last}", "-D", "-P",
         "+WT1", f"+O{out}"], cwd=scene.parent, capture_output=True, text=True, check=True,
    )
    found = TRACE.findall(result.stderr)
    return float(found[-1]) if found else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("--size", default="400x300")
    parser.add_argument("--args", default="")
    parser.add_argument("--bands", type=int, default=30, help="bands without antialiasing (with it: 32-row blocks)")
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    width, height = (int(v) for v in options.size.split("x"))
    args = options.args.split()
    antialias = any(a.startswith("+A") for a in args)
    # With antialiasing a unit is one of POV-Ray's 32-row blocks, as in povfarm's plan.
    step = 32 if antialias else max(1, round(height / options.bands))
    costs = []
    with tempfile.TemporaryDirectory() as folder:
        for first in range(1, height + 1, step):
            last = min(height, first + step - 1)
            costs.append(band_cost(options.scene.resolve(), width, height, args, first, last, Path(folder) / "b.png"))
    record = {
        "scene": f"{options.scene.name} {options.size} {options.args}".strip()
        + f", {step} rows a unit: POV-Ray's trace time of each band alone, one thread",
        "columns": -(-width // 32) if antialias else 1,
        "rows": step,  # rows a unit; without antialiasing the simulator spreads a unit over its rows
        "unit_costs": [round(c, 4) for c in costs],
    }
    options.out.write_text(json.dumps(record, indent=0) + "\n", encoding="utf-8")
    third = len(costs) // 3
    print(f"{options.scene.name}: {len(costs)} bands of {step} rows, {sum(costs):.2f} s; by thirds "
          + " ".join(f"{sum(costs[i * third:(i + 1) * third]):.2f}" for i in range(3)))


if __name__ == "__main__":
    main()
