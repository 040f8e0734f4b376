"""The numbers shown while a job runs: counted once, never backwards, whole only when done."""

import io

from rich.console import Console

from fabfile.progress import ProgressBook, RichReporter


def test_rows_inside_running_parts_count_and_the_count_never_goes_back():
    book = ProgressBook(total=1440, done=0, nodes=["node1", "node2"])
    book.set_running(300, {"node1": "rows 1-720 (41%)", "node2": "rows 721-1440 (0%)"})
    assert book.shown == 300  # a long band is 300 rows in: the count moves before any part ends
    book.advance("node2", 704, 1)
    book.set_running(350, {"node1": "rows 1-720 (48%)"})
    assert book.shown == 1054
    book.set_running(100, {"node1": "rows 1-180 (55%)"})  # its band was cut: its rows went back
    assert book.shown == 1054  # ...but the count shown does not
    assert book.node_line("node1", "rows") == "  node1: 0 parts, 0 rows; now rows 1-180 (55%)"
    assert book.node_line("node2", "rows") == "  node2: 1 parts, 704 rows"  # idle: it says nothing more


def test_the_count_reaches_the_total_only_when_the_last_part_is_kept():
    book = ProgressBook(total=100, done=0, nodes=["a"])
    book.set_running(100, {"a": "rows 1-100 (100%)"})  # every row traced, the part not yet kept
    assert book.shown == 99
    book.eta = 3.0
    book.advance("a", 100, 1)
    assert (book.shown, book.eta) == (100, 0.0)


def test_the_terminal_shows_the_books_numbers():
    console = Console(file=io.StringIO(), width=120)
    reporter = RichReporter(console)
    reporter.start(total=1440, done=0, unit="rows", nodes=["node1", "node2"])
    try:
        reporter.running(300, {"node1": "rows 1-720 (41%)"})
        reporter.eta(75.4)
        job, node1, _ = reporter._progress.tasks
        assert job.completed == 300 and job.fields["eta"] == 75.4
        assert node1.description == "  node1: 0 parts, 0 rows; now rows 1-720 (41%)"
    finally:
        reporter.stop()
    assert "ETA 0:01:15" in console.file.getvalue()
