from pathlib import Path

import pytest

from fabfile.deps import scan_scene, string_literals
from fabfile.errors import SceneError

LIBRARY = (Path("/usr/share/povray-3.7/include"),)


def write(folder: Path, name: str, text: str = "") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_literals_skip_comments_and_mark_includes():
    text = '// "not.inc"\n/* "nor.inc" /* nested */ "this" */\n#include "a.inc"\nimage_map { png "b.png" }\n'
    literals = string_literals(text)
    assert [(x.text, x.line, x.is_include) for x in literals] == [("a.inc", 3, True), ("b.png", 4, False)]


def test_scan_follows_includes_and_finds_images_fonts_and_data(tmp_path):
    scene = write(tmp_path, "scene.pov", '#include "colors.inc"\n#include "lib/props.inc"\nsphere{0,1}\n')
    write(tmp_path, "lib/props.inc", 'height_field { png "maps/hf.png" }\ntext { ttf "fonts/my.ttf" "hi" 1, 0 }\n'
          '#fopen F "data.txt" read\n#include "more"\n')
    for name in ("maps/hf.png", "fonts/my.ttf", "data.txt", "more.inc"):
        write(tmp_path, name)
    write(tmp_path, "unused.png")
    files = scan_scene(scene, library_dirs=LIBRARY)
    assert set(files.files) == {
        "scene.pov", "lib/props.inc", "maps/hf.png", "fonts/my.ttf", "data.txt", "more.inc",
    }
    assert files.outside == ()


def test_missing_include_is_named_with_its_line(tmp_path):
    scene = write(tmp_path, "scene.pov", '\n\n#include "gone.inc"\n')
    with pytest.raises(SceneError, match=r"scene.pov line 3: include file 'gone.inc' not found"):
        scan_scene(scene, library_dirs=LIBRARY)


def test_files_outside_the_folder_are_reported_not_taken(tmp_path):
    write(tmp_path, "shared/wood.png")
    scene = write(tmp_path, "scene/scene.pov", 'image_map { png "../shared/wood.png" }\n')
    files = scan_scene(scene, library_dirs=LIBRARY)
    assert files.files == ("scene.pov",)
    assert files.outside == (tmp_path / "shared" / "wood.png",)


def test_a_symlink_in_the_folder_that_leads_out_of_it_is_outside(tmp_path):
    secret = write(tmp_path, "home/secret.png")
    scene = write(tmp_path, "scene/scene.pov", 'image_map { png "maps/wood.png" }\nimage_map { png "in.png" }\n')
    write(tmp_path, "scene/real.png")
    (tmp_path / "scene" / "maps").mkdir()
    (tmp_path / "scene" / "maps" / "wood.png").symlink_to(secret)
    (tmp_path / "scene" / "in.png").symlink_to("real.png")  # one that stays inside is taken
    files = scan_scene(scene, library_dirs=LIBRARY)
    assert files.files == ("scene.pov", "in.png")
    assert files.outside == (tmp_path / "scene" / "maps" / "wood.png",)


def test_ini_entry_brings_its_scene(tmp_path):
    ini = write(tmp_path, "anim.ini", "Input_File_Name=anim.pov\n")
    pov = write(tmp_path, "anim.pov", '#include "x.inc"\n')
    write(tmp_path, "x.inc")
    files = scan_scene(ini, [pov], library_dirs=LIBRARY)
    assert set(files.files) == {"anim.ini", "anim.pov", "x.inc"}


def test_whole_image_features_are_noticed_in_code_not_in_comments(tmp_path):
    text = '// radiosity { }\n/* jitter */\n#declare S = "crand radiosity {";\nphotons { jitter 0 }\n'
    commented = write(tmp_path, "a/scene.pov", text)
    assert scan_scene(commented, library_dirs=LIBRARY).radiosity is False
    assert scan_scene(commented, library_dirs=LIBRARY).random_streams == ()
    direct = write(tmp_path, "b/scene.pov", "global_settings { radiosity { brightness 1 } }\n")
    assert scan_scene(direct, library_dirs=LIBRARY).radiosity
    preset = write(tmp_path, "c/scene.pov", '#include "rad_def.inc"\n')
    assert scan_scene(preset, library_dirs=LIBRARY).radiosity
    random = write(tmp_path, "d/scene.pov", '#include "lights.inc"\n')
    write(tmp_path, "d/lights.inc", "light_source { 0, 1 area_light x, y, 4, 4 jitter }\nfinish { crand 0.2 }\n")
    found = scan_scene(random, library_dirs=LIBRARY)
    assert found.radiosity is False and found.random_streams == ("jitter (area lights, media)", "crand")


def test_a_feature_an_if_plainly_switches_off_is_not_noticed(tmp_path):
    # As POV-Ray's own benchmark.pov does: its radiosity is declared off.
    text = (
        "#declare use_radiosity = false;\n#declare use_area_light = true;\n"
        "global_settings {\n  #if (use_radiosity=true)\n    radiosity { count 100 }\n  #end\n}\n"
        "#if (use_area_light=true) light_source { 0, 1 area_light x, y, 4, 4 jitter } #end\n"
    )
    found = scan_scene(write(tmp_path, "a/scene.pov", text), library_dirs=LIBRARY)
    assert found.radiosity is False and found.random_streams == ("jitter (area lights, media)",)
    # Its #else branch is on; a counter, a name set twice or anything less plain counts as on.
    for text in (
        "#declare R = off;\n#if (R) #else global_settings { radiosity {} } #end\n",
        "#declare I = 0;\n#while (I < 2) #if (I) global_settings { radiosity {} } #end #declare I = I + 1; #end\n",
        "#declare R = false;\n#declare R = true;\n#if (R) global_settings { radiosity {} } #end\n",
        "#if (clock > 0.5) global_settings { radiosity {} } #end\n",
        "#if (0) #elseif (1) global_settings { radiosity {} } #end\n",
    ):
        scene = write(tmp_path, "b/scene.pov", text)
        assert scan_scene(scene, library_dirs=LIBRARY).radiosity, text
    off = "#if (0)\n  #while (1) global_settings { radiosity {} } #end\n#end\nsphere { 0, 1 }\n"
    assert scan_scene(write(tmp_path, "c/scene.pov", off), library_dirs=LIBRARY).radiosity is False
