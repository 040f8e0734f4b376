"""Preparing a job: the options checked, the scene's files found, the job record made.

Everything here happens before any node is touched, so bad input is refused
before anything renders.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fabfile import deps, photons, povopts
from fabfile.errors import OptionsError, SceneError
from fabfile.inventory import Cluster
from fabfile.jobs import DEFAULT_CLUSTER, DEFAULT_RENDERS, Job, create_job, latest_job
from fabfile.nodejob import povray_ini_line
from fabfile.plan import Plan, plan_frames, plan_still, still_unit_rows
from fabfile.progress import Reporter


@dataclass(frozen=True)
class RenderRequest:
    """What the user asked for; None means "as the scene or POV-Ray says"."""

    scene: Path
    cluster: Path = Path(DEFAULT_CLUSTER)
    renders: Path = Path(DEFAULT_RENDERS)
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    args: str = ""
    output: Path | None = None
    resume: bool = False
    threads: int | None = None  # POV-Ray threads per part; None: a node's cores for a still, 1 for frames
    allow_outside: bool = False
    keep_remote: bool = False
    fps: float | None = None  # an animation's video: frames a second
    exact: bool = False  # a still whose result depends on the whole image: whole, one thread


def prepare_job(request: RenderRequest, cluster: Cluster, reporter: Reporter) -> tuple[Job, deps.SceneFiles]:
    """Check the scene and options, find its files, and create (or reopen) its job."""
    scene = Path(os.path.abspath(request.scene))
    if not scene.is_file():
        raise SceneError(f"{request.scene}: scene not found; check the path given to --scene")
    if request.resume:
        return reopen_job(request, scene, reporter)
    settings, job_args = resolve_settings(scene, request)
    files = scan_files(scene, settings.input_file, settings.include_header, request.allow_outside, reporter)
    if request.output is not None:
        check_output(request.output, settings.animated, files, scene.stem, settings.final_frame)
    if settings.animated:
        plan, guarantee = plan_frames(settings.frames), IDENTICAL
    else:
        plan, guarantee = still_plan(settings, files, request.exact, reporter)
    # A still in bands shares each node's photon map between its parts (not a radiosity still,
    # whose bands read a scene copy of their own; not one rendered whole).
    shared_photons = (not settings.animated and guarantee not in (RADIOSITY, EXACT) and settings.input_file
                      and photons.copy_text(read_text(scene.parent / settings.input_file)) is not None)
    job = create_job(
        request.renders,
        scene,
        cluster=cluster.source,
        options={
            "job_args": list(job_args),
            "args": request.args,
            "threads": request.threads,
            "allow_outside": request.allow_outside,
            "keep_remote": request.keep_remote,
            "fps": request.fps,
            "exact": request.exact,
            "shared_photons": bool(shared_photons),
        },
        guarantee=guarantee,
        settings=asdict(settings),
        plan_kind=plan.kind,
        plan_units=[list(u) for u in plan.units],
        output="",
        inputs=input_hashes(files),
    )
    default_output = job.folder / ("frames" if settings.animated else f"{scene.stem}.png")
    job.output = str(request.output or default_output)
    job.save()
    return job, files


def read_text(path: Path) -> str:
    """A scene file's text, any bytes kept (POV-Ray reads bytes, not UTF-8)."""
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return ""


def input_hashes(files: deps.SceneFiles) -> dict[str, str]:
    """The SHA-256 of every file the scene reads, by the name it is shipped under."""
    return {name: hashlib.sha256((files.root / name).read_bytes()).hexdigest() for name in shipped_names(files)}


def check_inputs(job: Job, files: deps.SceneFiles) -> None:
    """Refuse to resume a job whose scene changed: its new parts would not match the old ones."""
    if not job.inputs:
        return  # a job recorded before povfarm kept its inputs' hashes
    now = input_hashes(files)
    changed = sorted(name for name in set(job.inputs) | set(now) if job.inputs.get(name) != now.get(name))
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise SceneError(
            f"job {job.id}: {changed[0]}{more} changed since the job started, so its parts would not match; "
            "undo the change, or start a new render without --resume"
        )


def check_output(output: Path, animated: bool, files: deps.SceneFiles, stem: str, final_frame: int) -> None:
    """Refuse, before anything renders, an output that would replace an input or cannot be written."""
    inputs = {os.path.realpath(files.root / name) for name in files.files}
    inputs |= {os.path.realpath(path) for path in files.outside}
    if animated:
        if output.exists() and not output.is_dir():
            raise OptionsError(f"--output {output}: an animation's frames go to a folder, and this is a file; "
                               "name a folder")
        digits = len(str(abs(final_frame)))
        targets = [output / f"{stem}{frame:0{digits}d}.png" for frame in range(1, final_frame + 1)]
        targets += [output / f"{stem}.mp4", output / f"{stem}.gif"]
    else:
        if output.is_dir():
            raise OptionsError(f"--output {output}: is a folder; name the PNG file to write, e.g. {output / 'out.png'}")
        if output.suffix.lower() != ".png":
            raise OptionsError(f"--output {output}: povfarm writes PNG images; give the file a .png name")
        targets = [output]
    for target in targets:
        if os.path.realpath(target) in inputs:
            raise OptionsError(f"--output {output}: would replace {target}, a file the scene reads; "
                               "choose another name")


IDENTICAL = "identical to POV-Ray alone"
EXACT = "identical to povray +WT1: rendered whole, with one thread (--exact)"
RADIOSITY = ("seam-free: radiosity from one pretrace gathered across the nodes and shared by every band, so "
             "the image differs from one run by the noise POV-Ray's own threads make; --exact for identical")


