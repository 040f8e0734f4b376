from fabfile.meeting import Grid, block_step, meeting_block


def nebula_480x360() -> Grid:
    # 15 block columns of 32 pixels; 11 block rows of 32 rows and a last one of 8.
    return Grid((32,) * 11 + (8,), (32,) * 15)


def test_a_top_down_povrays_count_tells_the_blocks_it_has_finished():
    grid = nebula_480x360()
    assert grid.blocks == 180 and grid.total == 480 * 360
    assert grid.top_down_count(15) == 480 * 32  # its first block row
    assert grid.top_down_count(17) == 480 * 32 + 2 * 1024
    assert grid.top_down_done(480 * 32 + 2 * 1024 + 1000) == 17  # the 18th block is not finished
    assert grid.top_down_done(grid.total) == 180


def test_a_bottom_up_povrays_count_tells_where_its_blocks_begin():
    # POV-Ray's block step blocks-1 renders block 0 first, then the last, the one before it...
    grid = nebula_480x360()
    assert block_step(grid.blocks) == 179
    assert grid.bottom_up_count(165) == 1024 + 15 * 256  # block 0 and the last block row (8 rows)
    assert grid.bottom_up_from(1024 + 15 * 256) == 165
    # Measured: a bottom-up render stopped at this count had rows 129-360 and the right 7 blocks
    # of rows 97-128 (block columns 8-14 of block row 3) in its state file, and block 0.
    assert grid.bottom_up_from(119552) == 3 * 15 + 8
    assert grid.bottom_up_from(1024) == 180  # only block 0: none of its own side yet
    assert block_step(2) is None  # two blocks keep their order


def test_two_parts_meet_where_both_end_together():
    # Ten blocks between them; the top-down side is twice as slow per block.
    kept, seconds = meeting_block(20, 30, [2.0] * 10, [1.0] * 10)
    assert kept == 23 and seconds == 7.0  # top: 3 blocks (6 s), bottom: 7 blocks (7 s)
    kept, seconds = meeting_block(20, 30, [1.0] * 5 + [9.0] * 5, [1.0] * 10)
    assert kept == 25  # a dear stretch goes to the other side
    assert meeting_block(40, 30, [], []) == (40, 0.0)  # passed each other: where the top-down one is
