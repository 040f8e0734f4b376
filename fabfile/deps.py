"""The files a scene needs: what must travel to every node with it.

POV-Ray reads files named by string literals: `#include "x.inc"`,
`image_map { png "wood.png" }`, `ttf "font.ttf"`, `#fopen ... "data.txt"`.
Rather than knowing every keyword, the scan takes each string literal in the
scene and its includes that names an existing file in the scene's folder.
Names POV-Ray finds in its standard library path are on the nodes already.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fabfile.errors import SceneError

SCANNED_SUFFIXES = {".pov", ".inc", ".mcr", ".ini", ".pov-inc"}
INCLUDE_SUFFIXES = ("", ".inc", ".pov")
DEFAULT_LIBRARY_DIRS = (
    Path("/usr/share/povray-3.7/include"),
    Path("/usr/share/povray-3.7"),
    Path("/usr/local/share/povray-3.7/include"),
)
INCLUDE_BEFORE = re.compile(r"#\s*include\s*$")
RADIOSITY_INCLUDES = {"rad_def.inc"}  # POV-Ray's own radiosity presets
# Radiosity's pretrace samples the region being rendered: plain bands of it would show seams,
# so such a still gathers one pretrace across the nodes first (fabfile.radiosity).
RADIOSITY = re.compile(r"\bradiosity\s*\{")
# One random stream per POV-Ray thread, never reseeded per pixel or block: bands differ from one
# render by the noise POV-Ray's own +WT2 shows against +WT1, without seams.
RANDOM_STREAM_FEATURES = {
    "jitter (area lights, media)": re.compile(r"\bjitter\b(?!\s*0(\.0*)?\b)"),  # "jitter 0" is off
    "crand": re.compile(r"\bcrand\b"),
}


@dataclass(frozen=True)
class StringLiteral:
    text: str
    line: int
    is_include: bool


@dataclass(frozen=True)
class SceneFiles:
    """The scene's folder and the files under it that go to the nodes."""

    root: Path
    files: tuple[str, ...]
    outside: tuple[Path, ...] = ()
    # Features whose result depends on what else was rendered before: radiosity's pretrace
    # (a still gathers it once, shared by its bands), random streams (bands, seam-free).
    radiosity: bool = False
    random_streams: tuple[str, ...] = ()


def split_source(text: str) -> tuple[str, list[StringLiteral]]:
    """POV-Ray source as its code (comments dropped, strings left as "") and its string literals."""
    code: list[str] = []
    found: list[StringLiteral] = []
    index, line, depth = 0, 1, 0
    length = len(text)
    while index < length:
        char = text[index]
        if depth == 0 and text.startswith("//", index):
            end = text.find("\n", index)
            index = length if end < 0 else end
        elif text.startswith("/*", index):
            depth += 1
            index += 2
        elif depth and text.startswith("*/", index):
            depth -= 1
            index += 2
        elif depth:
            line += char == "\n"
            index += 1
        elif char == '"':
            start_line = line
            chars: list[str] = []
            index += 1
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                line += text[index] == "\n"
                chars.append(text[index])
                index += 1
            before = "".join(code[-40:])
            found.append(StringLiteral("".join(chars), start_line, bool(INCLUDE_BEFORE.search(before))))
            code.append('""')
            index += 1
        else:
            line += char == "\n"
            code.append(char)
            index += 1
    return "".join(code), found


BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
LITERALS = {**BOOLEAN_WORDS, "1": True, "0": False}  # in a condition itself: #if (0)
DECLARED = re.compile(r"#\s*(?:declare|local)\s+(\w+)\s*=\s*([^;]*);")
DIRECTIVE = re.compile(r"#\s*(if|ifdef|ifndef|elseif|else|end|while|for|switch|macro)\b")
CONDITION = re.compile(r"^(!?)\s*(\w+)\s*(?:(!?=)\s*(\w+))?$")


def switched_on(code: str) -> str:
    """The code outside `#if` branches that are plainly off: a condition on a literal, or on
    a name this file declares once as a literal (`#declare use_radiosity = false;` ...
    `#if (use_radiosity=true)`). Anything less plain counts as on."""
    # A name counts only if it is declared once, as true or false: a counter (`#declare I = 0;`,
    # then `#declare I = I + 1;`) or a name set twice is not known.
    declared: dict[str, bool | None] = {}
    for name, value in DECLARED.findall(code):
        declared[name] = None if name in declared else BOOLEAN_WORDS.get(value.strip().lower())
    kept: list[str] = []
    stack: list[tuple[str, bool | None]] = []  # each open directive: (kind, is its branch on)
    position = 0
    for match in DIRECTIVE.finditer(code):
        if all(on is not False for _, on in stack):
            kept.append(code[position:match.start()])
        kind = match.group(1)
        position = match.end()
        if kind == "if":
            condition, position = _parenthesised(code, position)
            stack.append(("if", _truth(condition, declared)))
        elif kind in ("else", "elseif") and stack and stack[-1][0] == "if":
            on = stack[-1][1]
            stack[-1] = ("if", None if kind == "elseif" or on is None else not on)
        elif kind == "end":
            if stack:
                stack.pop()
        elif kind not in ("else", "elseif"):
            stack.append((kind, None))
    if all(on is not False for _, on in stack):
        kept.append(code[position:])
    return "".join(kept)


