"""The report page, as a real headless browser (Debian's chromium) shows it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image, ImageChops

from fabfile.report import COLOURS
from tests.conftest import REPO, SCENES, copy_scene, run_inv, write_inventory


class Elements(HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )


def shown_dom(page: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(chromium(page, "--dump-dom").stdout)
    return parser.found


def colour_pixels(shot: Image.Image, colour: str) -> int:
    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    near = (all(abs(a - b) <= 6 for a, b in zip(pixel, want, strict=False)) for pixel in shot.get_flattened_data())
    return sum(near)


def test_the_report_shows_the_image_who_rendered_what_and_when(ssh_cluster, tmp_path):
    scene = copy_scene(SCENES / "still" / "scene.pov", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory())
    result = run_inv("render", f"--scene={scene}", "--width=160", "--height=240", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "renders").glob("*")
    record = json.loads((folder / "job.json").read_text())
    page = folder / "report.html"
    assert f"the report: renders/{folder.name}/report.html" in result.stdout

    elements = shown_dom(page)
    (image,) = [attrs for tag, attrs in elements if tag == "img" and attrs.get("id") == "image"]
    assert image["src"].startswith("data:image/png;base64,")  # embedded: the page travels alone
    parts = [attrs for tag, attrs in elements if tag == "rect" and attrs.get("class") == "part"]
    assert sorted(rect["data-node"] for rect in parts) == sorted(p["node"] for p in record["parts"].values())
    assert sum(int(rect["height"]) for rect in parts) == 240  # the map covers every row once
    runs = [attrs for tag, attrs in elements if tag == "rect" and attrs.get("class") == "run"]
    assert len(runs) == len(record["parts"])  # a bar per part on the timeline

    shot_path = tmp_path / "shot.png"
    chromium(page, f"--screenshot={shot_path}", "--window-size=1100,1400")
    with Image.open(shot_path) as shot:
        pixels = shot.convert("RGB")
    for index, node in enumerate(sorted({p["node"] for p in record["parts"].values()})):
        assert colour_pixels(pixels, COLOURS[index]) > 500, node  # its bars and its map edge are drawn


def test_inv_report_writes_the_page_of_a_merged_animation(ssh_cluster, tmp_path):
    scene = copy_scene(SCENES / "anim" / "anim.pov", tmp_path / "scene")
    write_inventory(tmp_path, ssh_cluster.inventory())
    result = run_inv("render", f"--scene={scene}", "--width=32", "--height=24", "--frames=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "renders").glob("*")
    (folder / "report.html").unlink()
    again = run_inv("report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    elements = shown_dom(folder / "report.html")
    (video,) = [attrs for tag, attrs in elements if tag == "video"]
    assert (folder / video["src"]).resolve() == (folder / "frames" / "anim.mp4").resolve()
    assert [attrs for tag, attrs in elements if tag == "img" and attrs.get("id") == "sheet"]
    frames = [attrs for tag, attrs in elements if tag == "span" and attrs.get("class") == "frame"]
    assert len(frames) == 4


def watch_preview(folder: Path, process: subprocess.Popen) -> list[int] | None:
    """The brightest value of each row of the preview, seen once part of it is in, part still black."""
    seen = None
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        previews = list(folder.glob("renders/*/preview.png"))
        if previews and not list(folder.glob("out.png")):
            try:
                with Image.open(previews[0]) as preview:
                    grey = preview.convert("L")
            except OSError:
                continue
            rows = [grey.crop((0, y, grey.width, y + 1)).getextrema()[1] for y in range(grey.height)]
            if any(rows) and not all(rows):
                seen = rows
        time.sleep(0.2)
    return seen


def test_a_still_fills_in_its_preview_while_it_renders(own_cluster, tmp_path):
    scene = copy_scene(SCENES / "slow" / "slow.pov", tmp_path / "scene")
    write_inventory(tmp_path, own_cluster.inventory())
    (tmp_path / "many-parts.yaml").write_text("povfarm:\n  render:\n    cuts: false\n")
    command = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "-f", str(tmp_path / "many-parts.yaml"),
               "render", f"--scene={scene}", "--width=160", "--height=320", "--args=Declare=Samples=600",
               "--output=out.png"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = watch_preview(tmp_path, process)
    finally:
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert seen is not None, "no partial preview was seen while the job ran"
    (preview_path,) = tmp_path.glob("renders/*/preview.png")
    with Image.open(preview_path) as preview, Image.open(tmp_path / "out.png") as final:
        assert preview.size == final.size  # small enough to show as it is
        difference = ImageChops.difference(preview.convert("RGB"), final.convert("RGB"))
        assert max(high for _, high in difference.getextrema()) == 0  # at the end, the image itself
