"""Reading what OpenNebula's scripts print on stderr (spec §1.6). Pure.

Scripts log with `INFO:`/`ERROR:`/`DEBUG:` prefixes and put the error a user should see
between `ERROR MESSAGE --8<------` and `ERROR MESSAGE ------>8--`. The driver forwards
every stderr line as a LOG line and uses the first marked block as the failure info.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from adapter.vmm.protocol import Severity

_BLOCK = re.compile(r"ERROR MESSAGE --8<------(.*?)ERROR MESSAGE ------>8--", re.DOTALL)
_MARKER = re.compile(r"^ERROR MESSAGE (--8<------|------>8--)$")
_PREFIX = re.compile(r"^(ERROR|DEBUG|INFO):(.*)$")
_SEVERITY: dict[str, Severity] = {"ERROR": "E", "DEBUG": "D", "INFO": "I"}


def error_block(stderr: str) -> str:
    """The first marked error message, its lines joined by spaces; "" when there is none."""
    match = _BLOCK.search(stderr)
    if match is None:
        return ""
    return " ".join(line.strip() for line in match.group(1).splitlines() if line.strip())


def log_lines(stderr: str) -> Iterator[tuple[Severity, str]]:
    """Each non-blank stderr line with the severity the stock driver gave it."""
    inside = False
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        marker = _MARKER.match(line)
        if marker:
            inside = marker.group(1) == "--8<------"
            continue
        if inside:
            yield "E", line
            continue
        prefixed = _PREFIX.match(line)
        if prefixed:
            yield _SEVERITY[prefixed.group(1)], prefixed.group(2).strip()
        else:
            yield "I", line
