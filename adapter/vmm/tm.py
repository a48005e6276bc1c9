"""Transfer-manager steps, run on the front-end as the stock driver runs them (spec §1.8).

A TM command line `<ACTION> <TM_MAD> <arg>...` runs `<remotes>/tm/<TM_MAD>/<action lower-cased>
<arg>...`, an argv list, no shell. The script gets its own process group so a timeout
(-w) or a DRIVER_CANCEL kills it and whatever it started (scp, ssh).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from adapter.vmm.ports import ScriptResult
from onexen.runtime.errors import FailedPrecondition, InvalidArgument

_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_KILL_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class TmCommand:
    action: str
    tm_mad: str
    args: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join((self.action, self.tm_mad, *self.args))


def parse_tm_commands(text: str) -> list[TmCommand]:
    """Every TM command of a TM_COMMAND field (CLEANUP sends one per line)."""
    commands = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise InvalidArgument.for_field("TM_COMMAND", f"TM command {line.strip()!r} has no TM driver")
        action, tm_mad = tokens[0], tokens[1]
        for what, token in (("action", action), ("TM driver", tm_mad)):
            if not _TOKEN.fullmatch(token) or token.strip(".") == "":
                raise InvalidArgument.for_field("TM_COMMAND", f"TM command has a bad {what} {token!r}")
        commands.append(TmCommand(action, tm_mad, tuple(tokens[2:])))
    return commands


class LocalTransferManager:
    """Runs TM scripts from OpenNebula's remotes directory on this machine."""

    def __init__(self, remotes: Path) -> None:
        self.remotes = remotes

    def script(self, action: str, tm_mad: str) -> Path:
        return self.remotes / "tm" / tm_mad / action.lower()

    async def run(
        self, action: str, tm_mad: str, args: list[str], *, stdin: bytes | None, timeout: float | None
    ) -> ScriptResult:
        path = self.script(action, tm_mad)
        if not os.access(path, os.X_OK) or not path.is_file():
            raise FailedPrecondition(
                f"no executable TM script {path}: is {tm_mad} installed in OpenNebula's remotes"
                f" ({self.remotes}, option --remotes)?",
                reason="TM_SCRIPT_MISSING",
                metadata={"command": str(path)},
            )
        argv = (str(path), *args)
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await process.communicate(stdin)
        except TimeoutError:
            await _kill(process)
            stderr = f"ERROR: killed after the action timeout of {timeout:g} s (-w)"
            return ScriptResult(argv, -signal.SIGKILL, "", stderr, time.monotonic() - started)
        except BaseException:
            # Cancelled (DRIVER_CANCEL): the script and its children go too.
            await asyncio.shield(_kill(process))
            raise
        code = process.returncode if process.returncode is not None else -1
        return ScriptResult(
            argv, code, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - started
        )


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), _KILL_GRACE_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
