"""A still's live preview: renders/<job>/preview.png, the image so far, for any image viewer.

Rows come in as the stitcher decodes each kept part (BandCanvas hands over
every strip it deflates): no part is decoded twice. The preview is the image
scaled to at most PREVIEW_WIDTH pixels wide, black where nothing is kept yet,
written (to a temporary file, then renamed: a viewer never reads half a file)
at most every few seconds and once at the end. Rows of parts still rendering
are not in it: they exist only in POV-Ray's state file on their node.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from fabfile.errors import JobError
from fabfile.merge import png_strips
from fabfile.plan import Span

PREVIEW = "preview.png"  # the still so far, in the job's folder
PREVIEW_WIDTH = 800
EVERY = 2.0  # seconds between writes at most


class Preview:
    def __init__(self, path: Path, width: int, height: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.scale = min(1.0, PREVIEW_WIDTH / max(1, width))
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        self.image: Image.Image | None = None
        self.clock = clock
        self.written_at = -math.inf
        self.changed = False

    def add_strip(self, top: int, strip: Image.Image, left: int = 0) -> None:
        """Rows `top` (0-based) onwards of the image, as decoded (from column `left` if narrowed)."""
        if self.image is None:
            self.image = Image.new(strip.mode, self.size)
        first = math.floor(top * self.scale)
        last = min(max(first + 1, math.floor((top + strip.height) * self.scale)), self.size[1])
        x = math.floor(left * self.scale)
        wide = max(1, min(self.size[0], math.floor((left + strip.width) * self.scale)) - x)
        if last > first:
            self.image.paste(strip.convert(self.image.mode).resize((wide, last - first)), (x, first))
            self.changed = True

    def add_part(self, span: Span, path: Path) -> None:
        """A part kept before (a resumed job): its rows, decoded here (8-bit parts only)."""
        try:
            (strip,) = png_strips(path, [span.start - 1, span.end])
        except JobError:
            return  # a 16-bit part: the preview goes without it
        if span.columns:
            left, right = span.columns
            self.add_strip(span.start - 1, strip.crop((left - 1, 0, right, span.size)), left - 1)
        else:
            self.add_strip(span.start - 1, strip)

    def flush(self, force: bool = False) -> None:
        """Write the preview if it changed and a while has passed (or `force`)."""
        if self.image is None or not self.changed or (not force and self.clock() - self.written_at < EVERY):
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        self.image.save(temporary, "PNG", compress_level=1)
        os.replace(temporary, self.path)
        self.written_at, self.changed = self.clock(), False
