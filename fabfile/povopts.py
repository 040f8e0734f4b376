"""POV-Ray's options, read from INI files and command-line switches.

povfarm needs only a few settings to plan a job (size, frames, bit depth,
antialiasing); everything else is handed to POV-Ray untouched, on every node,
in the same order, so POV-Ray itself decides what it means. Options that
povfarm owns (the input file, the output, row and column ranges) are refused
with a message that names the povfarm option to use instead.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from fabfile.errors import OptionsError, SceneError

# Debian's /etc/povray/3.7/povray.ini renders 800x600 when nothing says otherwise.
DEFAULT_WIDTH = 800
DEFAULT_HEIGHT = 600

TRUE_WORDS = {"on", "true", "yes", "1"}
FALSE_WORDS = {"off", "false", "no", "0"}

OWNED_SWITCHES = {
    "I": "--scene",
    "O": "--output",
    "SR": "nothing (povfarm splits rows itself)",
    "ER": "nothing (povfarm splits rows itself)",
    "SC": "nothing (povfarm renders whole rows)",
    "EC": "nothing (povfarm renders whole rows)",
    "WT": "--threads (every part of an image must use the same thread count)",
    # Cuts, progress and continued parts read a band's blocks in POV-Ray's default order.
    "RS": "nothing (povfarm orders a part's blocks itself)",
    "RP": "nothing (povfarm orders a part's blocks itself)",
}
OWNED_KEYS = {
    "start_row": "SR",
    "end_row": "ER",
    "start_column": "SC",
    "end_column": "EC",
    "render_block_step": "RS",
    "render_pattern": "RP",
}
# The spellings of +I, +O and +WT that an INI file may use but --args may not: povfarm owns them.
ARGS_OWNED_KEYS = {"input_file_name": "I", "output_file_name": "O", "work_threads": "WT"}


@dataclass(frozen=True)
class Settings:
    """What povfarm must know of a render; POV-Ray's own defaults where unset."""

    input_file: str | None = None
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    initial_frame: int = 1
    final_frame: int = 1
    subset_start: int | None = None
    subset_end: int | None = None
    antialias: bool = False
    antialias_method: int = 1
    block_size: int = 32
    bits: int = 8
    alpha: bool = False
    file_type: str = "N"
    include_header: str | None = None  # the user's include header (+HI), if any

    @property
    def animated(self) -> bool:
        return self.final_frame != self.initial_frame

    @property
    def frames(self) -> tuple[int, ...]:
        """The frame numbers POV-Ray would render, subset applied."""
        if not self.animated:
            return ()
        first = self.subset_start if self.subset_start is not None else self.initial_frame
        last = self.subset_end if self.subset_end is not None else self.final_frame
        return tuple(range(max(first, self.initial_frame), min(last, self.final_frame) + 1))


def split_args(args: str) -> tuple[str, ...]:
    """Split a --args string into POV-Ray switches, refusing what is not one."""
    try:
        tokens = tuple(shlex.split(args))
    except ValueError as exc:
        raise OptionsError(f"--args: cannot split {args!r}: {exc}") from None
    for token in tokens:
        if not re.match(r"^[+-][A-Za-z]", token) and not re.match(r"^[A-Za-z_]+=", token):
            raise OptionsError(
                f"--args: {token!r} is not a POV-Ray option (expected +X, -X or Key=value)"
            )
        apply_switch(Settings(), token, where="--args")
    return tokens


def apply_switch(settings: Settings, token: str, where: str) -> Settings:
    """Return settings with one command-line switch (or Key=value) applied."""
    if "=" in token and token[0] not in "+-":
        key, _, value = token.partition("=")
        return apply_key(settings, key, value, where)
    on = token[0] == "+"
    body = token[1:]
    upper = body.upper()
    for owned, instead in OWNED_SWITCHES.items():
        if upper.startswith(owned):
            if on and _spells_default(owned, body[len(owned):]):
                return settings
            raise OptionsError(f"{where}: {token} is set by povfarm; use {instead}")
    if upper.startswith("WT") or upper.startswith("WL"):
        return settings
    if upper.startswith("W"):
        return replace(settings, width=_positive_int(body[1:], token, where))
    if upper.startswith("HI"):
        return replace(settings, include_header=_unquote(body[2:]) if on and len(body) > 2 else None)
    if upper.startswith("HT"):
        return settings
    if upper.startswith("H"):
        return replace(settings, height=_positive_int(body[1:], token, where))
    if upper.startswith("AM"):
        return replace(settings, antialias_method=_positive_int(body[2:], token, where))
    if upper.startswith("AG") or upper.startswith("AD"):
        return settings
    if upper.startswith("A") and (len(body) == 1 or _is_number(body[1:])):
        return replace(settings, antialias=on)
    if upper.startswith("BS"):
        return replace(settings, block_size=_positive_int(body[2:], token, where))
    if upper.startswith("KFI"):
        return replace(settings, initial_frame=_int(body[3:], token, where))
    if upper.startswith("KFF"):
        return replace(settings, final_frame=_int(body[3:], token, where))
    if upper.startswith("SF"):
        return replace(settings, subset_start=_int(body[2:], token, where))
    if upper.startswith("EF"):
        return replace(settings, subset_end=_int(body[2:], token, where))
    if upper.startswith("UA"):
        return replace(settings, alpha=on)
    if upper.startswith("F") and len(body) >= 2:
        return _apply_file_type(settings, body[1:], token, where) if on else settings
    return settings


