from fabfile.scheduler import Part, Scheduler


def drain(scheduler, nodes, now=0.0):
    taken = []
    for node in nodes:
        part = scheduler.next_part(node, now)
        if part:
            taken.append((node, part))
    return taken


def run_to_the_end(s, cost_of_unit):
    """Complete parts one by one with the given cost per unit; the parts in order."""
    parts = []
    while not s.finished:
        part = s.next_part("a", 0.0)
        parts.append(part)
        s.complete(part, "a", 1.0, cost=sum(cost_of_unit(u) for u in part.units))
    return parts


def test_every_unit_is_rendered_exactly_once():
    s = Scheduler(unit_count=40, slots=4, capacity=2)
    covered = [u for part in run_to_the_end(s, lambda u: 1.0) for u in part.units]
    assert sorted(covered) == list(range(40))


def test_the_first_wave_probes_units_spread_over_the_image():
    s = Scheduler(unit_count=40, slots=4, probes=4)
    first_wave = [s.next_part(node, 0.0) for node in "abcd"]
    assert [p.count for p in first_wave] == [1, 1, 1, 1]
    assert [p.first for p in first_wave] == [5, 15, 25, 35]


def test_parts_shrink_towards_the_end_on_even_cost():
    s = Scheduler(unit_count=64, slots=1, capacity=2, guided_factor=2.0)
    sizes = [part.count for part in run_to_the_end(s, lambda u: 1.0)]
    assert sizes[0] == 16 and sizes[-1] == 1
    assert sizes == sorted(sizes, reverse=True)


def test_dear_rows_get_small_parts_and_go_first():
    # Units 20-23 hold a nebula 50x dearer than the rest.
    def cost(unit):
        return 50.0 if 20 <= unit <= 23 else 1.0

    s = Scheduler(unit_count=40, slots=4, capacity=2, probes=4, guided_factor=2.0)
    probes = [s.next_part(node, 0.0) for node in "abcd"]
    assert [p.first for p in probes] == [5, 15, 25, 35]
    for node, part in zip("abcd", probes, strict=True):
        s.complete(part, node, 1.0, cost=cost(part.first))
    s.unit_cost[21] = 50.0  # as if a part there had been measured
    estimate = {u: s.estimated_cost(u) for u in range(40)}
    dearest = s.next_part("a", 0.0)
    # The region estimated dear goes first, in a part of at most two dear units.
    assert any(estimate[u] == 50.0 for u in dearest.units)
    assert sum(estimate[u] for u in dearest.units) <= 100
    s.complete(dearest, "a", 1.0, cost=sum(cost(u) for u in dearest.units))
    rest = run_to_the_end(s, cost)
    biggest_cost = max(sum(cost(u) for u in part.units) for part in rest)
    assert biggest_cost <= 100  # never more than two nebula units in one part


def test_every_free_slot_gets_work_while_there_is_some():
    s = Scheduler(unit_count=6, slots=3)
    taken = drain(s, ["a", "b", "c"])
    assert len(taken) == 3
    assert all(part.count == 1 for _, part in taken)


def test_resumed_jobs_skip_done_units():
    s = Scheduler(unit_count=5, slots=1, done={0, 1, 3})
    part = s.next_part("a", 0.0)
    assert list(part.units) == [2]  # runs stop at a done unit
    assert list(s.next_part("a", 0.0).units) == [4]
    assert s.next_part("a", 0.0) is None


def test_failed_parts_are_requeued_and_repeat_offenders_left_out():
    s = Scheduler(unit_count=4, slots=1, max_failures=2)
    part = s.next_part("a", 0.0)
    assert s.fail(part, "a", "lost") is False
    again = s.next_part("a", 0.0)
    assert again.first == part.first and again.attempt == 2
    assert s.fail(again, "a", "lost again") is True
    assert "a" in s.excluded and s.next_part("a", 0.0) is None
    rescued = s.next_part("b", 0.0)
    assert rescued.first == part.first


def test_scene_errors_do_not_count_against_the_node():
    s = Scheduler(unit_count=2, slots=1, max_failures=1)
    part = s.next_part("a", 0.0)
    assert s.fail(part, "a", "parse error", node_fault=False) is False
    assert "a" not in s.excluded


def test_excluding_a_node_returns_its_running_parts():
    s = Scheduler(unit_count=4, slots=4)
    a = s.next_part("a", 0.0)
    lost = s.exclude("a", "power cut")
    assert lost == [a]
    assert s.next_part("b", 0.0).first == a.first


