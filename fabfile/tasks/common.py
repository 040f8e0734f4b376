"""What every task shares: option precedence and clean errors."""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable
from typing import Any

from invoke import Context, Exit
from rich.console import Console

from fabfile.errors import OptionsError, PovfarmError
from fabfile.jobs import DEFAULT_CLUSTER, DEFAULT_RENDERS
from fabfile.video import DEFAULT_FPS

INTERRUPTED_EXIT = 130

# Piped or captured output gets room for a whole table row; a terminal keeps its width.
console = Console(width=None if sys.stdout.isatty() else 160)
error_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DEFAULTS: dict[str, Any] = {
    "cluster": DEFAULT_CLUSTER,
    "renders": DEFAULT_RENDERS,
    "render": {
        "threads": None,  # a still: the fewest cores of a node; frames: 1
        "overlap": 1,
        "guided_factor": 1.5,
        "max_failures": 2,
        "hang_grace": 20.0,
        "hang_factor": 4.0,
        "latency_factor": 1.0,
        "cuts": True,
        "allow_outside": False,
        "keep_remote": False,
        "fps": DEFAULT_FPS,
        "exact": False,
    },
}


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree.get(key) if hasattr(tree, "get") else None
    return tree


def option(c: Context, given: Any, *path: str) -> Any:
    """The command line's value if given, else invoke.yaml's, else the default.

    The defaults stay out of Invoke's own config: a user's file that leaves a
    section empty (`render:`) would not merge with them.
    """
    if given is not None:
        return given
    value = _lookup(c.config.get("povfarm"), path)
    return _lookup(DEFAULTS, path) if value is None else value


def setting(c: Context, kind: type, *path: str) -> Any:
    """A number or yes/no from invoke.yaml (or its default), checked."""
    value = option(c, None, *path)
    fix = f"fix it or remove it (default {_lookup(DEFAULTS, path)})"
    name = "povfarm." + ".".join(path)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise OptionsError(f"invoke.yaml {name}: {value!r} is not true or false; {fix}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or number < 0:
        what = "a whole number" if kind is int else "a number"
        raise OptionsError(f"invoke.yaml {name}: {value!r} is not {what} >= 0; {fix}")
    return number


def whole_number(value: Any, name: str) -> int | None:
    """An integer option given on the command line (Invoke hands over text)."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise OptionsError(f"{name} {value!r}: expected a whole number") from None


def check_settings(c: Context) -> None:
    """Refuse a povfarm: setting in invoke.yaml that povfarm does not know: a typo would do nothing."""
    _check_known(c.config.get("povfarm"), DEFAULTS, "povfarm")


def _check_known(given: Any, known: dict[str, Any], name: str) -> None:
    if not hasattr(given, "items"):
        return
    for key, value in given.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise OptionsError(f"invoke.yaml {name}.{key}: unknown setting; {hint}")
        if isinstance(known[key], dict):
            _check_known(value, known[key], f"{name}.{key}")


def positive_number(value: Any, name: str) -> float:
    """A number above 0 given on the command line or in invoke.yaml."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if isinstance(value, bool) or not number > 0:
        raise OptionsError(f"{name} {value!r}: expected a number above 0")
    return number


def clean_errors(body: Callable) -> Callable:
    """Turn a PovfarmError into a one-line message and a non-zero exit."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if args and isinstance(args[0], Context):
                check_settings(args[0])
            return body(*args, **kwargs)
        except PovfarmError as exc:
            code = INTERRUPTED_EXIT if type(exc).__name__ == "JobInterrupted" else 1
            raise Exit(f"povfarm: {exc}", code=code) from None

    return wrapper
