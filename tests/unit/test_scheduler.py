"""The scheduler's decisions, one by one: events in, commands out."""

import pytest

from fabfile.eta import ShownEta, remaining_seconds
from fabfile.events import (
    Cut,
    Finish,
    GiveUp,
    Interrupt,
    Keep,
    LeaveOut,
    NodeLost,
    Part,
    PartDone,
    PartFailed,
    PartStopped,
    Progress,
    Start,
    Stop,
    Tick,
    Warn,
)
from fabfile.scheduler import Policy, Scheduler


def still(units=12, nodes=("a", "b"), **kwargs) -> Scheduler:
    return Scheduler(unit_count=units, slots=dict.fromkeys(nodes, 1), capacity=len(nodes), cuttable=True, **kwargs)


def frames(units=20, nodes=("a", "b"), slots=2, **kwargs) -> Scheduler:
    return Scheduler(unit_count=units, slots=dict.fromkeys(nodes, slots), capacity=len(nodes), **kwargs)


def starts(commands) -> list[Start]:
    return [c for c in commands if isinstance(c, Start)]


def of(kind, commands) -> list:
    return [c for c in commands if isinstance(c, kind)]


def test_a_still_starts_as_one_band_per_slot_in_order():
    commands = still(12, ("a", "b", "c")).begin(0.0)
    assert [(s.node, s.part.first, s.part.last) for s in commands] == [("a", 0, 3), ("b", 4, 7), ("c", 8, 11)]


def test_an_earlier_renders_costs_make_the_first_bands_even_in_cost():
    prior = [1.0] * 6 + [5.0] * 6  # the lower half is five times dearer
    commands = still(12, prior=prior).begin(0.0)
    first, second = (s.part for s in commands)
    assert (first.first, first.last, second.first, second.last) == (0, 7, 8, 11)


def test_a_resumed_job_renders_only_what_is_missing():
    scheduler = still(12, done=set(range(0, 6)))
    parts = [s.part for s in scheduler.begin(0.0)]
    assert sorted(u for p in parts for u in p.units) == list(range(6, 12))


def test_frames_go_out_in_parts_that_shrink_towards_the_end_and_each_once():
    scheduler = frames(40)
    commands = scheduler.begin(0.0)
    sizes, rendered, now = [], [], 0.0
    while not scheduler.finished:
        start = starts(commands)[0]
        sizes.append(start.part.count)
        rendered += list(start.part.units)
        now += start.part.count
        rest = [c for c in commands if c is not start]
        commands = rest + scheduler.handle(PartDone(start.node, start.part, now, cpu=float(start.part.count)))
    assert sorted(rendered) == list(range(40))
    assert sizes[0] > sizes[-1] == 1


def test_a_finished_part_is_kept_once_and_the_job_finishes():
    scheduler = still(4)
    a, b = starts(scheduler.begin(0.0))
    kept = scheduler.handle(PartDone("a", a.part, 1.0, cpu=1.0))
    assert of(Keep, kept) == [Keep("a", a.part, (0, 1))]
    assert scheduler.handle(PartDone("a", a.part, 1.1, cpu=1.0)) == []  # a report of nothing running
    end = scheduler.handle(PartDone("b", b.part, 2.0, cpu=1.0))
    assert of(Keep, end) and of(Finish, end) and scheduler.finished


def moving(scheduler, node, part, fractions, start=0.0, step=1.0):
    """Feed progress of a part: units done at each step."""
    now = start
    commands = []
    for done in fractions:
        now += step
        commands += scheduler.handle(Progress(node, part, done, now))
    return commands, now


def test_an_idle_slot_cuts_the_band_that_will_end_last_and_takes_its_rest():
    scheduler = still(20)
    a, b = starts(scheduler.begin(0.0))
    _, now = moving(scheduler, "b", b.part, [0.5, 1.0, 1.5])  # 2 s a unit: 17 s left
    commands = scheduler.handle(PartDone("a", a.part, now, cpu=now))
    cut, start = of(Cut, commands)[0], starts(commands)[0]
    assert cut.node == "b" and cut.part == b.part
    # It keeps the unit in progress and half of what comes after it.
    assert cut.keep_last == b.part.first + 1 + 4
    assert start.node == "a" and start.part.first == cut.keep_last + 1 and start.part.last == b.part.last


