from pathlib import Path

import png
import pytest
from PIL import Image

from fabfile.errors import JobError
from fabfile.merge import gather_frames, png_header, stitch_bands
from fabfile.plan import ROWS, Span


def band_part(path: Path, width: int, height: int, start: int, end: int, colour: tuple, mode: str = "RGB") -> Path:
    """A part as POV-Ray writes it: full size, black outside its band."""
    image = Image.new(mode, (width, height))
    image.paste(colour, (0, start - 1, width, end))
    image.save(path)
    return path


def test_bands_are_pasted_in_place(tmp_path):
    parts = [
        (Span(ROWS, 33, 40), band_part(tmp_path / "b.png", 8, 40, 33, 40, (0, 0, 255))),
        (Span(ROWS, 1, 32), band_part(tmp_path / "a.png", 8, 40, 1, 32, (255, 0, 0))),
    ]
    out = stitch_bands(parts, 8, 40, tmp_path / "out.png")
    with Image.open(out) as image:
        assert image.getpixel((3, 0)) == (255, 0, 0)
        assert image.getpixel((3, 31)) == (255, 0, 0)
        assert image.getpixel((3, 32)) == (0, 0, 255)


def test_alpha_survives(tmp_path):
    parts = [(Span(ROWS, 1, 4), band_part(tmp_path / "a.png", 4, 4, 1, 4, (10, 20, 30, 128), "RGBA"))]
    out = stitch_bands(parts, 4, 4, tmp_path / "out.png")
    with Image.open(out) as image:
        assert image.mode == "RGBA" and image.getpixel((0, 0)) == (10, 20, 30, 128)


def test_sixteen_bit_samples_survive_exactly(tmp_path):
    def write16(path, value, start, end):
        rows = [[value if start <= y + 1 <= end else 0] * 3 * 2 for y in range(4)]
        with path.open("wb") as handle:
            png.Writer(2, 4, greyscale=False, bitdepth=16).write(handle, rows)
        return path

    parts = [(Span(ROWS, 1, 2), write16(tmp_path / "a.png", 0x1234, 1, 2)),
             (Span(ROWS, 3, 4), write16(tmp_path / "b.png", 0xABCD, 3, 4))]
    out = stitch_bands(parts, 2, 4, tmp_path / "out.png")
    assert png_header(out)[2] == 16
    with out.open("rb") as handle:
        _, _, rows, _ = png.Reader(file=handle).read()
        values = [list(row) for row in rows]
    assert values[0][0] == 0x1234 and values[3][5] == 0xABCD


def test_a_gap_is_an_error_that_says_how_to_fill_it(tmp_path):
    parts = [(Span(ROWS, 1, 2), band_part(tmp_path / "a.png", 4, 6, 1, 2, (1, 2, 3)))]
    with pytest.raises(JobError, match="rows 3-6 have no part; render with --resume"):
        stitch_bands(parts, 4, 6, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_frames_are_named_as_povray_names_them(tmp_path):
    frames = [(n, band_part(tmp_path / f"f{n}.png", 2, 2, 1, 2, (n, n, n))) for n in (9, 10, 11)]
    written = gather_frames(frames, tmp_path / "out", "anim", final_frame=120)
    assert [p.name for p in written] == ["anim009.png", "anim010.png", "anim011.png"]
