"""Command-line handling shared by both adapters.

oned (and onemonitord) exec a driver with its whole ARGUMENTS string as ONE argv
element (spec §1.1); the stock wrapper re-split it with an unquoted `$*`. The adapters
split it themselves, so they run unwrapped; a hand-typed command line with several
elements is taken as it is.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error")


def split_arguments(argv: Sequence[str]) -> list[str]:
    """The options in `argv` (without the program name), the oned way or the shell way."""
    if len(argv) != 1:
        return list(argv)
    try:
        return shlex.split(argv[0])
    except ValueError:
        # An unbalanced quote: split as oned's stock wrapper would have.
        return argv[0].split()


def add_env_option(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    environ: Mapping[str, str],
    *,
    default: Any = None,
    type: Callable[[str], Any] = str,
    help: str,
    **kwargs: Any,
) -> None:
    """An option whose default comes from the variable `env` (flag > variable > default)."""
    value = environ.get(env)
    shown = "none" if default is None else default
    parser.add_argument(
        flag,
        default=value if value not in (None, "") else default,
        type=type,
        help=f"{help} (env {env}; default {shown})",
        **kwargs,
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def seconds(text: str) -> float:
    """A timeout; 0 means none."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def log_level(text: str) -> str:
    value = text.lower()
    if value not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return value


def one_location(environ: Mapping[str, str]) -> Path | None:
    """$ONE_LOCATION of a self-contained OpenNebula install, None for a system-wide one."""
    location = environ.get("ONE_LOCATION", "").strip()
    return Path(location) if location else None


def default_log_file(name: str, environ: Mapping[str, str]) -> str:
    """Where OpenNebula keeps driver logs, when this process may write there; else "" (none)."""
    location = one_location(environ)
    directory = location / "var" if location is not None else Path("/var/log/one")
    path = directory / name
    if path.exists():
        return str(path) if os.access(path, os.W_OK) else ""
    return str(path) if directory.is_dir() and os.access(directory, os.W_OK) else ""


def add_logging_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], prefix: str, log_file_name: str
) -> None:
    """--log-file and --log-level (variables PREFIX_LOG_FILE, PREFIX_LOG_LEVEL), as both drivers take them."""
    add_env_option(
        parser,
        "--log-file",
        f"{prefix}_LOG_FILE",
        environ,
        default=default_log_file(log_file_name, environ),
        help="JSON log file; empty for none",
    )
    add_env_option(
        parser,
        "--log-level",
        f"{prefix}_LOG_LEVEL",
        environ,
        default="info",
        type=log_level,
        help="least severe level logged",
    )
