"""A still's photon map, shot by each node's first part and loaded by its later ones.

POV-Ray shoots a scene's photons before it traces a row, in every part: a cut
band's continuation or a piece of it shot them all again (grenadine.pov: 4.4 s
of photons to 2 s of trace at 320x240), so cuts rarely paid. Each node's first
parts still shoot their own, side by side as before; each saves its map
(`photons { save_file }`, written before the trace begins) under its own name,
and once it has traced a row, its part command renames it to the node's map.
A later part on that node parses `file_exists()` true and loads the map
(`load_file`: 0.02 s) instead. The map is the one every part would shoot (same
scene, same +WT): the pixels are the same, which the tests check.

The save/load goes into the scene's own `global_settings { photons { ... } }`
block, in a copy of the scene beside it: a second photons block would reset the
scene's settings (bench/NOTES.md). A scene whose block povfarm cannot find in its
main file, or that saves or loads a map itself, shoots its photons in every part.
"""

from __future__ import annotations

import posixpath
import re

from fabfile.transport import shell_join

DECLARE = "PovfarmPart"  # each part's first row, declared on its command line: names the map it saves
MAP = "povfarm-photons.ph"  # the node's map, in the scene's folder there
COPY_SUFFIX = ".povfarm-photons.pov"
GLOBAL_SETTINGS = re.compile(r"\bglobal_settings\s*\{")
PHOTONS = re.compile(r"\bphotons\s*\{")
OWN_FILE = re.compile(r"\b(save_file|load_file)\b")


def own_map(start: int) -> str:
    return f"povfarm-photons-{start}.ph"


def copy_name(input_file: str) -> str:
    """The scene's copy that saves or loads the map, beside the scene's main file."""
    return f"{posixpath.splitext(input_file)[0]}{COPY_SUFFIX}"


def copy_text(scene: str) -> str | None:
    """The scene with its global photons block saving or loading the node's map, or None."""
    code = _blank_comments_and_strings(scene)
    for settings in GLOBAL_SETTINGS.finditer(code):
        end = _closing_brace(code, settings.end())
        block = PHOTONS.search(code, settings.end(), end)
        if block is None:
            continue
        if _closing_brace(code, block.end()) > end or OWN_FILE.search(code, block.end(), end):
            return None
        insert = (f'\n  #if (file_exists("{MAP}")) load_file "{MAP}" '
                  f'#else save_file concat("povfarm-photons-", str({DECLARE}, 0, 0), ".ph") #end  // povfarm\n')
        return scene[: block.end()] + insert + scene[block.end():]
    return None


def part_args(start: int) -> list[str]:
    return [f"Declare={DECLARE}={start}"]


def keep_map(log: str, start: int) -> str:
    """Shell: once the part has traced a row, its saved map (complete by then) becomes the
    node's, unless the node has one; a map of a part stopped sooner may be cut short: dropped."""
    own = shell_join([own_map(start)])
    return (f"if grep -q -m1 -aE 'Rendered [1-9]' {log}; then mv -n -- {own} {MAP} 2>/dev/null; fi; "
            f"rm -f -- {own}; ")


def _closing_brace(code: str, start: int) -> int:
    """The index of the brace closing the one opened just before `start` (or the text's end)."""
    depth = 1
    for index in range(start, len(code)):
        if code[index] == "{":
            depth += 1
        elif code[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return len(code)


def _blank_comments_and_strings(text: str) -> str:
    """The text with comments and string literals blanked out (same length), so that braces and
    keywords inside them are not read as code."""
    return re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"',
                  lambda match: re.sub(r"[^\n]", " ", match.group(0)), text, flags=re.S)