def _parenthesised(code: str, start: int) -> tuple[str, int]:
    """The text inside the parentheses that open at or after `start`, and where they close."""
    opening = code.find("(", start)
    if opening < 0:
        return "", start
    depth = 0
    for index in range(opening, len(code)):
        depth += {"(": 1, ")": -1}.get(code[index], 0)
        if depth == 0:
            return code[opening + 1:index].strip(), index + 1
    return "", len(code)


def _truth(condition: str, declared: dict[str, bool | None]) -> bool | None:
    match = CONDITION.match(condition.strip().strip("()").strip())
    if not match:
        return None
    negated, name, operator, other = match.groups()
    value = LITERALS.get(name.lower(), declared.get(name))
    if operator is not None:
        literal = LITERALS.get(other.lower(), declared.get(other))
        if value is None or literal is None:
            return None
        value = (value == literal) if operator == "=" else (value != literal)
    if value is None:
        return None
    return not value if negated else value


def string_literals(text: str) -> list[StringLiteral]:
    """The string literals of POV-Ray source, comments skipped."""
    return split_source(text)[1]


def scan_scene(
    entry: Path,
    extra_files: Iterable[Path] = (),
    library_dirs: Sequence[Path] = DEFAULT_LIBRARY_DIRS,
) -> SceneFiles:
    """Find every file under the entry's folder that the scene reads.

    `entry` is the .pov or .ini the user named; `extra_files` are more
    entries (the INI's input file). A missing #include is a SceneError that
    names it; files outside the folder are listed in `outside`.
    """
    root = _absolute(entry.parent)
    found: dict[str, None] = {}
    outside: dict[Path, None] = {}
    queue = [_absolute(entry), *(_absolute(p) for p in extra_files)]
    seen: set[Path] = set()
    radiosity = False
    random_streams: dict[str, None] = {}
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        _record(path, root, found, outside)
        if path.suffix.lower() not in SCANNED_SUFFIXES:
            continue
        scanned = _scan_file(path, root, library_dirs)
        radiosity = radiosity or scanned.radiosity
        random_streams.update(dict.fromkeys(scanned.random_streams))
        queue.extend(scanned.reads)
    return SceneFiles(root=root, files=tuple(found), outside=tuple(outside), radiosity=radiosity,
                      random_streams=tuple(random_streams))


@dataclass(frozen=True)
class _ScannedFile:
    radiosity: bool
    random_streams: tuple[str, ...]
    reads: tuple[Path, ...]  # the files it names that are not in POV-Ray's library


def _scan_file(path: Path, root: Path, library_dirs: Sequence[Path]) -> _ScannedFile:
    """What one scene file switches on and which files it reads."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SceneError(f"{path}: cannot read it: {exc.strerror}") from None
    code, literals = split_source(text)
    code = switched_on(code)
    radiosity = RADIOSITY.search(code) is not None or any(
        lit.is_include and Path(lit.text).name in RADIOSITY_INCLUDES for lit in literals)
    random_streams = tuple(feature for feature, pattern in RANDOM_STREAM_FEATURES.items() if pattern.search(code))
    reads: list[Path] = []
    for literal in literals:
        target = _resolve(literal, root, library_dirs)
        if target is None:
            if literal.is_include and _looks_like_file(literal.text):
                raise SceneError(
                    f"{_display(path, root)} line {literal.line}: include file "
                    f"{literal.text!r} not found in {root} or POV-Ray's library path"
                )
            continue
        if target != "library":
            reads.append(target)
    return _ScannedFile(radiosity, random_streams, tuple(reads))


def _resolve(literal: StringLiteral, root: Path, library_dirs: Sequence[Path]) -> Path | str | None:
    name = literal.text
    if not _looks_like_file(name):
        return None
    suffixes = INCLUDE_SUFFIXES if literal.is_include else ("",)
    for suffix in suffixes:
        candidate = Path(name + suffix)
        full = candidate if candidate.is_absolute() else root / candidate
        if full.is_file():
            return _absolute(full)
    if literal.is_include and not Path(name).is_absolute():
        for library in library_dirs:
            for suffix in suffixes:
                if (library / (name + suffix)).is_file():
                    return "library"
    return None


def _absolute(path: Path) -> Path:
    # abspath folds "..", so a file outside the folder shows as outside,
    # without following symlinks the user put in the folder on purpose.
    return Path(os.path.abspath(path))


def _looks_like_file(name: str) -> bool:
    return bool(name.strip()) and "\n" not in name and len(name) < 4096


def _record(path: Path, root: Path, found: dict[str, None], outside: dict[Path, None]) -> None:
    try:
        relative = path.relative_to(root)
    except ValueError:
        outside[path] = None
        return
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
        outside[path] = None  # a symlink in the folder that leads out of it: uploading it needs consent too
        return
    found[relative.as_posix()] = None


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
