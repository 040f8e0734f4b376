"""The pure parts of the shared radiosity pretrace (fabfile.radiosity)."""

from __future__ import annotations

import signal
import subprocess

from fabfile.radiosity import (
    PRETRACE_END_WATCH,
    PRETRACE_OFF,
    ini_lines,
    join_caches,
    pretrace_strips,
    scene_copy_name,
    scene_copy_text,
)


def test_pretrace_strips_cover_every_column_once_in_even_strips():
    strips = pretrace_strips(100, 3)
    assert strips == [(1, 33), (34, 67), (68, 100)]
    assert pretrace_strips(2, 5) == [(1, 1), (2, 2)]  # never an empty strip
    assert pretrace_strips(10, 0) == [(1, 10)]


def test_the_scene_copy_sits_beside_the_scene_and_ends_with_the_pretrace_off():
    assert scene_copy_name("cornell.pov") == "cornell.povfarm-radiosity.pov"
    assert scene_copy_name("sub/a.b.pov") == "sub/a.b.povfarm-radiosity.pov"
    text = scene_copy_text("global_settings { radiosity { count 200 } }\nsphere { 0, 1 } // no newline")
    assert text.startswith("global_settings { radiosity { count 200 } }\nsphere { 0, 1 } // no newline\n")
    assert text.rstrip().endswith(PRETRACE_OFF)


def test_caches_are_joined_in_order_each_line_whole(tmp_path):
    first, second, empty = tmp_path / "a.rad", tmp_path / "b.rad", tmp_path / "c.rad"
    first.write_bytes(b"C2\t1\nC2\t2")  # a file cut without its last newline
    second.write_bytes(b"C2\t3\n")
    empty.write_bytes(b"")
    join_caches([first, empty, second], tmp_path / "radiosity.rad")
    assert (tmp_path / "radiosity.rad").read_bytes() == b"C2\t1\nC2\t2\nC2\t3\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_band_that_loads_the_cache_reads_the_copy_and_the_job_folders_cache():
    lines = ini_lines('Input_File_Name="it\'s.pov"', "it's.povfarm-radiosity.pov", "../..")
    assert lines[0] == 'Input_File_Name="it\'s.pov"'
    assert lines[1].startswith("Input_File_Name=") and "povfarm-radiosity.pov" in lines[1]
    assert lines[2].startswith("Radiosity_File_Name=") and "../../radiosity.rad" in lines[2]
    assert lines[3:] == ["Radiosity_From_File=on", "Radiosity_To_File=off"]


# Lines of POV-Ray 3.7's own logs of cornell.pov at 1280x960 with +WT2: its two threads' counts
# arrive a little out of order during the pretrace; the final trace starts again from a block.
REORDERED = ["Rendered 48 of 1228800 pixels (0%)", "Rendered 96 of 1228800 pixels (0%)",
             "Rendered 21072 of 1228800 pixels (1%)", "Rendered 21120 of 1228800 pixels (1%)",
             "Rendered 20976 of 1228800 pixels (1%)", "Rendered 21168 of 1228800 pixels (1%)"]
PRETRACE_END = ["Rendered 1226820 of 1228800 pixels (99%)", "Rendered 1227600 of 1228800 pixels (99%)"]
FINAL_TRACE = ["Rendered 1024 of 1228800 pixels (0%)", "Rendered 2048 of 1228800 pixels (0%)"]


def watch_stops(lines: list[str]) -> bool:
    """Feed POV-Ray's log lines (as its status line writes them, each ending in a carriage
    return) to the pretrace's watch; whether it sent SIGTERM to the process it watches."""
    povray = subprocess.Popen(["sleep", "30"])
    try:
        subprocess.run(["awk", "-v", r"RS=[\r\n]", "-v", f"pid={povray.pid}", PRETRACE_END_WATCH],
                       input="".join(f"{line}\r" for line in lines), text=True, check=True, timeout=10)
        try:
            return povray.wait(timeout=0.5) == -signal.SIGTERM  # kill(1) has returned by then
        except subprocess.TimeoutExpired:
            return False
    finally:
        povray.kill()
        povray.wait()


def test_the_pretrace_is_stopped_when_the_final_trace_starts_counting_again():
    assert watch_stops(REORDERED + PRETRACE_END + FINAL_TRACE)
    assert not watch_stops(REORDERED + PRETRACE_END)


def test_counts_out_of_order_from_povrays_threads_do_not_stop_the_pretrace():
    assert not watch_stops(REORDERED)
    assert not watch_stops(["Rendered 96 of 1228800 pixels (0%)", "Rendered 40 of 1228800 pixels (0%)"])
