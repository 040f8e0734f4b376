"""The submitter's memory while it stitches a 4000x3000 still: flat in the number of
parts and in the image's height.

POV-Ray writes each band as a full-size image, black outside its rows, so a
stitcher that kept its parts would hold the whole image once per part, and
one that decoded a part whole would hold the whole image once. The stitch
runs in a child process of its own, whose peak resident size the kernel
counts afresh from the stitch's start (Linux: /proc/self/clear_refs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageChops

from tests.conftest import REPO

WIDTH, HEIGHT = 4000, 3000
DECODED_MIB = WIDTH * HEIGHT * 4 / 2**20  # one part as Pillow holds it (RGB in 4 bytes a pixel): ~46 MiB

STITCH = """
import sys
from pathlib import Path
from fabfile.merge import stitch_bands
from fabfile.plan import ROWS, Span

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
width, height = int(sys.argv[2]), int(sys.argv[3])
parts = [(Span(ROWS, int(a), int(b)), Path(p)) for a, b, p in (arg.split(":", 2) for arg in sys.argv[4:])]
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here (Linux)
before = status("VmRSS")
stitch_bands(parts, width, height, Path(sys.argv[1]))
print(status("VmHWM") - before)
"""


def band_of(first: int, last: int) -> Image.Image:
    """Rows first..last (1-based) of the expected image: a gradient per band, so that
    a band from the wrong part or at the wrong place shows."""
    gradient = Image.linear_gradient("L").resize((WIDTH, last - first + 1))
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))


def write_parts(folder: Path, count: int, height: int = HEIGHT) -> list[str]:
    """`count` full-size parts as POV-Ray writes them, as first:last:path arguments."""
    folder.mkdir()
    bounds = [height * k // count for k in range(count + 1)]
    arguments = []
    for first, last in zip(bounds, bounds[1:], strict=False):
        image = Image.new("RGB", (WIDTH, height))
        image.paste(band_of(first + 1, last), (0, first))
        path = folder / f"rows-{first + 1:04d}-{last:04d}.png"
        image.save(path, compress_level=1)
        arguments.append(f"{first + 1}:{last}:{path}")
    return arguments


def stitch_peak_mib(output: Path, arguments: list[str], height: int = HEIGHT) -> float:
    """How far the stitching child's resident size peaked above where it began (MiB)."""
    result = subprocess.run(
        [sys.executable, "-c", STITCH, str(output), str(WIDTH), str(height), *arguments],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip())


def test_stitching_a_4000x3000_still_holds_strips_of_rows_however_many_parts_and_rows(tmp_path):
    # One part is the whole image (a still on one node); fifteen parts are fifteen full-size
    # images (~690 MiB decoded). Either way the stitcher decodes a part a strip of rows at a
    # time and holds the strips being deflated, so the peak neither grows with the parts nor
    # with the image's height (a strip is as wide as the image). Before: a decoded part
    # (70 MiB from one part); before that, a band encoded whole (299 MiB). Now ~36 MiB, most of it
    # the copies a strip passes through on its way (inflated, unfiltered, filtered, deflated).
    whole = stitch_peak_mib(tmp_path / "whole.png", write_parts(tmp_path / "whole", 1))
    many = stitch_peak_mib(tmp_path / "many.png", write_parts(tmp_path / "many", 15))
    half = stitch_peak_mib(tmp_path / "half.png", write_parts(tmp_path / "half", 1, HEIGHT // 2), HEIGHT // 2)
    assert whole < DECODED_MIB, (whole, many, half)  # never a whole part decoded (~46 MiB)
    assert many < whole + DECODED_MIB / 8, (whole, many, half)
    assert whole < half + DECODED_MIB / 8, (whole, many, half)
    for output, count in ((tmp_path / "whole.png", 1), (tmp_path / "many.png", 15)):
        bounds = [HEIGHT * k // count for k in range(count + 1)]
        with Image.open(output) as stitched:
            assert stitched.size == (WIDTH, HEIGHT)
            for first, last in zip(bounds, bounds[1:], strict=False):
                band = stitched.crop((0, first, WIDTH, last))
                assert ImageChops.difference(band, band_of(first + 1, last)).getbbox() is None, (output, first)
