"""A job's report page: renders/<job>/report.html, one file that opens from disk.

It shows the image (or, for an animation, a contact sheet of its frames and
its video), a map of who rendered which rows or tiles (the image under the
nodes' colours), a timeline per node (its parts, and what went wrong when),
the summary of what each node did, and the job's settings and timings. All
of it comes from job.json; the pictures are embedded, so the file travels
alone. Written at the end of every render and by `inv merge`; `inv report`
writes it again.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from PIL import Image

from fabfile.jobs import Job
from fabfile.merge import png_header
from fabfile.plan import FRAMES, parse_part_name
from fabfile.summary import summarise

REPORT = "report.html"
PREVIEW_WIDTH = 960  # the image as shown: enough to see, light enough to embed
THUMB_WIDTH = 160  # an animation's contact sheet: one frame's width
SHEET_FRAMES = 24  # frames on the contact sheet at most, spread over the animation
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
LANE = 28  # a node's lane in the timeline, pixels
COUNTS = {"cuts", "column_cuts", "gated_cuts", "early_bands", "parts"}  # timings that count, not seconds


def write_report(job: Job, preview: Path | None = None) -> Path:
    """Write (or rewrite) the job's report page; its path. `preview`: the still scaled down
    already (fabfile.preview), complete: shown instead of decoding the whole image again."""
    nodes = sorted({record.node for record in job.parts.values()} | set(job.nodes))
    colours = {node: COLOURS[index % len(COLOURS)] for index, node in enumerate(nodes)}
    sections = [
        _picture(job, colours, preview),
        _legend(colours),
        _timeline(job, colours),
        _summary_table(job),
        _events(job),
        _settings(job),
    ]
    page = PAGE.format(title=html.escape(f"povfarm job {job.id}"), body="\n".join(s for s in sections if s))
    path = job.folder / REPORT
    temporary = job.folder / f".{REPORT}.tmp"
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _picture(job: Job, colours: dict[str, str], scaled: Path | None) -> str:
    if job.plan_kind == FRAMES:
        return _frames(job, colours)
    output = Path(job.output)
    if not output.is_file():
        return '<p class="missing">The image is not written yet: some parts are missing.</p>'
    width, height, _, _ = png_header(output)
    if scaled is not None and scaled.is_file():  # a PNG small enough to embed as it is
        picture = "data:image/png;base64," + base64.b64encode(scaled.read_bytes()).decode("ascii")
        shown = png_header(scaled)[0]
    else:
        with Image.open(output) as image:
            preview = image.copy()
        preview.thumbnail((PREVIEW_WIDTH, PREVIEW_WIDTH * height // max(1, width)))
        picture, shown = _data_uri(preview), preview.width
    rects = []
    for name, record in sorted(job.parts.items()):
        span = parse_part_name(name)
        if span is None:
            continue
        left, right = span.columns if span.columns else (1, width)
        title = f"<title>{html.escape(record.node)}: {html.escape(span.label())}</title>"
        rects.append(
            f'<rect class="part" data-node="{html.escape(record.node)}" x="{left - 1}" y="{span.start - 1}" '
            f'width="{right - left + 1}" height="{span.size}" fill="{colours[record.node]}">{title}</rect>'
            # A solid edge in the node's colour: a tint alone is lost on a dark or like-coloured image.
            f'<rect class="edge" x="{left - 1}" y="{span.start - 1}" width="{max(3, width // 80)}" '
            f'height="{span.size}" fill="{colours[record.node]}">{title}</rect>'
        )
    return (
        f'<h2>The image</h2><p>{html.escape(str(output))}, {width}x{height}; hover the map for who rendered what.</p>'
        f'<div class="map" style="max-width:{shown}px"><img id="image" alt="the rendered image" '
        f'src="{picture}"><svg id="map" viewBox="0 0 {width} {height}" preserveAspectRatio="none">'
        f'{"".join(rects)}</svg></div>'
    )


def _frames(job: Job, colours: dict[str, str]) -> str:
    folder = Path(job.output)
    frames = sorted(folder.glob(f"{Path(job.scene).stem}*.png"))
    if not frames:
        return '<p class="missing">No frames are written yet: some parts are missing.</p>'
    step = max(1, len(frames) // SHEET_FRAMES)
    chosen = frames[::step][:SHEET_FRAMES]
    thumbs = []
    for path in chosen:
        with Image.open(path) as frame:
            thumb = frame.convert("RGBA")
        thumb.thumbnail((THUMB_WIDTH, THUMB_WIDTH))
        thumbs.append((path.name, thumb))
    columns = min(6, len(thumbs))
    cell_w, cell_h = max(t.width for _, t in thumbs), max(t.height for _, t in thumbs)
    sheet = Image.new("RGBA", (columns * cell_w, -(-len(thumbs) // columns) * cell_h), (255, 255, 255, 0))
    for index, (_, thumb) in enumerate(thumbs):
        sheet.paste(thumb, ((index % columns) * cell_w, (index // columns) * cell_h))
    by_frame = {parse_part_name(n).start: r.node for n, r in job.parts.items() if parse_part_name(n)}
    cells = "".join(
        f'<span class="frame" data-node="{html.escape(node)}" style="background:{colours[node]}" '
        f'title="frame {frame}: {html.escape(node)}"></span>'
        for frame, node in sorted(by_frame.items())
    )
    stem = Path(job.scene).stem
    video = folder / f"{stem}.mp4"
    relative = html.escape(os.path.relpath(video, job.folder))
    player = f'<video id="video" controls loop src="{relative}"></video>' if video.is_file() else ""
    return (
        f"<h2>The animation</h2><p>{len(frames)} frames in {html.escape(str(folder))}</p>{player}"
        f'<p><img id="sheet" alt="contact sheet" src="{_data_uri(sheet)}"></p>'
        f'<h2>Who rendered each frame</h2><div id="map" class="frames">{cells}</div>'
    )


def _legend(colours: dict[str, str]) -> str:
    items = "".join(f'<span class="key"><i style="background:{c}"></i>{html.escape(n)}</span>'
                    for n, c in colours.items())
    return f'<p class="legend">{items}</p>'


def _timeline(job: Job, colours: dict[str, str]) -> str:
    """A lane per node, sessions side by side; a bar per part run (a frames part's files share one)."""
    nodes = list(colours)
    offsets, total = [], 0.0
    for session in job.sessions:
        offsets.append(total)
        total += session.get("render_seconds", 0.0)
    if not total:
        return ""
    scale = 900 / total
    bars, seen = [], set()
    for name, record in sorted(job.parts.items()):
        span = parse_part_name(name)
        key = (record.node, record.session, record.started, record.seconds)
        if span is None or record.started is None or key in seen or record.session >= len(offsets):
            continue
        seen.add(key)
        x = (offsets[record.session] + record.started) * scale
        y = nodes.index(record.node) * LANE + 4
        label = f"{record.node}: {span.label()}, {record.started:.1f}-{record.started + record.seconds:.1f} s"
        bars.append(f'<rect class="run" x="{100 + x:.1f}" y="{y}" width="{max(1.0, record.seconds * scale):.1f}" '
                    f'height="{LANE - 8}" fill="{colours[record.node]}"><title>{html.escape(label)}</title></rect>')
    marks = []
    for event in job.events:
        session = int(event.get("session", 0))
        if session < len(offsets) and event.get("node") in colours:
            x = 100 + (offsets[session] + float(event.get("t", 0.0))) * scale
            y = nodes.index(event["node"]) * LANE
            marks.append(f'<path class="event" d="M{x:.1f},{y + LANE - 4} l-5,-9 l10,0 z" fill="#c00">'
                         f'<title>{html.escape(str(event.get("text", "")))}</title></path>')
    lanes = "".join(f'<text x="0" y="{i * LANE + LANE / 2 + 4}">{html.escape(n)}</text>' for i, n in enumerate(nodes))
    height = len(nodes) * LANE + 20
    axis = f'<text x="100" y="{height - 4}">0 s</text><text x="960" y="{height - 4}">{total:.1f} s</text>'
    return (f'<h2>Timeline</h2><svg id="timeline" viewBox="0 0 1010 {height}" style="width:100%;max-width:1010px">'
            f"{lanes}{''.join(bars)}{''.join(marks)}{axis}</svg>")


def _summary_table(job: Job) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(n.node)}</td><td>{n.parts}</td><td>{n.units:g}</td><td>{n.share:.0%}</td>"
        f"<td>{n.busy:.1f}</td><td>{n.idle:.1f}</td></tr>"
        for n in summarise(job)
    )
    unit = "frames" if job.plan_kind == FRAMES else "rows"
    return (f'<h2>Nodes</h2><table id="summary"><tr><th>node</th><th>parts</th><th>{unit}</th><th>share</th>'
            f"<th>busy s</th><th>idle s</th></tr>{rows}</table>")


