import io

from rich.console import Console

from fabfile.progress import RichReporter


def job_line(reporter: RichReporter):
    return reporter._progress.tasks[0]


def test_rows_inside_running_parts_move_the_bar_until_their_part_is_counted():
    reporter = RichReporter(Console(file=io.StringIO(), width=120))
    reporter.start(total=1440, done=0, unit="rows", nodes=["node1", "node2"])
    try:
        reporter.running(300)  # a long band is 300 rows in: the bar moves before any part ends
        assert job_line(reporter).completed == 300
        reporter.advance("node2", 704, 1)
        reporter.running(350)
        assert job_line(reporter).completed == 1054
        reporter.running(2000)  # a look that raced a part's end never shows more than the whole
        assert job_line(reporter).completed == 1440
    finally:
        reporter.stop()
