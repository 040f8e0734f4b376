"""A scene's copy that saves or loads the node's photon map (fabfile.photons)."""

import subprocess
from pathlib import Path

import pytest

from fabfile import photons

GRENADINE = Path("/usr/share/doc/povray/examples/advanced/grenadine/grenadine.pov")


def test_the_global_photons_block_gets_the_save_or_load_and_nothing_else_changes():
    scene = ('#version 3.7;\nglobal_settings { assumed_gamma 1 photons { // "a { comment"\n'
             '  spacing 0.01 } }\nsphere { 0, 1 photons { target } }\n')
    copy = photons.copy_text(scene)
    assert copy is not None
    assert copy.replace(copy[copy.index("\n  #if"):copy.index("// povfarm\n") + len("// povfarm\n")], "") == scene
    assert 'load_file "povfarm-photons.ph"' in copy and f"str({photons.DECLARE}, 0, 0)" in copy
    assert copy.index("#if") < copy.index("spacing")  # inside the scene's own block


@pytest.mark.parametrize(
    "scene",
    [
        "sphere { 0, 1 photons { target reflection on } }",  # an object's photons, not the scene's
        'global_settings { photons { spacing 0.1 save_file "mine.ph" } }',  # the scene keeps its own map
        "#declare P = photons { spacing 0.1 }\nglobal_settings { assumed_gamma 1 }",
        '// global_settings { photons { spacing 0.1 } }\n"global_settings { photons {"',  # comments, strings
    ],
)
def test_a_scene_without_a_global_photons_block_of_its_own_is_left_alone(scene):
    assert photons.copy_text(scene) is None


def test_povray_s_own_photon_examples_get_a_copy():
    benchmark = GRENADINE.parent.parent / "benchmark" / "benchmark.pov"
    for scene in (GRENADINE, benchmark):
        text = scene.read_text(encoding="utf-8", errors="surrogateescape")
        copy = photons.copy_text(text)
        assert copy is not None and copy.count("povfarm-photons.ph") == 2, scene


def test_a_parts_map_becomes_the_nodes_only_once_the_part_traced_a_row(tmp_path):
    (tmp_path / "log").write_text("Photon Warning: ...\nRendered 1024 of 76800 pixels\n")
    (tmp_path / "povfarm-photons-1.ph").write_text("first")
    (tmp_path / "povfarm-photons-241.ph").write_text("second")
    (tmp_path / "short.log").write_text("Parsing...\n")
    (tmp_path / "povfarm-photons-99.ph").write_text("cut short")
    for start, log in ((1, "log"), (241, "log"), (99, "short.log")):
        subprocess.run(["bash", "-c", photons.keep_map(log, start)], cwd=tmp_path, check=True)
    assert (tmp_path / photons.MAP).read_text() == "first"  # the node's map is never replaced
    assert sorted(p.name for p in tmp_path.glob("povfarm-photons*")) == [photons.MAP]
