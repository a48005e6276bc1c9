"""Starting an adapter as oned does: options from one argv element, errors told over the protocol.

A driver started with bad ARGUMENTS has nobody to tell on stderr (oned closed it): it
answers oned's INIT with `INIT FAILURE - <why>`, which oned logs as the reason the
driver did not load, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, NoReturn, Protocol, TypeVar

from adapter.common.lineio import LineWriter, OversizedLine, Stdio, claim_stdio, one_line, read_lines
from adapter.common.logfile import configure_file_logging
from adapter.common.options import split_arguments


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


class LoggedOptions(Protocol):
    @property
    def log_file(self) -> str: ...

    @property
    def log_level(self) -> str: ...


OptionsT = TypeVar("OptionsT", bound=LoggedOptions)


def launch(
    argv: Sequence[str] | None,
    parse_options: Callable[[Sequence[str], Mapping[str, str]], OptionsT],
    run: Callable[[OptionsT, Stdio], Coroutine[Any, Any, None]],
) -> None:
    """The `main()` of both drivers: split oned's one argv element, refuse INIT on bad
    options, take over stdin/stdout, log to the file only, then run the driver."""
    args = split_arguments(sys.argv[1:] if argv is None else argv)
    try:
        options = parse_options(args, os.environ)
    except OptionsError as exc:
        asyncio.run(refuse_init(claim_stdio(), str(exc)))
        sys.exit(1)
    stdio = claim_stdio()
    configure_file_logging(options.log_file, options.log_level)
    asyncio.run(run(options, stdio))
