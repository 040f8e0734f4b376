"""The pure parts of the shared radiosity pretrace (fabfile.radiosity)."""

from __future__ import annotations

from fabfile.radiosity import PRETRACE_OFF, ini_lines, join_caches, pretrace_strips, scene_copy_name, scene_copy_text


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
