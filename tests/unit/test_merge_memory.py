"""The submitter's memory while it stitches a 4000x3000 still: flat in the number of parts.

POV-Ray writes each band as a full-size image, black outside its rows, so a
stitcher that kept its parts would hold the whole image once per part. The
stitch runs in a child process of its own, whose peak resident size the
kernel counts afresh from the stitch's start (Linux: /proc/self/clear_refs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageChops

from tests.conftest import REPO

WIDTH, HEIGHT = 4000, 3000
DECODED_MIB = WIDTH * HEIGHT * 4 / 2**20  # one part as Pillow holds it (RGB in 4 bytes a pixel): ~46 MiB

STITCH = f"""
import sys
from pathlib import Path
from fabfile.merge import stitch_bands
from fabfile.plan import ROWS, Span

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
parts = [(Span(ROWS, int(a), int(b)), Path(p)) for a, b, p in (arg.split(":", 2) for arg in sys.argv[2:])]
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here (Linux)
before = status("VmRSS")
stitch_bands(parts, {WIDTH}, {HEIGHT}, Path(sys.argv[1]))
print(status("VmHWM") - before)
"""


def band_of(first: int, last: int) -> Image.Image:
    """Rows first..last (1-based) of the expected image: a gradient per band, so that
    a band from the wrong part or at the wrong place shows."""
    gradient = Image.linear_gradient("L").resize((WIDTH, last - first + 1))
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))


def write_parts(folder: Path, count: int) -> list[str]:
    """`count` full-size parts as POV-Ray writes them, as first:last:path arguments."""
    folder.mkdir()
    bounds = [HEIGHT * k // count for k in range(count + 1)]
    arguments = []
    for first, last in zip(bounds, bounds[1:], strict=False):
        image = Image.new("RGB", (WIDTH, HEIGHT))
        image.paste(band_of(first + 1, last), (0, first))
        path = folder / f"rows-{first + 1:04d}-{last:04d}.png"
        image.save(path, compress_level=1)
        arguments.append(f"{first + 1}:{last}:{path}")
    return arguments


def stitch_peak_mib(output: Path, arguments: list[str]) -> float:
    """How far the stitching child's resident size peaked above where it began (MiB)."""
    result = subprocess.run(
        [sys.executable, "-c", STITCH, str(output), *arguments], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip())


def test_stitching_a_4000x3000_still_holds_about_one_part_however_many_there_are(tmp_path):
    # One part is the whole image (a still on one node); fifteen parts are fifteen full-size
    # images (~690 MiB decoded). Either way the stitcher holds one decoded part and a few
    # pieces of rows being deflated: a band encoded whole took 6.5 times its part (299 MiB).
    whole = stitch_peak_mib(tmp_path / "whole.png", write_parts(tmp_path / "whole", 1))
    many = stitch_peak_mib(tmp_path / "many.png", write_parts(tmp_path / "many", 15))
    assert whole < 2 * DECODED_MIB, (whole, many)
    assert many < 2 * DECODED_MIB, (whole, many)
    assert many < whole + DECODED_MIB / 2, (whole, many)
    for output, count in ((tmp_path / "whole.png", 1), (tmp_path / "many.png", 15)):
        bounds = [HEIGHT * k // count for k in range(count + 1)]
        with Image.open(output) as stitched:
            assert stitched.size == (WIDTH, HEIGHT)
            for first, last in zip(bounds, bounds[1:], strict=False):
                band = stitched.crop((0, first, WIDTH, last))
                assert ImageChops.difference(band, band_of(first + 1, last)).getbbox() is None, (output, first)
