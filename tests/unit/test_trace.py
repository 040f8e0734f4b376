from fabfile.trace import PixelTrace, block_costs


def progress(*counts: int, total: int = 4096) -> str:
    return "".join(f"Rendered {count} of {total} pixels ({100 * count // total}%)\r" for count in counts)


def test_a_trace_keeps_the_last_count_of_each_burst_when_it_arrived():
    trace = PixelTrace()
    trace.feed("Persistence of Vision(tm) Ray Tracer\n[Parsing...]\n", 0.1)
    assert trace.latest() is None
    trace.feed(progress(1024, 2048), 0.5)
    # A line cut by the chunk's end waits for the rest of it.
    trace.feed(progress(3072)[:12], 0.7)
    assert trace.latest() == (0.5, 2048)
    trace.feed(progress(3072)[12:], 0.9)
    trace.feed(progress(3072), 1.0)  # nothing new: not a sample
    assert trace.samples == [(0.5, 2048), (0.9, 3072)]


def test_a_trace_tells_when_a_count_was_reached_between_bursts():
    trace = PixelTrace()
    trace.feed(progress(1024), 1.0)
    trace.feed(progress(3072), 2.0)
    assert trace.time_at(1024) == 1.0
    assert trace.time_at(2048) == 1.5  # evenly within the burst
    assert trace.time_at(512) is None  # before the first burst: when it began is unknown
    assert trace.time_at(4096) is None  # not rendered yet


def test_block_costs_of_a_row_come_from_the_trace_and_need_all_of_it():
    trace = PixelTrace()
    # A row of four 1024-pixel blocks after 4096 pixels: cheap, cheap, dear, dear.
    for at, count in [(1.0, 4096), (1.1, 5120), (1.2, 6144), (2.2, 7168), (3.2, 8192)]:
        trace.feed(progress(count, total=16384), at)
    costs = block_costs(trace, 4096, [5120, 6144, 7168, 8192])
    assert costs is not None
    assert [round(c, 3) for c in costs] == [0.1, 0.1, 1.0, 1.0]
    assert block_costs(trace, 0, [1024]) is None  # the run's first row: its start is not in this trace
    first = PixelTrace()
    first.feed("==== [Rendering...] ====\n", 0.5)  # ... unless it saw POV-Ray start on its blocks
    assert first.latest() is None  # no block yet
    first.feed(progress(1024, 2048), 1.5)
    assert block_costs(first, 0, [1024, 2048]) == [0.5, 0.5]
    assert block_costs(trace, 8192, [9216]) is None  # not rendered yet




def test_a_radiosity_pretrace_count_is_dropped_when_the_final_trace_counts_again():
    # POV-Ray counts a radiosity pretrace's pixels first, up to the band's size, then
    # starts again from its first block: only the final trace's blocks are the part's.
    trace = PixelTrace()
    trace.feed("==== [Rendering...] ====\n", 0.1)
    trace.feed(progress(1024, 3072, 4096, 1024, 2048), 0.5)  # both in one burst
    assert trace.samples == [(0.1, 0), (0.5, 2048)]
    across = PixelTrace()
    across.feed(progress(2048, 4000), 0.4)
    across.feed(progress(1024), 0.6)  # the final trace's first block, in the next burst
    assert across.samples == [(0.4, 0), (0.6, 1024)]
    assert across.latest() == (0.6, 1024)
