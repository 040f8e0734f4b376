import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fabfile.errors import NodeError, OptionsError, SceneError
from fabfile.nodejob import (
    NodeJob,
    PartInterrupted,
    _still_finish,
    classify_failure,
    output_names,
    povray_ini_line,
    povray_times,
    scene_depth,
)
from fabfile.plan import FRAMES, ROWS, Span
from fabfile.transport import CommandResult

PARSE_LOG = """\
==== [Parsing...] ==========================================================
File 'bad.pov' line 3: Parse Error: No matching } in 'sphere', undeclared
 identifier 'foo' found instead
Fatal error in parser: Cannot parse input.
Render failed
"""


def test_a_parse_error_is_the_scenes_with_file_line_and_message():
    error = classify_failure("n1", "povray", 1, PARSE_LOG)
    assert isinstance(error, SceneError)
    expected = "bad.pov line 3: POV-Ray parse error: No matching } in 'sphere', undeclared identifier"
    assert str(error).startswith(expected)


def test_rejected_options_lost_connections_and_missing_povray():
    assert isinstance(classify_failure("n1", "povray", 1, "Problem with option setting\n+ZZ9\n"), OptionsError)
    lost = classify_failure("n1", "povray", -1, "")
    assert isinstance(lost, NodeError) and "connection lost" in str(lost)
    missing = classify_failure("n1", "/opt/povray", 127, "sh: 1: /opt/povray: not found")
    assert "not installed; run inv provision" in str(missing)
    other = classify_failure("n1", "povray", 2, "Out of memory\npovfarm-free-kb=90000\n")
    assert isinstance(other, NodeError) and "exit 2" in str(other) and "Out of memory" in str(other)


def test_a_full_disk_is_named_as_such():
    # What POV-Ray 3.7 logged here when its state file filled a 64 KiB tmpfs, and what the part's command adds.
    log = (
        "povfarm-times\n0m0.168s 0m0.090s\n0m0.000s 0m0.000s\nCannot access data in file.\n"
        "Rendered 5120 of 160000 pixels (3%)\nRender failed\n\nFatal error in renderer: Frontend halted render.\n"
        "povfarm-free-kb=0\n"
    )
    full = classify_failure("n1", "povray", 1, log)
    assert isinstance(full, NodeError) and "n1: its disk is full" in str(full) and "free space" in str(full)


def test_povray_times_read_its_statistics_and_ours():
    log = (
        "povfarm-povray-ns=1500000000\npovfarm-times\n0m0.001s 0m0.002s\n0m1.250s 0m0.050s\n"
        "  Parse Time:       0 hours  0 minutes  0 seconds (0.012 seconds)\n"
        "  Trace Time:       0 hours  0 minutes  1 seconds (1.234 seconds)\n"
    )
    times = povray_times(log)
    assert times == {"wall": 1.5, "cpu": 1.3, "parse": 0.012, "trace": 1.234}


def test_a_still_returned_before_povray_exited_counts_the_cpu_povray_logged():
    # `times` cannot count a child not yet reaped; POV-Ray's own per-phase CPU counts instead.
    log = (
        "povfarm-povray-ns=900000000\npovfarm-times\n0m0.001s 0m0.002s\n0m0.003s 0m0.001s\n"
        "  Parse Time:       0 hours  0 minutes  0 seconds (0.002 seconds)\n"
        "              using 1 thread(s) with 0.010 CPU-seconds total\n"
        "  Trace Time:       0 hours  0 minutes  0 seconds (0.851 seconds)\n"
        "              using 2 thread(s) with 1.640 CPU-seconds total\n"
    )
    assert povray_times(log)["cpu"] == 1.65


FAKE_POVRAY = """
import sys, time
log, png = sys.argv[1:3]
end = time.process_time() + 0.3
while time.process_time() < end:  # traces: 0.3 s of CPU
    pass
open(png, "wb").write(b"PNG...IEND\\xaeB`\\x82")
open(log, "a").write("Rendered 4 of 4 pixels (100%)\\n")
time.sleep(1)  # winds down; its statistics come later
"""


