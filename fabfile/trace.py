"""What a running still's POV-Ray has finished, and when.

A still's part command streams POV-Ray's log back as it grows (see
NodeJob.render). With +V POV-Ray logs a line per finished block ("Rendered N
of M pixels"), in bursts (about every 0.2 s). A PixelTrace keeps, per burst,
when it arrived and the pixels finished by then: the farm reads a part's
progress from it without a command of its own, and what each unit of a part
cost (`block_costs`), which a render of the same scene again is sized by.

Pure: no SSH here, so the arithmetic is unit-tested alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise

RENDERED = re.compile(r"Rendered (\d+) of \d+ pixels")
LINE_ENDS = re.compile(r"[\r\n]")
TRACING = "[Rendering...]"  # POV-Ray's banner as it starts on its blocks


class PixelTrace:
    """(arrival time, pixels finished) of a POV-Ray's progress lines, in order.

    One thread feeds it (the command's output reader), others read it: a
    sample is appended whole, and readers look only at what is there.
    """

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._partial = ""

    def feed(self, text: str, now: float) -> None:
        """Output that arrived at `now` (POV-Ray ends its progress lines with CR)."""
        text = self._partial + text
        ends = [m.end() for m in LINE_ENDS.finditer(text)]
        done = ends[-1] if ends else 0
        # A line with no end yet waits for the next chunk (a long one is not a progress line).
        self._partial = text[done:][-200:]
        if not self.samples and TRACING in text[:done]:
            self.samples.append((now, 0))  # the first block's start
        counts = [int(count) for count in RENDERED.findall(text, 0, done)]
        last = self.samples[-1][1] if self.samples else 0
        for count in counts:
            if count < last:
                # POV-Ray counted a radiosity pretrace's pixels first; its final trace
                # counts again from its first block, after the last pretrace count.
                self.samples = [(self.samples[-1][0] if self.samples else now, 0)]
            last = count
        if counts:
            pixels = counts[-1]
            if not self.samples or pixels > self.samples[-1][1]:
                self.samples.append((now, pixels))

    def latest(self) -> tuple[float, int] | None:
        """When the last progress arrived, and the pixels finished then (None before a block)."""
        return self.samples[-1] if self.samples and self.samples[-1][1] else None

    def time_at(self, pixels: int) -> float | None:
        """When `pixels` had been finished, between the bursts before and after
        (evenly within them); None if that is not in the trace (yet)."""
        samples = self.samples
        for index, (at, count) in enumerate(samples):
            if count >= pixels:
                if count == pixels:
                    return at
                if index == 0:
                    return None  # when the first burst's pixels began is unknown
                before_at, before = samples[index - 1]
                return before_at + (at - before_at) * (pixels - before) / (count - before)
        return None


def block_costs(trace: PixelTrace, row_start: int, block_ends: Sequence[int]) -> list[float] | None:
    """The seconds each block of a block row took, from a one-thread POV-Ray's
    trace (its blocks come in order): the row began once `row_start` pixels of
    its count were finished, and its blocks end at the counts `block_ends`.
    None unless the trace holds the whole row, its start included."""
    if row_start < 0:
        return None
    times = [trace.time_at(row_start), *(trace.time_at(end) for end in block_ends)]
    if any(t is None for t in times):
        return None
    return [max(0.0, after - before) for before, after in pairwise(times)]