def test_no_cut_when_it_would_save_less_than_a_start():
    scheduler = still(4, policy=Policy(start_cost=5.0))
    a, b = starts(scheduler.begin(0.0))
    _, now = moving(scheduler, "b", b.part, [0.5, 1.0])  # 1 s left in units... 2 s a unit
    assert of(Cut, scheduler.handle(PartDone("a", a.part, now, cpu=now))) == []


def test_a_band_not_seen_moving_lately_is_not_cut():
    scheduler = still(20, policy=Policy(moving_window=2.0))
    a, b = starts(scheduler.begin(0.0))
    moving(scheduler, "b", b.part, [0.5, 1.0])
    assert of(Cut, scheduler.handle(PartDone("a", a.part, 10.0, cpu=10.0))) == []
    # It moves again: now it is cut.
    assert of(Cut, scheduler.handle(Progress("b", b.part, 3.0, 11.0)))


def test_a_cut_band_continues_from_its_state_file_over_what_it_kept():
    scheduler = still(20)
    a, b = starts(scheduler.begin(0.0))
    _, now = moving(scheduler, "b", b.part, [0.5, 1.0, 1.5])
    cut = of(Cut, scheduler.handle(PartDone("a", a.part, now, cpu=now)))[0]
    commands = scheduler.handle(PartStopped("b", b.part, 1.75, now + 0.5, cpu=3.5))
    continuation = starts(commands)[0]
    assert continuation == Start("b", Part(b.part.first, cut.keep_last, b.part.attempt), b.part, 1.75)
    # The units it rendered have a cost; the one it stopped in is completed by the continuation.
    assert b.part.first in scheduler.unit_cost


def test_a_band_that_finished_whole_before_its_cut_took_stops_the_rest():
    scheduler = still(20)
    a, b = starts(scheduler.begin(0.0))
    _, now = moving(scheduler, "b", b.part, [0.5, 1.0, 1.5])
    rest = starts(scheduler.handle(PartDone("a", a.part, now, cpu=now)))[0]
    commands = scheduler.handle(PartDone("b", b.part, now + 1, cpu=now))
    assert of(Keep, commands)[0].new_units == tuple(b.part.units)
    assert Stop("a", rest.part, "its rows were rendered elsewhere") in commands
    assert of(Finish, commands)


def test_a_failed_part_goes_back_and_a_repeat_offender_is_left_out():
    scheduler = frames(6, slots=1, policy=Policy(max_failures=2))
    a, b = starts(scheduler.begin(0.0))
    first = scheduler.handle(PartFailed("a", a.part, "node a: boom", 1.0))
    assert of(Warn, first) == [Warn("node a: boom; {part} goes back to the queue", a.part, "a")]
    again = starts(first)
    assert again and again[0].node == "a"
    assert set(a.part.units) <= set(again[0].part.units) | set(scheduler.pending())
    second = scheduler.handle(PartFailed("a", again[0].part, "node a: boom", 2.0))
    assert LeaveOut("a", "node a: boom") in second
    assert not starts(second)  # b is busy; a is out


def test_a_scene_error_does_not_count_against_the_node():
    scheduler = frames(6, slots=1, policy=Policy(max_failures=1))
    a, _ = starts(scheduler.begin(0.0))
    commands = scheduler.handle(PartFailed("a", a.part, "parse error", 1.0, node_fault=False))
    assert not of(LeaveOut, commands) and scheduler.usable("a")


def test_with_every_node_left_out_the_job_gives_up():
    scheduler = frames(6, slots=1)
    scheduler.begin(0.0)
    scheduler.handle(NodeLost("a", "connection lost", 1.0))
    commands = scheduler.handle(NodeLost("b", "connection lost", 2.0))
    assert of(GiveUp, commands) and "connection lost" in of(GiveUp, commands)[0].reason