def still_plan(
    settings: povopts.Settings, files: deps.SceneFiles, exact: bool, reporter: Reporter
) -> tuple[Plan, str]:
    """A still's row blocks, and what its result is promised to be (see the README's contract)."""
    if exact and (files.radiosity or files.random_streams):
        return plan_still(settings.height, block=settings.height), EXACT
    plan = plan_still(settings.height, still_unit_rows(settings.antialias, settings.block_size))
    if files.radiosity:
        reporter.info("the scene uses radiosity: its pretrace is gathered across the nodes first and shared by "
                      "every band; --exact renders it whole with one thread, identical to povray +WT1")
        return plan, RADIOSITY
    if files.random_streams:
        features = ", ".join(files.random_streams)
        reporter.info(f"the scene uses {features}: its bands draw their own random numbers; "
                      "--exact renders it whole with one thread, identical to povray +WT1")
        return plan, (f"seam-free: {features} draw random numbers per POV-Ray run, so the bands differ from one "
                      "run by the noise POV-Ray's own threads make (+WT2 against +WT1); --exact for identical")
    return plan, IDENTICAL


def reopen_job(request: RenderRequest, scene: Path, reporter: Reporter) -> tuple[Job, deps.SceneFiles]:
    """--resume: the latest unfinished job of the scene, if its files are still the ones it rendered."""
    job = latest_job(request.renders, scene=scene, unfinished=True)
    files = scan_files(
        scene, job.settings.get("input_file"), job.settings.get("include_header"),
        job.options.get("allow_outside", False), reporter,
    )
    check_inputs(job, files)
    reporter.info(f"resuming job {job.id}: {len(job.parts)} parts already here")
    given = {"--width": request.width, "--height": request.height, "--frames": request.frames,
             "--args": request.args or None}
    ignored = [name for name, value in given.items() if value is not None]
    if ignored:
        reporter.warn(f"--resume continues job {job.id} with the options it started with; "
                      f"ignoring {', '.join(ignored)}")
    return job, files


def resolve_settings(scene: Path, request: RenderRequest) -> tuple[povopts.Settings, list[str]]:
    """What POV-Ray will render, and the options every part of the job gets."""
    for name, value in (("--width", request.width), ("--height", request.height), ("--frames", request.frames)):
        if value is not None and value < 1:
            raise OptionsError(f"{name} {value}: must be 1 or more")
    if request.threads is not None and request.threads < 1:
        raise OptionsError(f"--threads {request.threads}: must be 1 or more")
    if request.exact and request.threads not in (None, 1):
        raise OptionsError(f"--exact renders with one thread; drop --threads {request.threads}")
    user_args = povopts.split_args(request.args)
    settings = povopts.Settings(input_file=scene.name)
    if scene.suffix.lower() == ".ini":
        settings = povopts.read_ini(scene, povopts.Settings(input_file=None))
        if not settings.input_file:
            raise SceneError(f"{scene.name}: the INI file names no Input_File_Name; add one")
    for token in user_args:
        settings = povopts.apply_switch(settings, token, "--args")
    if request.width is not None:
        settings = replace(settings, width=request.width)
    if request.height is not None:
        settings = replace(settings, height=request.height)
    job_args = [*user_args, f"+W{settings.width}", f"+H{settings.height}"]
    if request.frames is not None:
        settings = replace(settings, initial_frame=1, final_frame=request.frames)
        job_args += ["+KFI1", f"+KFF{request.frames}"]
    povopts.validate(settings)
    job_args += ["-D", "-P", f"+FN{settings.bits}"]  # +WT follows once the nodes' cores are known
    return settings, job_args


def scan_files(
    scene: Path, input_file: str | None, header: str | None, allow_outside: bool, reporter: Reporter
) -> deps.SceneFiles:
    extra = []
    if scene.suffix.lower() == ".ini" and input_file:
        extra_path = scene.parent / input_file
        if not extra_path.is_file():
            raise SceneError(f"{extra_path}: the scene named by {scene.name} is not found")
        extra.append(extra_path)
    if header and (scene.parent / header).is_file():
        extra.append(scene.parent / header)  # else POV-Ray's library path has it, or POV-Ray says so
    files = deps.scan_scene(scene, extra)
    if files.outside:
        names = ", ".join(_outside_name(p, files.root) for p in files.outside[:5])
        if not allow_outside:
            raise SceneError(
                f"the scene reads files outside {files.root}: {names}; move them into the scene's "
                "folder, or pass --allow-outside to upload them too"
            )
        reporter.warn(f"uploading files from outside the scene's folder: {names}")
    return files


def _outside_name(path: Path, root: Path) -> str:
    if path.is_relative_to(root):  # in the folder, through a link that leads out of it
        return f"{path} (a link to {os.path.realpath(path)})"
    return str(path)


def entry_line(job: Job) -> str:
    """The line of povfarm.ini that names what POV-Ray reads first."""
    scene = Path(job.scene)
    if scene.suffix.lower() == ".ini":
        return povray_ini_line("Include_Ini", scene.name)
    return povray_ini_line("Input_File_Name", scene.name)


def shipped_names(files: deps.SceneFiles) -> list[str]:
    """Every file to upload, as a path relative to the scene's folder."""
    names = list(files.files)
    names += [os.path.relpath(path, files.root) for path in files.outside]
    return names


