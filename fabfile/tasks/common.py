"""What every task shares: option precedence and clean errors."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from invoke import Context, Exit
from rich.console import Console

from fabfile.errors import OptionsError, PovfarmError

INTERRUPTED_EXIT = 130

# Piped or captured output gets room for a whole table row; a terminal keeps its width.
console = Console(width=None if sys.stdout.isatty() else 160)
error_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DEFAULTS: dict[str, Any] = {
    "cluster": "cluster.yaml",
    "renders": "renders",
    "render": {
        "threads": 1,
        "overlap": 1,
        "guided_factor": 1.5,
        "max_failures": 2,
        "hang_grace": 20.0,
        "hang_factor": 4.0,
        "latency_factor": 1.0,
        "probes": 0,
        "cuts": True,
        "allow_outside": False,
        "keep_remote": False,
    },
}


def option(c: Context, given: Any, *path: str) -> Any:
    """The command line's value if given, else invoke.yaml's, else the default."""
    if given is not None:
        return given
    value: Any = c.config.get("povfarm", {})
    for key in path:
        value = value.get(key) if hasattr(value, "get") else None
    return value


def whole_number(value: Any, name: str) -> int | None:
    """An integer option given on the command line (Invoke hands over text)."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise OptionsError(f"{name} {value!r}: expected a whole number") from None


def clean_errors(body: Callable) -> Callable:
    """Turn a PovfarmError into a one-line message and a non-zero exit."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except PovfarmError as exc:
            code = INTERRUPTED_EXIT if type(exc).__name__ == "JobInterrupted" else 1
            raise Exit(f"povfarm: {exc}", code=code) from None

    return wrapper
