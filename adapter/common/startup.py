"""Starting an adapter as oned does: options from one argv element, errors told over the protocol.

A driver started with bad ARGUMENTS has nobody to tell on stderr (oned closed it): it
answers oned's INIT with `INIT FAILURE - <why>`, which oned logs as the reason the
driver did not load, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import NoReturn

from adapter.common.lineio import LineWriter, OversizedLine, Stdio, one_line, read_lines


class OptionsError(Exception):
    """Bad ARGUMENTS or ONEXEN_* settings; the message says which and why."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing to a stderr oned has closed."""

    def error(self, message: str) -> NoReturn:
        raise OptionsError(f"{self.prog}: {message}")


async def refuse_init(stdio: Stdio, why: str, *, wait_seconds: float = 30.0) -> None:
    """Answer the INIT that oned sends with `INIT FAILURE - <why>` (or give up waiting)."""
    out = LineWriter(stdio.output_fd)

    async def answer() -> None:
        async for raw in read_lines(stdio.input_fd):
            if isinstance(raw, OversizedLine):
                continue
            if raw.decode(errors="replace").split()[:1] == ["INIT"]:
                out.write_line(f"INIT FAILURE - {one_line(why)}")
                return

    try:
        async with asyncio.timeout(wait_seconds):
            await answer()
    except TimeoutError:
        return