def test_a_lost_nodes_parts_go_to_the_others():
    scheduler = frames(4, slots=1)
    a, b = starts(scheduler.begin(0.0))
    scheduler.handle(NodeLost("a", "connection lost", 0.5))
    commands = scheduler.handle(PartDone("b", b.part, 1.0, cpu=1.0))
    assert set(a.part.units) <= {u for s in starts(commands) for u in s.part.units}


def test_a_part_far_slower_than_any_seen_is_handed_on_and_stopped():
    scheduler = frames(2, slots=1, policy=Policy(hang_grace=5.0, hang_factor=4.0))
    a, b = starts(scheduler.begin(0.0))
    scheduler.handle(PartDone("a", a.part, 1.0, cpu=1.0))  # ~1 s a frame at most
    assert of(Stop, scheduler.handle(Tick(4.0))) == []  # within the grace
    commands = scheduler.handle(Tick(30.0))
    assert Stop("b", b.part, "presumed hung") in commands and of(Warn, commands)
    assert not scheduler.usable("b")
    assert set(b.part.units) <= {u for s in starts(commands) for u in s.part.units}  # handed to a
    # The hung part answers in the end: its node may render again.
    scheduler.handle(PartFailed("b", b.part, "killed", 31.0))
    assert scheduler.usable("b")


def test_a_part_seen_moving_is_dear_not_hung():
    scheduler = still(20, policy=Policy(hang_grace=5.0, moving_window=3.0))
    a, b = starts(scheduler.begin(0.0))
    scheduler.handle(Progress("a", a.part, 5.0, 1.0))
    scheduler.handle(PartDone("a", a.part, 2.0, cpu=2.0))
    scheduler.handle(Progress("b", b.part, 0.2, 29.0))
    assert not [c for c in scheduler.handle(Tick(30.0)) if isinstance(c, Stop) and c.reason == "presumed hung"]


def test_a_cut_units_cost_adds_the_run_that_continued_it():
    scheduler = still(20)
    a, b = starts(scheduler.begin(0.0))
    _, now = moving(scheduler, "b", b.part, [0.5, 1.0, 1.5])
    cut = of(Cut, scheduler.handle(PartDone("a", a.part, now, cpu=now)))[0]
    continuation = starts(scheduler.handle(PartStopped("b", b.part, 1.5, now, cpu=3.0)))[0]
    first = b.part.first
    scheduler.handle(PartDone("b", continuation.part, now + 5, cpu=1.0 + 2 * (cut.keep_last - first - 1)))
    # Unit first+1 was half done by the cut run (1 s) and finished by the continuation (1 s).
    assert abs(scheduler.unit_cost[first] - 2.0) < 1e-6
    assert abs(scheduler.unit_cost[first + 1] - 2.0) < 1e-6


def one_row_each(columns=10) -> tuple[Scheduler, Start, Start]:
    """Two nodes, two block rows of `columns` block columns: a part of one row each."""
    scheduler = Scheduler(unit_count=2, slots={"a": 1, "b": 1}, capacity=2, cuttable=True, columns=columns)
    a, b = starts(scheduler.begin(0.0))
    return scheduler, a, b


def test_a_part_of_one_block_row_is_cut_by_its_columns():
    scheduler, a, b = one_row_each()
    scheduler.handle(Progress("a", a.part, 0.1, 1.0))
    scheduler.handle(Progress("a", a.part, 0.25, 2.5))  # 10 s a row: a block a second, in block 2
    commands = scheduler.handle(PartDone("b", b.part, 2.5, cpu=2.5))
    cut, start = of(Cut, commands)[0], starts(commands)[0]
    assert cut == Cut("a", a.part, 0, keep_column=cut.keep_column) and 2 <= cut.keep_column < 9
    # The idle node takes the block columns after those it keeps, as a piece of the row.
    assert start.node == "b" and start.part == Part(0, 0, a.part.attempt + 1, (cut.keep_column + 1, 9))
    # Stopped, the part continues from its state file over the columns it keeps; what it did
    # (a quarter of the row) is counted against them.
    continuation = starts(scheduler.handle(PartStopped("a", a.part, 0.25, 3.0)))[0]
    assert continuation.part == Part(0, 0, a.part.attempt, (0, cut.keep_column))
    assert continuation.resume_from == a.part
    assert abs(continuation.units_before - 0.25 * 10 / (cut.keep_column + 1)) < 1e-9


