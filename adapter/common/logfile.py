"""The adapters' own log: structlog JSON to a file, or nowhere; never to stderr (oned closes it).

The runtime's logging set-up does the work (redaction of secret-named keys included);
this only picks the stream. The protocol itself is what oned logs for the VMs, so the
file is for operators chasing an adapter problem.
"""

from __future__ import annotations

import os
from typing import TextIO

from onexen.runtime.logging import configure_logging


def configure_file_logging(path: str, level: str) -> TextIO:
    """Log to `path` (appending), or discard everything when it is "" or cannot be opened."""
    stream: TextIO
    if path:
        try:
            stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (process-long)
        except OSError:
            stream = open(os.devnull, "w")  # noqa: SIM115
    else:
        stream = open(os.devnull, "w")  # noqa: SIM115
    configure_logging(level, "json", stream=stream)
    return stream
