"""An animation's frames as video: an MP4 (H.264) to watch and a GIF to preview, with FFmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fabfile.errors import PovfarmError

DEFAULT_FPS = 24.0  # frames a second, as film; --fps and invoke.yaml's render.fps change it
GIF_WIDTH = 480  # pixels at most: a preview, small enough to mail or put on a page


class VideoError(PovfarmError):
    """FFmpeg is missing, or could not make the video."""


def make_videos(folder: Path, stem: str, first: int, digits: int, fps: float) -> list[Path]:
    """`<stem>.mp4` and `<stem>.gif` beside the frames `<stem><number>.png` in `folder`."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise VideoError(f"frames are in {folder}, but no video: ffmpeg is not installed; "
                         "install it (apt-get install ffmpeg) and run inv merge")
    source = ["-framerate", f"{fps:g}", "-start_number", str(first), "-i", str(folder / f"{stem}%0{digits}d.png")]
    mp4, gif = folder / f"{stem}.mp4", folder / f"{stem}.gif"
    commands = [
        # yuv420p plays everywhere; it needs an even width and height.
        [*source, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(mp4)],
        # One palette made from all the frames, then used for each: far truer colours than GIF's default.
        [*source, "-vf", f"scale='min({GIF_WIDTH},iw)':-1:flags=lanczos,split[a][b];[a]palettegen[p];[b][p]paletteuse",
         str(gif)],
    ]
    for arguments in commands:
        result = subprocess.run([ffmpeg, "-y", "-v", "error", *arguments], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise VideoError(f"frames are in {folder}, but ffmpeg could not make {Path(arguments[-1]).name}: {last}")
    return [mp4, gif]