def test_hung_parts_are_handed_on_after_a_bounded_wait():
    s = Scheduler(unit_count=4, slots=4, hang_grace=5.0, hang_factor=3.0)
    slow = s.next_part("a", 0.0)
    quick = s.next_part("b", 0.0)
    assert s.overdue(100.0) == []  # nothing measured yet, nothing to compare with
    s.complete(quick, "b", 2.0)
    assert s.overdue(5.5) == []  # 3 x 2 s is 6 s
    hung = s.overdue(6.5)
    assert [h.part for h in hung] == [slow] and "a" in s.stalled
    assert s.next_part("a", 7.0) is None  # a hung node gets nothing more
    retry = s.next_part("b", 7.0)
    assert retry.first == slow.first
    assert s.complete(retry, "b", 1.0) is True
    assert s.complete(slow, "a", 30.0) is False  # the late original is a duplicate
    assert "a" not in s.stalled


def test_a_part_seen_moving_is_dear_not_hung():
    s = Scheduler(unit_count=4, slots=4, hang_grace=5.0, hang_factor=3.0)
    dear = s.next_part("a", 0.0)
    quick = s.next_part("b", 0.0)
    s.complete(quick, "b", 1.0)
    assert s.overdue(30.0, moving={("a", dear)}) == []  # its log still grows: it renders dear rows
    assert "a" not in s.stalled and dear.first not in s.pending
    assert [h.part for h in s.overdue(31.0)] == [dear]  # once it stops moving, it is handed on


def test_part_units():
    assert list(Part(2, 4).units) == [2, 3, 4] and Part(2, 4).count == 3


# -- even start and cuts ---------------------------------------------------------------
def test_even_start_gives_each_slot_one_equal_run_in_order():
    s = Scheduler(unit_count=45, slots=2, even_start=True)
    first_wave = drain(s, "ab")
    assert [(n, p.first, p.last) for n, p in first_wave] == [("a", 0, 22), ("b", 23, 44)]
    assert s.next_part("a", 0.0) is None  # nothing left: balance now comes from cuts


def test_a_slow_part_is_cut_keeping_its_progress_and_half_the_rest():
    s = Scheduler(unit_count=20, slots=2, even_start=True)
    slow, quick = s.next_part("a", 0.0), s.next_part("b", 0.0)
    assert s.complete(quick, "b", 2.0)
    run = s.running[0]
    # 10 s in, 2.5 of its 10 units done: 30 s left; unit 2 is in progress.
    keep_last = s.cut_point(run, units_done=2.5, now=10.0, start_cost=0.6)
    assert keep_last == 5  # keeps units 0-5 (3.5 to go), gives 6-9 (4 units)
    kept = s.cut(slow, "a", keep_last, now=10.0)
    assert kept == Part(0, 5, 1)
    given = s.next_part("b", 10.0)
    assert (given.first, given.last) == (6, 9)  # the rest goes out whole
    assert s.complete(kept, "a", 5.0, cost=5.0, measured=range(2, 6))
    assert s.unit_cost[3] == 1.25 and 0 not in s.unit_cost  # work spread over what it rendered
    assert s.complete(given, "b", 4.0) and s.finished


def test_no_cut_when_the_time_saved_is_less_than_a_start():
    s = Scheduler(unit_count=4, slots=1, even_start=True)
    part = s.next_part("a", 0.0)
    run = s.running[0]
    # 3 of 4 units in 3 s: 1 s left, a cut would save less than it costs.
    assert s.cut_point(run, units_done=3.0, now=3.0, start_cost=0.6) is None
    # Nothing known yet (no unit finished): no rate, no cut.
    assert s.cut_point(run, units_done=0.0, now=3.0, start_cost=0.6) is None
    # The unit in progress is the last one: nothing to give.
    assert s.cut_point(run, units_done=3.5, now=100.0, start_cost=0.6) is None
    assert s.cut(part, "a", 3, now=3.0) is None  # keeping all of it is no cut


def test_a_cut_whose_continuation_starts_early_pays_sooner():
    s = Scheduler(unit_count=4, slots=1, even_start=True)
    s.next_part("a", 0.0)
    run = s.running[0]
    # 2 of 4 units in 2 s: 2 s left. Two more starts of 0.6 s would save only 0.4 s: no cut.
    assert s.cut_point(run, units_done=2.0, now=2.0, start_cost=0.6) is None
    # Its continuation started while it renders costs its core 0.1 s: cut, keeping unit 2
    # (1.1 s) and giving unit 3 to a core that starts a POV-Ray first (1.6 s).
    assert s.cut_point(run, units_done=2.0, now=2.0, start_cost=0.6, kept_cost=0.1) == 2


