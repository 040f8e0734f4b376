"""Merge: stitch a still from its row bands, or gather an animation's frames.

POV-Ray writes a partial render as a full-size PNG whose rows outside the
band are black, so each band is cut from its own part and pasted in place.
8-bit parts are decoded a strip of rows at a time (png_strips: zlib
inflates, Pillow undoes PNG's filters) down to the band's last row, and the
output is encoded as they arrive (BandCanvas): the submitter holds the strips
being deflated and the deflated rows, not a decoded part.
Pillow reads 16-bit RGB(A) PNGs as 8-bit, which would lose the
low byte, so 16-bit images are streamed row by row through pypng instead,
holding one row at a time.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import png
from PIL import Image, ImageChops

from fabfile.errors import JobError
from fabfile.plan import Span, joined, joined_rectangles

# Chunks worth carrying from POV-Ray's own output: how to read its colours.
CARRIED_CHUNKS = (b"gAMA", b"sRGB", b"cHRM", b"iCCP")


def png_header(path: Path) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type from a PNG's IHDR."""
    return _ihdr(path)[:4]


def _ihdr(path: Path) -> tuple[int, int, int, int, int]:
    """Width, height, bit depth, colour type and interlace method from a PNG's IHDR."""
    with path.open("rb") as handle:
        head = handle.read(29)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise JobError(f"{path}: not a PNG file")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return width, height, depth, colour, interlace


class DamagedPart(JobError):
    """A part's file is not a whole, intact PNG."""


def check_png(path: Path) -> None:
    """Raise DamagedPart unless the file is a PNG whose every chunk is whole and checks (CRC) to its end."""
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise DamagedPart(f"{path.name}: not a PNG file")
            image.verify()  # every chunk's CRC, through IEND
    except DamagedPart:
        raise
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise DamagedPart(f"{path.name}: damaged ({exc or type(exc).__name__})") from None


def stitch_bands(parts: Sequence[tuple[Span, Path]], width: int, height: int, output: Path) -> Path:
    """Write the still whose rows come from each part's band."""
    ordered = sorted(parts, key=lambda item: item[0].start)
    _check_coverage(sorted({Span(s.kind, s.start, s.end) for s, _ in ordered}, key=lambda s: s.start), height)
    depths = set()
    for _, path in ordered:
        part_width, part_height, depth, _ = png_header(path)
        if (part_width, part_height) != (width, height):
            raise JobError(f"{path}: part is {part_width}x{part_height}, expected {width}x{height}")
        depths.add(depth)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    if depths == {16}:
        if any(span.columns for span, _ in ordered):
            raise JobError(f"{output.name}: 16-bit parts split by columns cannot be stitched; render it again")
        _stitch_16bit(ordered, width, height, temporary)
    elif len(depths) == 1:
        _stitch_8bit(ordered, width, height, temporary)
    else:
        raise JobError(f"parts of {output.name} differ in bit depth {sorted(depths)}; render them again")
    os.replace(temporary, output)
    return output


def gather_frames(frames: Sequence[tuple[int, Path]], folder: Path, stem: str, final_frame: int) -> list[Path]:
    """Put frames into folder, named as POV-Ray names them (stem + padded number)."""
    folder.mkdir(parents=True, exist_ok=True)
    digits = len(str(abs(final_frame)))
    written: list[Path] = []
    for frame, path in sorted(frames):
        target = folder / f"{stem}{frame:0{digits}d}.png"
        temporary = folder / f".{target.name}.tmp"
        try:
            os.link(path, temporary)  # stored once: the frame and its part are one file
        except OSError:
            shutil.copyfile(path, temporary)  # another filesystem
        os.replace(temporary, target)
        written.append(target)
    return written


def _check_coverage(spans: Sequence[Span], height: int) -> None:
    expected = 1
    for span in spans:
        if span.start != expected:
            raise JobError(f"rows {expected}-{span.start - 1} have no part; render with --resume")
        expected = span.end + 1
    if expected != height + 1:
        raise JobError(f"rows {expected}-{height} have no part; render with --resume")