def apply_key(settings: Settings, key: str, value: str, where: str) -> Settings:
    """Return settings with one INI Key=value applied."""
    name = key.strip().lower()
    value = _unquote(value.strip())
    label = f"{key.strip()}={value}"
    if name in OWNED_KEYS:
        if _spells_default(OWNED_KEYS[name], value):
            return settings  # POV-Ray's own INIs spell its defaults out (benchmark.ini): nothing to own
        raise OptionsError(f"{where}: {label} is set by povfarm; remove it")
    if where == "--args" and name in ARGS_OWNED_KEYS:
        raise OptionsError(f"{where}: {label} is set by povfarm; use {OWNED_SWITCHES[ARGS_OWNED_KEYS[name]]}")
    if name == "input_file_name":
        return replace(settings, input_file=value)
    if name == "width":
        return replace(settings, width=_positive_int(value, label, where))
    if name == "height":
        return replace(settings, height=_positive_int(value, label, where))
    if name == "antialias":
        return replace(settings, antialias=_bool(value, label, where))
    if name == "antialias_threshold":
        return settings
    if name == "sampling_method":
        return replace(settings, antialias_method=_positive_int(value, label, where))
    if name == "render_block_size":
        return replace(settings, block_size=_positive_int(value, label, where))
    if name == "initial_frame":
        return replace(settings, initial_frame=_int(value, label, where))
    if name == "final_frame":
        return replace(settings, final_frame=_int(value, label, where))
    if name == "subset_start_frame":
        return replace(settings, subset_start=_int(value, label, where))
    if name == "subset_end_frame":
        return replace(settings, subset_end=_int(value, label, where))
    if name == "output_alpha":
        return replace(settings, alpha=_bool(value, label, where))
    if name == "bits_per_color":
        return replace(settings, bits=_bits(value, label, where))
    if name == "include_header":
        return replace(settings, include_header=value or None)
    if name == "output_file_type":
        return _apply_file_type(settings, value, label, where)
    return settings


def _spells_default(switch: str, value: str) -> bool:
    """Whether an owned setting only says what POV-Ray does anyway: a row or column bound on
    the image's own edge (a start of 0 or 1, the first row or column as a fraction or a
    number; an end of 1.0, all of it as a fraction), or block order 0 (its default)."""
    try:
        number = float(value)
    except ValueError:
        return False
    if switch in ("SR", "SC"):
        return number in (0.0, 1.0)
    if switch in ("RS", "RP"):
        return number == 0.0
    return switch in ("ER", "EC") and number == 1.0


def read_ini(path: Path, settings: Settings | None = None, section: str | None = None) -> Settings:
    """Apply an INI file the way `povray file.ini` reads it.

    With no section named, POV-Ray reads only what comes before the first
    [section] label; with one, that part and the named section.
    """
    settings = settings or Settings()
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise SceneError(f"{path}: INI file not found") from None
    current: str | None = None
    for number, raw in enumerate(lines, start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        where = f"{path.name} line {number}"
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().lower()
            continue
        if current is not None and (section is None or current != section.lower()):
            continue
        if "=" in line and line[0] not in "+-":
            key, _, value = line.partition("=")
            if key.strip().lower() == "include_ini":
                settings = read_ini(path.parent / _unquote(value.strip()), settings)
                continue
            settings = apply_key(settings, key, value, where)
        else:
            for token in line.split():
                if token[0] in "+-":
                    settings = apply_switch(settings, token, where)
    return settings


def validate(settings: Settings) -> Settings:
    """Refuse settings povfarm cannot render faithfully."""
    if settings.file_type != "N":
        raise OptionsError(
            f"output type {settings.file_type!r} is not PNG; povfarm writes PNG "
            "(+FN or +FN16): remove the +F option"
        )
    if settings.width < 1 or settings.height < 1:
        raise OptionsError(f"size {settings.width}x{settings.height}: width and height must be 1 or more")
    if settings.animated and not settings.frames:
        raise OptionsError(
            f"frames {settings.initial_frame}..{settings.final_frame} with subset "
            f"{settings.subset_start}..{settings.subset_end}: no frame left to render"
        )
    return settings


def _apply_file_type(settings: Settings, spec: str, label: str, where: str) -> Settings:
    spec = spec.strip()
    file_type = spec[:1].upper()
    rest = spec[1:]
    if not file_type:
        return settings
    bits = settings.bits
    if rest:
        bits = _bits(rest, label, where)
    return replace(settings, file_type=file_type, bits=bits)


def _bits(value: str, label: str, where: str) -> int:
    bits = _positive_int(value, label, where)
    if bits not in (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16):
        raise OptionsError(f"{where}: {label}: bits per colour must be 5 to 16")
    return 16 if bits > 8 else 8


def _strip_comment(line: str) -> str:
    quoted: str | None = None
    for index, char in enumerate(line):
        if char in "\"'":
            quoted = None if quoted == char else (quoted or char)
        elif char == ";" and quoted is None:
            return line[:index]
    return line


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int(text: str, label: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OptionsError(f"{where}: {label}: expected a whole number") from None


def _positive_int(text: str, label: str, where: str) -> int:
    value = _int(text, label, where)
    if value < 1:
        raise OptionsError(f"{where}: {label}: must be 1 or more")
    return value


def _bool(text: str, label: str, where: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise OptionsError(f"{where}: {label}: expected on or off")