def _events(job: Job) -> str:
    if not job.events:
        return ""
    items = "".join(f"<li>{float(e.get('t', 0.0)):.1f} s: {html.escape(str(e.get('text', '')))}</li>"
                    for e in job.events)
    return f'<h2>Warnings</h2><ul id="warnings">{items}</ul>'


def _settings(job: Job) -> str:
    facts = {"job": job.id, "scene": job.scene, "status": job.status, "the image is": job.guarantee or "-",
             "cluster": job.cluster,
             "POV-Ray options": " ".join(job.options.get("job_args", [])),
             **{key if key in COUNTS else f"{key} (s)": value for key, value in sorted(job.timings.items())}}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f'<h2>Settings and timings</h2><table id="settings">{rows}</table>'


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
.map {{ position: relative; }}
.map img {{ display: block; width: 100%; }}
.map svg {{ position: absolute; left: 0; top: 0; width: 100%; height: 100%; }}
.map rect.part {{ fill-opacity: 0.3; stroke: #fff; stroke-opacity: 0.6; }}
.map:hover rect.part {{ fill-opacity: 0.5; }}
.frames .frame {{ display: inline-block; width: 14px; height: 14px; margin: 1px; }}
.legend .key {{ margin-right: 1.5em; }}
.legend i {{ display: inline-block; width: 1em; height: 1em; margin-right: 0.3em; vertical-align: middle; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; text-align: left; }}
#timeline text {{ font-size: 12px; }}
video {{ max-width: 100%; }}
.missing {{ color: #c00; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""