class BandCanvas:
    """An 8-bit still encoded as its parts arrive, so that the end of a job waits
    only for the last band's share of the encoding.

    Pillow encodes a PNG in one go, on one core, at the end (0.2-0.4 s at
    1920x1440). Here each band's rows are filtered at once (PNG's Sub filter,
    computed by Pillow) and deflated on worker threads into pieces of one zlib
    stream: every piece but the image's last ends on a byte boundary (a sync
    flush) with no back-references into other pieces, so pieces made apart
    join into one stream, as pigz makes them. Their Adler-32 sums combine. The
    submitter holds the strips of rows in hand (see png_strips) and the deflated pieces.
    """

    def __init__(self, width: int, height: int, on_strip: Callable[[int, Image.Image], None] | None = None) -> None:
        self.width = width
        self.height = height
        self.on_strip = on_strip  # each strip of rows as decoded: (its first row, 0-based; the rows)
        self.mode: str | None = None
        self.info_source: Path | None = None
        self.pieces: dict[Span, list[Future[DeflatedRows]]] = {}
        # Block rows split by columns, (first row, last row): their rows so far, and the columns in.
        self.split: dict[tuple[int, int], tuple[Image.Image, list[tuple[int, int]]]] = {}
        self.workers = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="png")

    def add(self, span: Span, path: Path) -> bool:
        """Encode a part's band; False (nothing done) for a 16-bit part. A rectangle
        (a block row split by columns) waits until its block row's columns are all in."""
        _, _, depth, colour = png_header(path)
        if depth != 8:
            return False
        mode = PNG_MODES.get(colour)
        if mode is None:
            raise JobError(f"{path}: POV-Ray wrote a PNG of colour type {colour}, which povfarm cannot stitch")
        if self.mode is None:
            self.mode, self.info_source = mode, path
        elif mode != self.mode:
            raise JobError(f"{path}: part is {mode}, expected {self.mode}; render it again")
        if not span.columns:
            self._encode(span, path)
            return True
        first, last = span.columns
        band = next(png_strips(path, [span.start - 1, span.end])).crop((first - 1, 0, last, span.size))
        if (span.start, span.end) not in self.split:
            self.split[(span.start, span.end)] = (Image.new(self.mode, (self.width, span.size)), [])
        rows, columns = self.split[(span.start, span.end)]
        rows.paste(band, (first - 1, 0))
        columns.append(span.columns)
        if not joined(columns, self.width):
            return True
        del self.split[(span.start, span.end)]
        self._encode(Span(span.kind, span.start, span.end), rows)
        return True

    def _encode(self, span: Span, source: Path | Image.Image) -> None:
        """Deflate the span's rows in pieces: from its part's PNG (the full image), or
        from an image of just those rows (a block row joined from its rectangles)."""
        # A late band is deflated on every core; an early one costs the nodes little. A
        # piece is at most MAX_PIECE_ROWS, and no more than one per core is decoded at a
        # time: what a band holds does not grow with its size, nor with the image's.
        rows = span.size
        count = max(1, min(self.workers, rows // MIN_PIECE_ROWS), -(-rows // MAX_PIECE_ROWS))
        bounds = [rows * k // count for k in range(count + 1)]
        if isinstance(source, Path):
            strips = png_strips(source, [span.start - 1 + bound for bound in bounds])
        else:
            pairs = zip(bounds, bounds[1:], strict=False)
            strips = (source.crop((0, first, self.width, last)) for first, last in pairs)
        pieces: list[Future[DeflatedRows]] = []
        for first, last, strip in zip(bounds[:-1], bounds[1:], strips, strict=True):
            if self.on_strip is not None:
                self.on_strip(span.start - 1 + first, strip)
            pieces.append(self._pool.submit(deflate_band, strip, span.start + last - 1 == self.height))
            busy = [piece for piece in pieces if not piece.done()]
            if len(busy) >= self.workers:
                wait(busy, return_when=FIRST_COMPLETED)
        self.pieces[span] = pieces

    @property
    def complete(self) -> bool:
        chosen = covering(self.pieces)
        return bool(chosen) and chosen[-1].end == self.height

    def save(self, output: Path) -> Path:
        chosen = covering(self.pieces)
        if self.mode is None or self.info_source is None or not chosen or chosen[-1].end != self.height:
            raise JobError(f"{output.name}: some rows have no part; render with --resume")
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(f".{output.name}.tmp")
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, PNG_COLOUR_TYPES[self.mode], 0, 0, 0)
        with temporary.open("wb") as handle:
            handle.write(PNG_SIGNATURE)
            _write_chunk(handle, b"IHDR", header)
            for chunk_type, data in _carried_chunks(self.info_source):
                _write_chunk(handle, chunk_type, data)
            checksum = ZLIB_START_ADLER
            _write_chunk(handle, b"IDAT", ZLIB_HEADER)
            for span in chosen:
                for future in self.pieces[span]:
                    piece = future.result()
                    checksum = adler32_combine(checksum, piece.adler, piece.length)
                    _write_chunk(handle, b"IDAT", piece.data)
            _write_chunk(handle, b"IDAT", struct.pack(">I", checksum))
            _write_chunk(handle, b"IEND", b"")
        self._pool.shutdown()
        os.replace(temporary, output)
        return output


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {"L": 0, "LA": 4, "RGB": 2, "RGBA": 6}  # 8 bits a sample
PNG_MODES = {colour: mode for mode, colour in PNG_COLOUR_TYPES.items()}
INFLATE_CHUNK = 1 << 20  # bytes inflated at a time: a part's black rows deflate a thousandfold
ZLIB_HEADER = b"\x78\x9c"  # deflate, 32 KiB window, default level
ZLIB_START_ADLER = 1
MIN_PIECE_ROWS = 64  # rows below which a band is not worth deflating in several pieces
MAX_PIECE_ROWS = 128  # rows deflated as one piece at most (a sync flush and a fresh window each)
ADLER_BASE = 65521


@dataclass(frozen=True)
class DeflatedRows:
    data: bytes  # raw deflate, ending on a byte boundary (the image's last piece: the final block)
    adler: int  # Adler-32 of the filtered rows
    length: int  # their length in bytes


def png_strips(path: Path, bounds: Sequence[int]) -> Iterator[Image.Image]:
    """Rows bounds[0]..bounds[-1] (0-based, the end excluded) of an 8-bit PNG, one
    image for each pair of neighbouring bounds, decoded as the file is read and
    no further than the last bound: the whole image is never held (but for an
    interlaced PNG, which POV-Ray does not write).

    zlib inflates the scanlines; Pillow undoes their filters, a strip at a time
    (_Unfilter). Rows above the first bound are undone only back to the last that
    needs no row above (filter type None, as black rows are written).
    """
    width, height, depth, colour, interlaced = _ihdr(path)
    mode = PNG_MODES.get(colour)
    if depth != 8 or mode is None:
        raise JobError(f"{path}: not an 8-bit L, LA, RGB or RGBA PNG")
    first, last = bounds[0], bounds[-1]
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)) or not 0 <= first < last <= height:
        raise ValueError(f"{path}: strips {list(bounds)} of {height} rows")
    if interlaced:  # rows come in seven passes (not as POV-Ray writes them): decoded whole
        with Image.open(path) as image:
            image.load()
            for top, bottom in zip(bounds, bounds[1:], strict=False):
                yield image.crop((0, top, width, bottom))
        return
    line = width * len(mode) + 1  # a scanline: its filter type, then its bytes
    rows = _Unfilter(width, colour, line)
    ends = iter(bounds[1:])
    end = next(ends)
    row = 0  # the image row the block in hand starts at
    for block in _scanlines(path, line):
        count = len(block) // line
        done = min(count, first - row) if row < first else 0  # rows of the block dealt with
        if done:  # rows above the strips: wanted only as the row above the first
            rows.pass_over(block[: done * line], last_above=row + done == first)
        while done < count:
            take = min(count - done, end - row - done)
            rows.hold(block[done * line : (done + take) * line])
            done += take
            if row + done == end:
                yield rows.undo()
                if end == last:
                    return
                end = next(ends)
        row += count
    raise JobError(f"{path}: its image data ends before row {last}")