def test_a_row_cut_by_columns_is_done_once_all_its_columns_are_in():
    scheduler, a, b = one_row_each()
    moving(scheduler, "a", a.part, [0.1, 0.25])
    commands = scheduler.handle(PartDone("b", b.part, 2.5, cpu=2.5))
    cut, piece = of(Cut, commands)[0], starts(commands)[0]
    continuation = starts(scheduler.handle(PartStopped("a", a.part, 0.25, 3.0)))[0]
    first = scheduler.handle(PartDone("b", piece.part, 6.0, cpu=3.0))
    assert of(Keep, first) == [Keep("b", piece.part, ())] and 0 not in scheduler.done  # columns in, row not yet
    last = scheduler.handle(PartDone("a", continuation.part, 7.0, cpu=3.0))
    assert of(Keep, last) == [Keep("a", continuation.part, (0,))] and of(Finish, last)
    assert cut.keep_column + 1 == piece.part.columns[0]


def test_a_failed_piece_of_a_row_goes_out_again_first():
    scheduler, a, b = one_row_each()
    moving(scheduler, "a", a.part, [0.1, 0.25])
    piece = starts(scheduler.handle(PartDone("b", b.part, 2.5, cpu=2.5)))[0]
    again = starts(scheduler.handle(PartFailed("b", piece.part, "node b: boom", 4.0)))
    assert again and again[0].node == "b" and again[0].part.columns == piece.part.columns


def test_a_band_of_several_rows_is_not_cut_by_columns():
    # Narrowed, a band's blocks would be renumbered in POV-Ray's state file.
    scheduler = Scheduler(unit_count=4, slots={"a": 1, "b": 1}, capacity=2, cuttable=True, columns=10)
    a, b = starts(scheduler.begin(0.0))
    moving(scheduler, "a", a.part, [1.2, 1.5])  # in its last unit
    assert not of(Cut, scheduler.handle(PartDone("b", b.part, 3.0, cpu=3.0)))


def test_a_part_takes_no_more_than_a_share_of_units_nobody_measured():
    # 64 frames, 4 slots on 2 cores: by cost alone a first part would take 21 frames; unmeasured,
    # it takes at most 64 / (1.5 x 4) of them, so the end of the job is not one node's long part.
    scheduler = frames(64, slots=2)
    parts = [s.part for s in starts(scheduler.begin(0.0))]
    assert max(p.count for p in parts) == 11
    # Frames next to measured ones are trusted: a part may take more of them.
    scheduler.handle(PartDone("a", parts[0], 11.0, cpu=11.0))
    assert scheduler.costs.trusted(parts[0].last + 1) and not scheduler.costs.trusted(parts[0].last + 2)


def test_a_band_whose_log_falls_silent_is_presumed_hung():
    scheduler = still(20, policy=Policy(hang_grace=5.0, hang_factor=4.0))
    a, b = starts(scheduler.begin(0.0))
    for t in range(1, 5):  # reports a second apart: the longest gap is 1 s
        scheduler.handle(Progress("a", a.part, 0.5 * t, float(t)))
        scheduler.handle(Progress("b", b.part, 0.5 * t, float(t)))
    for t in (6.0, 8.0, 10.0, 12.0):  # a in dear blocks: 2 s between reports, the longest gap now
        scheduler.handle(Progress("a", a.part, 2.0 + t / 8, t))
    assert not of(Stop, scheduler.handle(Tick(11.5)))  # b silent 7.5 s: under 4 x 2 s
    commands = scheduler.handle(Tick(12.5))  # 8.5 s: past the grace and 4 x the longest gap
    assert Stop("b", b.part, "presumed hung") in commands and not scheduler.usable("b")
    assert not [c for c in commands if isinstance(c, Stop) and c.node == "a"]