def test_a_cut_part_that_finished_whole_anyway_completes_all_its_units():
    s = Scheduler(unit_count=10, slots=2, even_start=True)
    first, second = s.next_part("a", 0.0), s.next_part("b", 0.0)
    s.complete(second, "b", 1.0)
    s.cut(first, "a", 1, now=5.0)  # units 2-4 go back out...
    given = s.next_part("b", 5.0)
    assert s.complete(first, "a", 6.0)  # ...but the POV-Ray finished before the interrupt
    assert s.finished and [r.part for r in s.running] == [given]
    assert s.complete(given, "b", 2.0) is False  # its copy of units 2-4 is a duplicate
    assert s.running == []


def test_a_cut_part_that_fails_returns_what_it_kept():
    s = Scheduler(unit_count=10, slots=2, even_start=True)
    first, second = s.next_part("a", 0.0), s.next_part("b", 0.0)
    s.complete(second, "b", 1.0)
    kept = s.cut(first, "a", 1, now=5.0)
    given = s.next_part("b", 5.0)
    s.fail(first, "a", "connection lost")  # the worker reports the part it started
    assert [r.part for r in s.running] == [given]
    retry = s.next_part("c", 6.0)
    assert (retry.first, retry.last) == (kept.first, kept.last)


def test_a_continued_part_is_paced_by_what_it_rendered_itself():
    s = Scheduler(unit_count=12, slots=1, even_start=True)
    part = s.next_part("a", 0.0)
    kept = s.cut(part, "a", 9, now=10.0)  # continued at t=10 with units 0-3 already in its state file
    run = s.running[0]
    assert run.part == kept and run.started == 10.0
    # 2 s later it is at 4.5 units: 0.5 unit in 2 s is its pace (21 s left), not 4.5 units in 2 s
    # (2.4 s left, too little to cut). It keeps unit 4 (in progress) and 5-6, and gives 7-9.
    assert s.cut_point(run, units_done=4.5, now=12.0, start_cost=0.6, units_before=4.0) == 6
    # Restored units alone are no progress: no pace yet, no cut.
    assert s.cut_point(run, units_done=4.0, now=12.0, start_cost=0.6, units_before=4.0) is None


