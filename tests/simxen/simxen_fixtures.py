"""Reference captures and shared constants for tests/simxen (a uniquely named helper module)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "xen-4.17"

# Quick guests: the real host took 1-3 s for each of these steps.
FAST: dict[str, Any] = {
    "boot_seconds": 0.2,
    "shutdown_seconds": 0.3,
    "reboot_seconds": 0.3,
    "cleanup_seconds": 0.3,
}


@dataclass(frozen=True)
class Block:
    command: str
    output: str
    rc: int
    host: str | None = None


def transcript(name: str) -> list[Block]:
    """The ``$ command`` / output / ``[exit=N ...]`` blocks of a reference capture."""
    blocks: list[Block] = []
    text = (FIXTURES / name).read_text()
    pattern = re.compile(r"^(?:\[(\w+)\] )?\$ (.*?)\n(.*?)^\[exit=(\d+) wall=[\d.]+s\]$", re.M | re.S)
    for m in pattern.finditer(text):
        blocks.append(Block(command=m.group(2), output=m.group(3), rc=int(m.group(4)), host=m.group(1)))
    return blocks


def block(name: str, command: str, index: int = 0) -> Block:
    found = [b for b in transcript(name) if b.command == command]
    return found[index]


def reference_domu_cfg() -> str:
    """The PV guest of the reference host (xl_create.txt)."""
    return "".join((FIXTURES / "xl_create.txt").read_text().splitlines(keepends=True)[:11])