def test_rows_an_earlier_render_found_free_weigh_nothing_in_the_first_wave():
    # A log puts a block row's time on some rows and none on others: the free rows must not
    # count as the unknown 1 of a first render (seen: bands of 167 and 193 rows of an even scene).
    prior = [0.0] * 90 + [0.2] * 90 + [0.1] * 180  # each half costs 18
    first, second = (s.part for s in still(360, prior=prior).begin(0.0))
    assert (first.first, first.last, second.first, second.last) == (0, 179, 180, 359)


def test_an_interrupt_keeps_what_each_band_rendered_and_starts_nothing_more():
    scheduler = still(12, nodes=("a", "b", "c"), continuable=True)
    a, b, c = starts(scheduler.begin(0.0))  # four units each
    scheduler.handle(Progress("a", a.part, 2.6, 1.0))
    scheduler.handle(Progress("b", b.part, 0.4, 1.0))
    commands = scheduler.handle(Interrupt(1.2))
    # a keeps its two whole units; b has none whole: it stops; c reported nothing: it stops.
    assert of(Cut, commands) == [Cut("a", a.part, a.part.first + 1)]
    assert set(of(Stop, commands)) == {Stop("b", b.part, "the job was interrupted"),
                                       Stop("c", c.part, "the job was interrupted")}
    assert not starts(commands) and not of(Finish, commands)
    continuation = scheduler.handle(PartStopped("a", a.part, 2.7, 1.5, cpu=1.5))
    assert starts(continuation) == [Start("a", Part(a.part.first, a.part.first + 1, a.part.attempt), a.part, 2.7)]
    assert not scheduler.handle(Tick(100.0))  # no hang is presumed, nothing new starts
    kept = Part(a.part.first, a.part.first + 1, a.part.attempt)
    ended = scheduler.handle(PartDone("a", kept, 2.0, cpu=0.1))
    assert of(Keep, ended)[0].new_units == (0, 1)
    assert of(Finish, ended) and not starts(ended)
    assert scheduler.pending() == list(range(2, 12))  # for --resume


def test_an_interrupted_frame_job_stops_its_parts():
    scheduler = frames(6, nodes=("a",), slots=1)
    (first,) = starts(scheduler.begin(0.0))
    scheduler.handle(Progress("a", first.part, 1.5, 1.0))
    commands = scheduler.handle(Interrupt(1.0))
    assert of(Stop, commands) == [Stop("a", first.part, "the job was interrupted")]
    assert of(Finish, commands)


def test_the_eta_is_each_bands_rest_at_its_own_pace_spread_over_the_slots():
    scheduler = still(12)
    a, b = starts(scheduler.begin(0.0))  # six units each
    assert remaining_seconds(scheduler, 1.0) is None  # no pace yet
    scheduler.handle(Progress("a", a.part, 3.0, 3.0))  # a unit a second: 3 to go
    scheduler.handle(Progress("b", b.part, 1.0, 3.0))  # a unit in 3 seconds: 15 s to go
    assert remaining_seconds(scheduler, 3.0) == (3.0 + 15.0) / 2  # cuts share the rest out