def _scanlines(path: Path, line: int) -> Iterator[bytes]:
    """A PNG's scanlines (of `line` bytes) as zlib inflates them, whole ones at a time."""
    inflate = zlib.decompressobj()
    pending = b""
    with path.open("rb") as handle:
        for chunk_type, data in png.Reader(file=handle).chunks():
            if chunk_type == b"IEND":
                break
            while chunk_type == b"IDAT" and data:
                pending += inflate.decompress(data, INFLATE_CHUNK)
                data = inflate.unconsumed_tail
                whole = len(pending) // line * line
                if whole:
                    yield pending[:whole]
                    pending = pending[whole:]


class _Unfilter:
    """Scanlines held until their filters are undone, by Pillow, as a PNG of their own
    whose first row is the row above them, unfiltered (a filter reads the row above)."""

    def __init__(self, width: int, colour: int, line: int) -> None:
        self.width, self.line = width, line
        self.header = struct.pack(">BBBBB", 8, colour, 0, 0, 0)
        self.above: bytes | None = None  # the row above the held ones, unfiltered; None above the first row
        self.held: list[bytes] = []  # scanlines not undone yet, in runs
        self.rows = 0

    def hold(self, scanlines: bytes) -> None:
        self.held.append(scanlines)
        self.rows += len(scanlines) // self.line

    def pass_over(self, scanlines: bytes, last_above: bool) -> None:
        """Rows above the wanted ones: kept back to the last filtered None (it is itself
        unfiltered), undone now and then so that they do not pile up."""
        line = self.line
        plain = scanlines[0::line].rfind(0)
        if plain >= 0:
            self.above, self.held, self.rows = scanlines[plain * line + 1 : (plain + 1) * line], [], 0
        if len(scanlines) > (plain + 1) * line:
            self.hold(scanlines[(plain + 1) * line :])
        if self.rows >= MAX_PIECE_ROWS or (self.rows and last_above):
            self.undo()

    def undo(self) -> Image.Image:
        """The held rows with their filters undone; the last of them is the row above from then on."""
        held_rows, width = self.rows, self.width
        count = held_rows + (self.above is not None)
        raw = b"".join(self.held if self.above is None else [b"\x00", self.above, *self.held])
        strip = io.BytesIO()
        strip.write(PNG_SIGNATURE)
        _write_chunk(strip, b"IHDR", struct.pack(">II", width, count) + self.header)
        _write_chunk(strip, b"IDAT", zlib.compress(raw, 0))
        _write_chunk(strip, b"IEND", b"")
        with Image.open(strip) as image:
            image.load()
            rows = image.crop((0, count - held_rows, width, count))  # a copy: it outlives the image
        self.above = rows.crop((0, held_rows - 1, width, held_rows)).tobytes()
        self.held, self.rows = [], 0
        return rows


