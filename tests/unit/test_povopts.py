from pathlib import Path

import pytest

from fabfile.errors import OptionsError
from fabfile.povopts import Settings, apply_switch, read_ini, split_args, validate


def apply_all(*tokens):
    settings = Settings()
    for token in tokens:
        settings = apply_switch(settings, token, "--args")
    return settings


def test_switches_povfarm_plans_with():
    s = apply_all("+W640", "+H480", "+A0.3", "+AM2", "+UA", "+FN16", "+WL2", "+KFI1", "+KFF30", "+SF5", "+EF9")
    assert (s.width, s.height, s.antialias, s.antialias_method, s.alpha, s.bits) == (640, 480, True, 2, True, 16)
    assert s.frames == (5, 6, 7, 8, 9)


def test_minus_switches_turn_things_off():
    assert apply_all("+UA", "-UA").alpha is False
    assert apply_all("+A", "-A").antialias is False


@pytest.mark.parametrize(
    "token",
    [
        "+Iother.pov", "+Oout.png", "+SR10", "+ER20", "+SC5", "+EC5", "+WT4", "+RS7", "+RP2",
        # The INI spellings of the same options, in any case.
        "Input_File_Name=/etc/passwd", "input_file_name=x.pov", "Output_File_Name=out.png", "Work_Threads=4",
        "Start_Row=10", "End_Column=5",
    ],
)
def test_switches_povfarm_owns_are_refused(token):
    with pytest.raises(OptionsError, match="is set by povfarm"):
        split_args(token)


@pytest.mark.parametrize("args", ["rm -rf /", "+W10 $(touch x)", "'+W10"])
def test_things_that_are_not_switches_are_refused(args):
    with pytest.raises(OptionsError, match="--args"):
        split_args(args)


def test_a_users_include_header_is_noticed(tmp_path):
    # A cut's continuation waits at an include header of povfarm's own, unless the user has one.
    # Its file travels with the scene.
    assert Settings().include_header is None
    assert apply_all("+HT").include_header is None
    assert apply_all("+HIheader.inc").include_header == "header.inc"
    (tmp_path / "scene.ini").write_text("Include_Header='my header.inc'\n")
    assert read_ini(tmp_path / "scene.ini").include_header == "my header.inc"


def test_quoted_args_stay_one_token():
    assert split_args('+A0.3 "Declare=Name=1"') == ("+A0.3", "Declare=Name=1")


def test_ini_reads_the_unnamed_section_only_unless_told(tmp_path):
    ini = tmp_path / "scene.ini"
    ini.write_text(
        "; comment\nInput_File_Name='my scene.pov' ; trailing\nWidth=320\nHeight = 200\n"
        "Antialias=On\nInitial_Frame=1\nFinal_Frame=12\n+UA\n[big]\nWidth=1920\n"
    )
    s = read_ini(ini)
    assert (s.input_file, s.width, s.height, s.antialias, s.alpha) == ("my scene.pov", 320, 200, True, True)
    assert s.frames == tuple(range(1, 13))
    assert read_ini(ini, section="big").width == 1920


def test_ini_include_is_followed(tmp_path):
    (tmp_path / "base.ini").write_text("Width=100\nHeight=50\n")
    (tmp_path / "main.ini").write_text("Include_Ini=base.ini\nHeight=60\n")
    s = read_ini(tmp_path / "main.ini")
    assert (s.width, s.height) == (100, 60)


def test_validate_refuses_non_png_and_empty_subsets():
    with pytest.raises(OptionsError, match="povfarm writes PNG"):
        validate(apply_all("+FT"))
    with pytest.raises(OptionsError, match="no frame left"):
        validate(apply_all("+KFI1", "+KFF5", "+SF7"))


@pytest.mark.parametrize("token, message", [("+W0", "must be 1 or more"), ("+Hx", "expected a whole number")])
def test_bad_sizes(token, message):
    with pytest.raises(OptionsError, match=message):
        split_args(token)


@pytest.mark.parametrize("line", ["Render_Block_Step=7", "Render_Pattern=2"])
def test_an_ini_that_reorders_blocks_is_refused(tmp_path, line):
    # Cuts and continued parts find a band's blocks in POV-Ray's default order.
    ini = tmp_path / "scene.ini"
    ini.write_text(f"Input_File_Name=scene.pov\n{line}\n")
    with pytest.raises(OptionsError, match="is set by povfarm; remove it"):
        read_ini(ini)


def test_an_ini_file_may_name_its_scene(tmp_path):
    ini = tmp_path / "scene.ini"
    ini.write_text("Input_File_Name=scene.pov\nWidth=64\n")
    assert read_ini(ini).input_file == "scene.pov"


def test_bounds_that_name_the_whole_image_are_no_reason_to_refuse(tmp_path):
    # POV-Ray's own benchmark.ini says so: Start_Row=0, End_Row=1, Start_Column=0, End_Column=1.
    ini = tmp_path / "benchmark.ini"
    ini.write_text("Input_File_Name=benchmark.pov\nStart_Row=0\nEnd_Row=1\nStart_Column=0.0\nEnd_Column=1.0\n"
                   "Render_Block_Step=0\nRender_Pattern=0\n")  # POV-Ray's defaults, spelled out
    assert read_ini(ini).input_file == "benchmark.pov"
    shipped = Path("/usr/share/doc/povray/examples/advanced/benchmark/benchmark.ini")  # Debian's povray-examples
    assert read_ini(shipped).input_file == "benchmark.pov" and read_ini(shipped).width == 512
    assert split_args("+SR1 +ER1.0") == ("+SR1", "+ER1.0")
    for part_of_it in ("End_Row=0.5", "Start_Row=0.5", "End_Column=200", "+SR2", "+EC0.9"):
        with pytest.raises(OptionsError, match="is set by povfarm"):
            split_args(part_of_it)
