from fabfile.plan import FRAMES, ROWS, Span, parse_part_name, plan_frames, plan_still


def test_still_units_follow_the_32_row_block_grid():
    plan = plan_still(100)
    assert plan.units == ((1, 32), (33, 64), (65, 96), (97, 100))
    assert plan.total == 100
    assert plan.span(1, 2) == Span(ROWS, 33, 96)
    assert list(plan.units_of(Span(ROWS, 33, 96))) == [1, 2]


def test_other_block_sizes_and_tiny_images():
    assert plan_still(20, block=8).units == ((1, 8), (9, 16), (17, 20))
    assert plan_still(1).units == ((1, 1),)


def test_frames_are_units_and_part_names_round_trip():
    plan = plan_frames((3, 4, 5))
    assert plan.kind == FRAMES and plan.total == 3
    span = plan.span(0, 2)
    assert span.name == "frames-0003-0005"
    assert parse_part_name(span.name) == span
    assert parse_part_name("something-else") is None
    assert Span(FRAMES, 4, 4).label() == "frame 4"
