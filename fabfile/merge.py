"""Merge: stitch a still from its row bands, or gather an animation's frames.

POV-Ray writes a partial render as a full-size PNG whose rows outside the
band are black, so each band is cut from its own part and pasted in place.
8-bit images go through Pillow: the result is held once, one part at a time
beside it. Pillow reads 16-bit RGB(A) PNGs as 8-bit, which would lose the
low byte, so 16-bit images are streamed row by row through pypng instead,
holding one row at a time.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import png
from PIL import Image, PngImagePlugin

from fabfile.errors import JobError
from fabfile.plan import Span

# Chunks worth carrying from POV-Ray's own output: how to read its colours.
CARRIED_CHUNKS = (b"gAMA", b"sRGB", b"cHRM", b"iCCP")


def png_header(path: Path) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type from a PNG's IHDR."""
    with path.open("rb") as handle:
        head = handle.read(29)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise JobError(f"{path}: not a PNG file")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour


def stitch_bands(parts: Sequence[tuple[Span, Path]], width: int, height: int, output: Path) -> Path:
    """Write the still whose rows come from each part's band."""
    ordered = sorted(parts, key=lambda item: item[0].start)
    _check_coverage([span for span, _ in ordered], height)
    depths = set()
    for _, path in ordered:
        part_width, part_height, depth, _ = png_header(path)
        if (part_width, part_height) != (width, height):
            raise JobError(f"{path}: part is {part_width}x{part_height}, expected {width}x{height}")
        depths.add(depth)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    if depths == {16}:
        _stitch_16bit(ordered, width, height, temporary)
    elif len(depths) == 1:
        _stitch_pillow(ordered, width, height, temporary)
    else:
        raise JobError(f"parts of {output.name} differ in bit depth {sorted(depths)}; render them again")
    os.replace(temporary, output)
    return output


def gather_frames(frames: Sequence[tuple[int, Path]], folder: Path, stem: str, final_frame: int) -> list[Path]:
    """Copy frames into folder, named as POV-Ray names them (stem + padded number)."""
    folder.mkdir(parents=True, exist_ok=True)
    digits = len(str(abs(final_frame)))
    written: list[Path] = []
    for frame, path in sorted(frames):
        target = folder / f"{stem}{frame:0{digits}d}.png"
        shutil.copyfile(path, target)
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


def _carried_info(path: Path) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    with path.open("rb") as handle:
        for chunk_type, data in png.Reader(file=handle).chunks():
            if chunk_type in CARRIED_CHUNKS:
                info.add(chunk_type, data)
            if chunk_type == b"IDAT":
                break
    return info


class BandCanvas:
    """An 8-bit still stitched with Pillow as its parts arrive, so that the end
    of a job costs one encode, not a decode of every part."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.image: Image.Image | None = None
        self.info_source: Path | None = None
        self.spans: list[Span] = []

    def add(self, span: Span, path: Path) -> bool:
        """Paste a part's band; False (nothing done) for a 16-bit part."""
        if png_header(path)[2] != 8:
            return False
        with Image.open(path) as part:
            if self.image is None:
                self.image = Image.new(part.mode, (self.width, self.height))
                self.info_source = path
            elif part.mode != self.image.mode:
                raise JobError(f"{path}: part is {part.mode}, expected {self.image.mode}; render it again")
            box = (0, span.start - 1, self.width, span.end)
            self.image.paste(part.crop(box), box)
        self.spans.append(span)
        return True

    @property
    def complete(self) -> bool:
        next_row = 1
        for span in sorted(self.spans, key=lambda s: s.start):
            if span.start > next_row:
                return False
            next_row = max(next_row, span.end + 1)
        return next_row > self.height

    def save(self, output: Path) -> Path:
        if self.image is None or self.info_source is None:
            raise JobError(f"{output.name}: no part to stitch")
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(f".{output.name}.tmp")
        self.image.save(temporary, format="PNG", pnginfo=_carried_info(self.info_source))
        os.replace(temporary, output)
        return output


def _stitch_pillow(parts: Sequence[tuple[Span, Path]], width: int, height: int, output: Path) -> None:
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