def sub_filtered(band: Image.Image) -> bytes:
    """A band's rows under PNG's Sub filter (each byte minus the one a pixel to its
    left, modulo 256), each row led by its filter type, 1."""
    raw = band.tobytes()
    stride = len(raw) // band.height
    pixel = stride // band.width
    # The rows as one 8-bit plane, a byte a sample: the filter is a shift and a subtraction.
    plane = Image.frombytes("L", (stride, band.height), raw)
    left = Image.new("L", plane.size)
    left.paste(plane.crop((0, 0, stride - pixel, band.height)), (pixel, 0))
    filtered = ImageChops.subtract_modulo(plane, left).tobytes()
    return b"".join(b"\x01" + filtered[row : row + stride] for row in range(0, len(filtered), stride))


def deflate_band(band: Image.Image, last: bool) -> DeflatedRows:
    """A band's rows, filtered and deflated: one piece of the image's zlib stream."""
    return deflate_rows(sub_filtered(band), last)


def deflate_rows(rows: bytes, last: bool) -> DeflatedRows:
    """One piece of the image's zlib stream (zlib lets other threads run meanwhile)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(rows) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return DeflatedRows(data, zlib.adler32(rows), len(rows))


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings joined, from theirs (zlib's adler32_combine)."""
    remainder = second_length % ADLER_BASE
    low = ((first & 0xFFFF) + (second & 0xFFFF) + ADLER_BASE - 1) % ADLER_BASE
    high = (remainder * (first & 0xFFFF) + (first >> 16) + (second >> 16) + ADLER_BASE - remainder) % ADLER_BASE
    return low | high << 16


def covering(spans: Iterable[Span], width: int = 0) -> list[Span]:
    """Spans that follow each other from row 1 on, without overlap: a part rendered
    twice (a hung node that came back) must not overlap in the stitch. With the
    image's width, rectangles whose columns join up stand in for their rows."""
    spans = list(spans)
    groups = joined_rectangles(spans, width)
    chosen: list[Span] = []
    next_row = 1
    whole = [s for s in spans if not s.columns]
    for span in sorted(whole + list(groups), key=lambda s: (s.start, -s.end, s not in whole)):
        if span.start == next_row:
            chosen.extend(groups[span] if span not in whole else [span])
            next_row = span.end + 1
    return chosen


def _write_chunk(handle: BinaryIO, chunk_type: bytes, data: bytes) -> None:
    handle.write(struct.pack(">I", len(data)) + chunk_type)
    handle.write(data)
    handle.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(chunk_type))))


def _carried_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    with path.open("rb") as handle:
        found = []
        for chunk_type, data in png.Reader(file=handle).chunks():
            if chunk_type == b"IDAT":
                return found
            if chunk_type in CARRIED_CHUNKS:
                found.append((chunk_type, data))
    return found


def _stitch_8bit(parts: Sequence[tuple[Span, Path]], width: int, height: int, output: Path) -> None:
    canvas = BandCanvas(width, height)
    for span, path in parts:
        canvas.add(span, path)
    canvas.save(output)


def _stitch_16bit(parts: Sequence[tuple[Span, Path]], width: int, height: int, output: Path) -> None:
    with parts[0][1].open("rb") as handle:
        first = png.Reader(file=handle)
        first.preamble()
        planes = first.planes
        gamma = getattr(first, "gamma", None)

    def rows() -> Iterator:
        # Raw samples (read, not asDirect): nothing rescaled on the way through.
        for span, path in parts:
            with path.open("rb") as handle:
                _, _, part_rows, info = png.Reader(file=handle).read()
                if info["planes"] != planes:
                    raise JobError(f"{path}: part has {info['planes']} channels, expected {planes}")
                for index, row in enumerate(part_rows, start=1):
                    if index > span.end:
                        break
                    if index >= span.start:
                        yield row

    writer = png.Writer(
        width,
        height,
        greyscale=planes in (1, 2),
        alpha=planes in (2, 4),
        bitdepth=16,
        gamma=gamma,
    )
    with output.open("wb") as handle:
        writer.write(handle, rows())
