import pytest

from fabfile.plan import (
    FINE_ROWS,
    FRAMES,
    ROWS,
    Span,
    column_ranges,
    covered_units,
    joined,
    parse_part_name,
    plan_frames,
    plan_still,
    rescale_costs,
    still_unit_rows,
)


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


def test_an_earlier_renders_costs_rescale_to_another_size():
    old = plan_still(64, 32)  # two blocks: the top one cost 3 s, the bottom one 1 s
    assert rescale_costs(old, [3.0, 1.0], old) == [3.0, 1.0]
    # Twice the height: four blocks, each half of an old one.
    assert rescale_costs(old, [3.0, 1.0], plan_still(128, 32)) == [1.5, 1.5, 0.5, 0.5]
    # 48 rows: a full block (two thirds of the height) and a short one.
    weights = rescale_costs(old, [3.0, 1.0], plan_still(48, 32))
    assert weights == pytest.approx([3.0 + 1.0 / 3, 2.0 / 3])


def test_a_still_without_antialiasing_splits_on_any_row():
    # Antialiasing looks across POV-Ray's render blocks; without it any row may start a band.
    assert still_unit_rows(antialias=True) == 32
    assert still_unit_rows(antialias=True, block_size=16) == 16
    assert still_unit_rows(antialias=False) == FINE_ROWS == 1
    plan = plan_still(360, still_unit_rows(antialias=False))
    assert len(plan.units) == 360
    assert plan.span(0, 179) == Span(ROWS, 1, 180)  # two even bands of a 360-row image
    assert plan.span(7, 9) == Span(ROWS, 8, 10)  # off POV-Ray's 32-row block grid


def test_a_band_split_by_columns_names_and_pieces_itself():
    band = Span(ROWS, 1, 64).narrowed(1, 736, 33)
    assert band.name == "rows-0001-0064-c0033-0001-0736"
    assert parse_part_name(band.name) == band
    assert band.pieces() == [Span(ROWS, 1, 32), Span(ROWS, 33, 64, (1, 736), 33)]
    rectangle = Span(ROWS, 33, 64).narrowed(737, 960, 33)
    assert rectangle.pieces() == [rectangle]
    assert "columns 737-960" in rectangle.label()


def test_a_unit_split_by_columns_is_covered_once_its_columns_join_up():
    plan = plan_still(96, 32)
    left = Span(ROWS, 1, 64).narrowed(1, 64, 33)
    right = Span(ROWS, 33, 64).narrowed(65, 100, 33)
    assert covered_units(plan, [left], 100) == {0}
    assert covered_units(plan, [left, Span(ROWS, 33, 64).narrowed(66, 100, 33)], 100) == {0}  # column 65 missing
    assert covered_units(plan, [left, right], 100) == {0, 1}
    assert column_ranges(100, 32) == [(1, 32), (33, 64), (65, 96), (97, 100)]
    assert joined([(33, 64), (1, 32), (65, 100)], 100) and not joined([(1, 32), (34, 100)], 100)