def test_the_eta_of_a_band_too_short_to_be_worth_cutting_is_its_own_rest():
    scheduler = still(12)
    a, b = starts(scheduler.begin(0.0))  # six units each; a start-up costs 0.5 s until measured
    scheduler.handle(Progress("a", a.part, 5.9, 2.0))  # all but a sliver done
    scheduler.handle(Progress("b", b.part, 4.5, 2.0))  # 1.5 units at 2.25 a second: 0.67 s
    b_alone = 1.5 / (4.5 / 2.0)
    # Shared out, the rest would take 0.35 s; no cut pays for itself on 0.67 s, so b ends alone.
    assert remaining_seconds(scheduler, 2.0) == pytest.approx(b_alone)
    longer = still(12)
    c, d = starts(longer.begin(0.0))
    longer.handle(Progress("a", c.part, 5.9, 2.0))
    longer.handle(Progress("b", d.part, 1.0, 2.0))  # 5 units at 0.5 a second: 10 s, worth cutting
    assert remaining_seconds(longer, 2.0) == pytest.approx((0.1 / 2.95 + 10.0) / 2)


def test_the_eta_adds_the_time_a_part_takes_from_its_last_row_to_done():
    scheduler = still(12)
    a, b = starts(scheduler.begin(0.0))
    scheduler.handle(Progress("a", a.part, 6.0, 2.0))  # a's last row at 2 s ...
    scheduler.handle(PartDone("a", a.part, 2.5))  # ... written and fetched at 2.5 s
    scheduler.handle(Progress("b", b.part, 3.0, 3.0))  # a unit a second: 3 to go
    assert remaining_seconds(scheduler, 3.0) == 3.0 / 2 + 0.5


def test_the_eta_counts_the_start_up_a_part_has_still_to_pay():
    def eta_after_a_cut(startup: float | None, now: float) -> float | None:
        scheduler = still(12)
        a, b = starts(scheduler.begin(0.0))  # six units each
        scheduler.handle(Progress("a", a.part, 6.0, 2.0))
        scheduler.handle(Progress("b", b.part, 1.0, 2.0))  # a unit in 2 s
        (tail,) = starts(scheduler.handle(PartDone("a", a.part, 2.0, cpu=1.2, startup=startup)))  # b is cut
        return remaining_seconds(scheduler, now)

    # The tail has shown no pace yet: its rows go at the mean pace after its start-up,
    # the part of the start-up not yet paid, spread over the two slots.
    assert eta_after_a_cut(0.8, 2.0) == pytest.approx(eta_after_a_cut(None, 2.0) + 0.8 / 2)
    assert eta_after_a_cut(0.8, 2.5) == pytest.approx(eta_after_a_cut(None, 2.5) + 0.3 / 2)


def test_the_eta_of_frames_comes_from_finished_parts():
    scheduler = frames(8, nodes=("a",), slots=1)
    (first,) = starts(scheduler.begin(0.0))
    assert remaining_seconds(scheduler, 1.0) is None
    commands = scheduler.handle(PartDone("a", first.part, 4.0, cpu=4.0))  # its frames took 4 s
    pace = 4.0 / first.part.count
    (second,) = starts(commands)
    left = 8 - first.part.count  # the second part, just started, and what is pending
    assert remaining_seconds(scheduler, 4.0) == left * pace


def test_the_eta_goes_by_a_bands_recent_pace_once_it_reaches_dear_rows():
    scheduler = still(40, nodes=("a",))
    (a,) = starts(scheduler.begin(0.0))  # one band of 40 units
    for now, done in ((1.0, 10.0), (2.0, 20.0), (3.0, 21.0), (4.0, 22.0), (5.0, 23.0)):
        scheduler.handle(Progress("a", a.part, done, now))  # 20 cheap units, then one a second
    assert remaining_seconds(scheduler, 5.0) == 17.0  # not the 17 / (23 / 5 s) its average pace says


def test_the_eta_shown_follows_a_new_estimate_over_a_second():
    shown = ShownEta(settle=1.0)
    assert shown.update(0.0, None) is None
    assert shown.update(1.0, 10.0) == 10.0  # the first estimate as it is
    assert shown.update(2.0, 9.0) == 9.0  # the same end: no change
    jumped = shown.update(2.5, 2.0)  # one look says the end is 6.5 s sooner
    assert jumped is not None and 2.0 < jumped < 8.5
    assert shown.update(2.5, 0.0) == 0.0  # done is shown at once
