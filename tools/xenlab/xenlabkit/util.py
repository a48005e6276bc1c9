"""Logging and subprocess helpers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import LabError

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[xenlab {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str | Path],
    *,
    logfile: Path | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command; its output goes to `logfile` (appended) or is returned. Raises LabError on failure."""
    args = [str(a) for a in argv]
    if logfile is not None:
        with logfile.open("a") as out:
            out.write(f"\n$ {' '.join(args)}\n")
            out.flush()
            proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env)
        if proc.returncode != 0:
            raise LabError(
                f"{args[0]} failed (exit {proc.returncode}); last lines of {logfile}:\n" + tail(logfile, 25)
            )
        return ""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise LabError(f"{' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file ('' when it does not exist)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])