def test_an_earlier_renders_costs_make_the_even_start_even_in_cost():
    # Units 2-4 held most of the cost last time: the first band stops before them.
    prior = [1.0, 1.0, 10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    s = Scheduler(unit_count=10, slots=2, even_start=True, prior=prior)
    first_wave = drain(s, "ab")
    assert [(p.first, p.last) for _, p in first_wave] == [(0, 3), (4, 9)]  # costs 22 and 15
    # Without it, the same units in equal counts.
    s = Scheduler(unit_count=10, slots=2, even_start=True)
    assert [(p.first, p.last) for _, p in drain(s, "ab")] == [(0, 4), (5, 9)]


def test_the_even_start_of_a_resumed_job_covers_only_what_is_missing():
    s = Scheduler(unit_count=10, slots=2, even_start=True, done={3, 4, 5})
    taken = [(p.first, p.last) for _, p in drain(s, "abc")]
    assert taken == [(0, 2), (6, 9)]  # a run ends where the missing units do


def column_scheduler(**kwargs):
    s = Scheduler(unit_count=8, slots=2, capacity=2, column_blocks=30, **kwargs)
    band = s.next_part("a", 0.0)
    s.running[0].part = band = Part(0, 7)  # one band of every unit, as an even start on one node would
    s.pending = []
    return s, band


def test_a_band_in_its_last_unit_gives_the_blocks_beyond_half_its_rest_to_an_idle_core():
    s, band = column_scheduler()
    run = s.running[0]
    # 10 of its last unit's 30 blocks done at 0.1 s each: 2 s left; a new POV-Ray costs 0.5 s.
    keep = s.column_cut_point(run, 10.0, [0.1] * 30, start_cost=0.5, kept_cost=0.1)
    assert keep == 10 + 19 // 2  # the block in progress and at most half the rest
    kept = s.cut_columns(band, "a", keep, 1.0)
    assert kept == Part(0, 7, 1, (0, 19))
    piece = s.next_part("b", 1.0)
    assert piece == Part(7, 7, 1, (20, 29))
    assert s.complete(piece, "b", 1.0)
    assert 7 not in s.done and not s.finished  # the unit waits for its left columns
    assert s.complete(kept, "a", 9.0)
    assert s.finished


def test_a_column_cut_that_would_not_pay_is_not_made():
    s, band = column_scheduler()
    run = s.running[0]
    even = [0.1] * 30
    assert s.column_cut_point(run, 26.0, even, start_cost=0.5, kept_cost=0.1) is None  # 0.4 s left
    assert s.column_cut_point(run, 29.5, even, start_cost=0.0, kept_cost=0.0) is None  # its last block
    assert Scheduler(unit_count=8, column_blocks=1).column_cut_point(run, 2.0, even, 0.5, 0.1) is None
    assert s.column_cut_point(run, 10.0, [0.0] * 30, start_cost=0.5, kept_cost=0.1) is None  # nothing to share


def test_a_column_cut_by_forecast_costs_evens_out_both_ends():
    s, _ = column_scheduler()
    run = s.running[0]
    # The row's left half is cheap and its right half dear, as in the nebula: by the pace
    # so far the band would keep the cheap blocks and give away all the dear ones.
    costs = [0.02] * 15 + [0.2] * 15
    by_count = s.column_cut_point(run, 0.0, [0.11] * 30, start_cost=0.3, kept_cost=0.1)
    by_cost = s.column_cut_point(run, 0.0, costs, start_cost=0.3, kept_cost=0.1, known_costs=True)
    assert by_count == 14  # half the blocks after the one in progress
    assert by_cost == 21  # keeps 15 * 0.02 + 7 * 0.2 (+ 0.1) = 1.8 s; gives 0.3 + 8 * 0.2 = 1.9 s
    def ends(keep: int) -> float:
        return max(sum(costs[: keep + 1]) + 0.1, 0.3 + sum(costs[keep + 1 :]))
    assert ends(by_cost) == min(ends(k) for k in range(29))
    assert ends(by_cost) < ends(by_count) - 0.9


def test_a_failed_piece_goes_out_again_first_and_a_failed_band_gives_back_its_units_and_columns():
    s, band = column_scheduler()
    kept = s.cut_columns(band, "a", 14, 1.0)
    piece = s.next_part("b", 1.0)
    s.fail(piece, "b", "lost")
    assert s.next_part("c", 2.0) == Part(7, 7, 1, (15, 29))
    s.fail(kept, "a", "lost")
    assert s.pieces[-1] == Part(7, 7, 1, (0, 14))
    assert s.pending == list(range(7))


def test_a_render_again_cuts_a_band_by_what_its_rows_cost_last_time():
    # As on the nebula rendered again: the second band is in its dear rows (3 s each last
    # time), and a cheap tail (0.2 s a unit) follows. Half the rest by count is that tail's
    # end: the idle core would be back within a second or two for more, paying a start each time.
    prior = [1.0] * 10 + [3.0] * 6 + [0.2] * 10
    s = Scheduler(unit_count=26, slots=2, even_start=True, prior=prior)
    _, (_, band) = drain(s, "ab")
    assert (band.first, band.last) == (12, 25)  # costs 16 and 14 last time
    run = next(r for r in s.running if r.node == "b")
    # 20 s in, units 12-13 and half of 14 done: 7.5 of earlier cost, so 2.67 s per earlier
    # second now (these cores are slower today). Left: 1.5 + 3 + 10 * 0.2 = 6.5 earlier, 17.3 s.
    keep_last = s.cut_point(run, units_done=2.5, now=20.0, start_cost=0.5, kept_cost=0.1)
    # Keeps 14-15 (4.5 earlier: 12 s), gives the whole tail 16-25 (2 earlier: 5.3 s and a start);
    # unit 15 cannot be split, and giving it away too would leave the idle core 13.8 s.
    assert keep_last == 15
    # By count, the same run keeps 14-19 and gives only 20-25 (1.2 earlier: 3.2 s).
    assert Scheduler(unit_count=26, slots=2).cut_point(run, 2.5, 20.0, start_cost=0.5, kept_cost=0.1) == 19


def test_a_rows_cost_is_shared_by_what_the_log_saw_and_a_cut_row_adds_its_two_runs():
    s = Scheduler(unit_count=6, slots=1)
    s.record_cost(range(0, 3), 6.0, weights=[1.0, 3.0, 2.0])
    assert [s.unit_cost[u] for u in range(3)] == [1.0, 3.0, 2.0]
    # Cut inside unit 4, a quarter of the way: its share so far, without a trace...
    s.record_cost(range(3, 5), 2.5, last_share=0.25)
    assert s.unit_cost[3] == 2.0 and s.unit_cost[4] == 0.5
    # ...and the continuation that rendered the rest of it adds its own.
    s.record_cost(range(4, 6), 3.0, weights=[1.5, 1.5])
    assert s.unit_cost[4] == 2.0 and s.unit_cost[5] == 1.5
    s.record_cost(range(2, 2), 1.0)  # nothing rendered, nothing recorded
    assert s.unit_cost[2] == 2.0