def test_a_still_done_before_its_statistics_are_logged_reads_its_cpu_from_proc(tmp_path):
    # The part's cost sizes the next render's first bands: before, such a part counted only
    # its parse's CPU (0.008 s for a 5 s band) and the next render split the still wrongly.
    log, png, state = (str(tmp_path / name) for name in ("log", "p.png", "state"))
    fake = shlex.join([sys.executable, "-c", FAKE_POVRAY, log, png])
    script = f": >{log}; {fake} & pid=$!; {_still_finish(log, png, state, 'wait $pid; status=$?')}; echo status=$status"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10)
    assert "status=0" in done.stdout
    assert 0.25 <= povray_times(done.stderr)["cpu"] < 2.0


def test_output_names_follow_povrays_frame_numbering():
    assert output_names(Span(ROWS, 1, 32), 1) == [(Span(ROWS, 1, 32), "p.png")]
    assert output_names(Span(FRAMES, 9, 10), 120) == [
        (Span(FRAMES, 9, 9), "p009.png"),
        (Span(FRAMES, 10, 10), "p010.png"),
    ]


def test_ini_quoting_and_depth():
    assert povray_ini_line("Input_File_Name", "a b$(x).pov") == "Input_File_Name='a b$(x).pov'"
    assert povray_ini_line("Input_File_Name", "it's.pov") == 'Input_File_Name="it\'s.pov"'
    assert scene_depth(["scene.pov", "../tex/a.png", "../../x/b.inc"]) == 2


def test_a_cut_part_counts_the_cpu_read_while_its_povray_winds_down():
    # Cut, a part returns before POV-Ray has printed its statistics: its CPU is read from /proc.
    log = (
        "povfarm-cpu=2.24\npovfarm-povray-ns=2563042628\npovfarm-times\n0m0.001s 0m0.002s\n0m0.000s 0m0.000s\n"
        "povray: received signal SIGINT: Interrupt; requested render cancel\n"
    )
    assert povray_times(log) == {"cpu": 2.24, "wall": 2.563042628}
    assert povray_times("povfarm-cpu=\n") == {}  # /proc unreadable: no figure rather than a wrong one


def test_a_cut_is_known_by_its_report_when_the_logs_tail_no_longer_holds_the_signal(tmp_path):
    # In cheap rows POV-Ray logs a hundred blocks and more after SIGINT: the 4000 bytes of log
    # sent back ended in progress lines, and the band was taken for failed and rendered again.
    progress = "".join(f"Rendered {1085440 + 1024 * i} of 1843200 pixels (58%)\r" for i in range(120))
    stderr = f"povfarm-cut\npovfarm-cpu=14.5\npovfarm-povray-ns=15000000000\npovfarm-times\n{progress[-4000:]}"
    assert "SIGINT" not in stderr
    session = SimpleNamespace(
        node=SimpleNamespace(name="n1"), run=lambda *a, **k: CommandResult(2, "", stderr)
    )
    node_job = NodeJob(session, "/w", "job", "povray", ["a.pov"])
    with pytest.raises(PartInterrupted) as raised:
        node_job.render(Span(ROWS, 481, 1440), ["+W1920"], tmp_path, 1)
    assert raised.value.pixels == 1085440 + 1024 * 119
    assert raised.value.povray_times["cpu"] == 14.5
    # Without the report (POV-Ray stopped by no cut of ours), exit 2 is a failure.
    session.run = lambda *a, **k: CommandResult(2, "", stderr.replace("povfarm-cut\n", ""))
    with pytest.raises(NodeError, match="exit 2") as failed:
        node_job.render(Span(ROWS, 481, 1440), ["+W1920"], tmp_path, 1)
    assert not isinstance(failed.value, PartInterrupted)
