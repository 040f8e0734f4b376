import zlib
from pathlib import Path

import png
import pytest
from PIL import Image

from fabfile.errors import JobError
from fabfile.merge import (
    PNG_MODES,
    BandCanvas,
    adler32_combine,
    covering,
    gather_frames,
    png_header,
    png_strips,
    stitch_bands,
)
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


def noise_image(mode: str, width: int, height: int, seed: int = 7) -> Image.Image:
    """An image whose every byte differs from its neighbours: nothing to hide a filter slip."""
    state = seed
    data = bytearray()
    for _ in range(width * height * len(mode)):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        data.append(state >> 16 & 0xFF)
    return Image.frombytes(mode, (width, height), bytes(data))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_bands_arriving_in_any_order_encode_the_image_exactly(tmp_path, mode):
    width, height = 37, 300  # the long band is deflated in several pieces
    source = noise_image(mode, width, height)
    bands = [(201, 300), (1, 40), (41, 200)]
    canvas = BandCanvas(width, height)
    for start, end in bands:
        part = Image.new(mode, (width, height))  # as POV-Ray writes it: black outside the band
        part.paste(source.crop((0, start - 1, width, end)), (0, start - 1))
        path = tmp_path / f"{start}.png"
        part.save(path)
        assert canvas.add(Span(ROWS, start, end), path)
    assert len(canvas.pieces[Span(ROWS, 41, 200)]) > 1
    out = canvas.save(tmp_path / "out.png")
    with Image.open(out) as image:
        assert image.mode == mode
        assert image.tobytes() == source.tobytes()
    with out.open("rb") as handle:  # pypng checks every chunk's CRC and the zlib stream's Adler-32
        read_width, read_height, rows, _ = png.Reader(file=handle).read()
        assert (read_width, read_height, len(list(rows))) == (width, height, height)


def test_an_incomplete_canvas_says_so(tmp_path):
    canvas = BandCanvas(4, 6)
    canvas.add(Span(ROWS, 1, 2), band_part(tmp_path / "a.png", 4, 6, 1, 2, (1, 2, 3)))
    assert not canvas.complete
    with pytest.raises(JobError, match="some rows have no part"):
        canvas.save(tmp_path / "out.png")


def test_overlapping_parts_are_stitched_from_one_covering(tmp_path):
    # A hung part that came back after others rendered its rows: the stitch takes one of each row.
    spans = [Span(ROWS, 1, 8), Span(ROWS, 1, 4), Span(ROWS, 5, 8), Span(ROWS, 9, 10)]
    assert covering(spans) == [Span(ROWS, 1, 8), Span(ROWS, 9, 10)]
    assert covering([Span(ROWS, 1, 4), Span(ROWS, 6, 8)]) == [Span(ROWS, 1, 4)]


@pytest.mark.parametrize("split", [0, 1, 65520, 65521, 65522, 200000])
def test_adler32_combines_as_zlib_computes_it_whole(split):
    data = bytes(noise_image("L", 500, 400).tobytes())
    first, second = data[:split], data[split:]
    combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(data)


def test_a_block_row_split_by_columns_is_encoded_once_its_columns_are_in(tmp_path):
    width, height = 40, 64
    source = noise_image("RGB", width, height)

    def part(name: str, box: tuple[int, int, int, int]) -> Path:
        image = Image.new("RGB", (width, height))  # black outside what it rendered
        image.paste(source.crop(box), box[:2])
        image.save(tmp_path / name)
        return tmp_path / name

    canvas = BandCanvas(width, height)
    right = Span(ROWS, 33, 64).narrowed(17, 40, 33)
    band = Span(ROWS, 1, 64).narrowed(1, 16, 33)  # rows 1-32 whole, and the left of rows 33-64
    assert canvas.add(right, part("right.png", (16, 32, 40, 64)))
    assert not canvas.complete
    for piece in band.pieces():
        canvas.add(piece, part("band.png", (0, 0, 16, 64) if piece.columns else (0, 0, 40, 32)))
    assert covering([*band.pieces(), right], width) == [Span(ROWS, 1, 32), band.pieces()[1], right]
    with Image.open(canvas.save(tmp_path / "out.png")) as image:
        assert image.tobytes() == source.tobytes()


def filter_types(path: Path) -> set[int]:
    """The PNG filter types a file's rows were written with."""
    width, _, _, colour = png_header(path)
    with path.open("rb") as handle:
        data = zlib.decompress(b"".join(d for t, d in png.Reader(file=handle).chunks() if t == b"IDAT"))
    stride = width * len(PNG_MODES[colour]) + 1  # a mode's letters are its samples
    return {data[row] for row in range(0, len(data), stride)}


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_strips_of_a_png_are_its_rows_whatever_filters_came_before(tmp_path, mode):
    # Noise saved by Pillow, which picks each row's filter: rows that read the row above
    # (Up, Average, Paeth) lie above and inside every strip asked for.
    width, height = 29, 70
    source = noise_image(mode, width, height)
    path = tmp_path / "noise.png"
    source.save(path)
    assert len(filter_types(path)) >= 3, filter_types(path)
    for bounds in ([0, 70], [0, 1, 2, 70], [13, 14], [13, 40, 41, 69], [69, 70]):
        strips = list(png_strips(path, bounds))
        assert len(strips) == len(bounds) - 1
        for (first, last), strip in zip(zip(bounds, bounds[1:], strict=False), strips, strict=True):
            assert strip.mode == mode and strip.size == (width, last - first)
            assert strip.tobytes() == source.crop((0, first, width, last)).tobytes(), (bounds, first)


def test_strips_of_a_truncated_png_say_what_is_missing(tmp_path):
    path = tmp_path / "part.png"
    noise_image("RGB", 16, 40).save(path)
    data = path.read_bytes()
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    # The image data cut short, as a part fetched half-way would be, its chunk still whole.
    short = zlib.compress(zlib.decompress(data[idat + 4 : idat + 4 + length])[: 49 * 20])
    chunk = len(short).to_bytes(4, "big") + b"IDAT" + short + zlib.crc32(b"IDAT" + short).to_bytes(4, "big")
    path.write_bytes(data[: idat - 4] + chunk + data[idat + 8 + length :])
    assert list(png_strips(path, [0, 10]))[0].size == (16, 10)
    with pytest.raises(JobError, match="ends before row 40"):
        list(png_strips(path, [10, 40]))


def test_strips_of_an_interlaced_png_are_its_rows_too(tmp_path):
    # POV-Ray does not interlace its PNGs; a part that was would be decoded whole.
    source = noise_image("RGB", 9, 20)
    path = tmp_path / "interlaced.png"
    with path.open("wb") as handle:
        rows = [source.crop((0, y, 9, y + 1)).tobytes() for y in range(20)]
        png.Writer(9, 20, greyscale=False, interlace=True).write(handle, rows)
    with path.open("rb") as handle:
        assert handle.read(29)[28] == 1
    strips = list(png_strips(path, [3, 10, 20]))
    assert [strip.tobytes() for strip in strips] == [source.crop((0, 3, 9, 10)).tobytes(),
                                                     source.crop((0, 10, 9, 20)).tobytes()]
