"""An output that would replace an input, or that cannot be what povfarm writes, is refused first."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabfile.deps import SceneFiles
from fabfile.errors import OptionsError
from fabfile.prepare import check_output


@pytest.fixture
def files(tmp_path: Path) -> SceneFiles:
    for name in ("nebula.pov", "stars.png", "nebula2.png", "clip/nebula.gif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    return SceneFiles(tmp_path, ("nebula.pov", "stars.png", "nebula2.png", "clip/nebula.gif"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("nebula.pov", "give the file a .png name"),
        ("stars.png", "would replace"),
        ("out.jpg", "writes PNG images"),
        (".", "is a folder"),
    ],
)
def test_a_still_never_replaces_an_input_nor_writes_the_wrong_thing(files, name, message):
    with pytest.raises(OptionsError, match=message):
        check_output(files.root / name, False, files, "nebula", 1)


def test_a_still_through_a_symlink_to_an_input_is_refused(files, tmp_path):
    (tmp_path / "link.png").symlink_to(files.root / "stars.png")
    with pytest.raises(OptionsError, match="would replace"):
        check_output(tmp_path / "link.png", False, files, "nebula", 1)


def test_an_animation_whose_frames_would_replace_an_input_is_refused(files):
    with pytest.raises(OptionsError, match="nebula2.png"):
        check_output(files.root, True, files, "nebula", 3)
    with pytest.raises(OptionsError, match="is a file"):
        check_output(files.root / "stars.png", True, files, "nebula", 3)
    with pytest.raises(OptionsError, match="nebula.gif"):  # its GIF preview would
        check_output(files.root / "clip", True, files, "nebula", 3)


def test_good_outputs_pass(files, tmp_path):
    check_output(tmp_path / "new" / "out.PNG", False, files, "nebula", 1)
    check_output(tmp_path / "frames", True, files, "nebula", 12)  # nebula02.png, not nebula2.png
