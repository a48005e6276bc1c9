"""A scripted `Runner` for the actions' unit tests: no SSH, every command recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from services.executor.commands import Command
from services.executor.inventory import HostSettings
from services.executor.ssh import Result

Reply = tuple[int, str, str]
Handler = Callable[[str, list[str]], Reply | None]


def xl_args(argv: list[str]) -> list[str]:
    """The words after the xl binary (`["list", "one-1"]`)."""
    return argv[1:] if argv and argv[0].endswith("xl") else argv


@dataclass
class FakeRunner:
    """Answers commands with `handler(host, xl words)`; files live in `files[(host, path)]`."""

    handler: Handler = lambda host, words: (0, "", "")
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    delay: float = 0.0
    calls: list[tuple[str, list[str]]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    active: int = 0
    most_active: int = 0

    async def run(self, host: HostSettings, command: Command) -> Result:
        words = xl_args(list(command.argv))
        self.calls.append((host.name, words))
        self.timeouts.append(command.timeout)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            reply = self.handler(host.name, words) or (0, "", "")
        finally:
            self.active -= 1
        rc, out, err = reply
        return Result(host.name, command.line(), command.name, rc, out, err, self.delay)

    async def upload(self, host: HostSettings, path: str, data: bytes, *, timeout: float) -> None:
        self.calls.append((host.name, ["<upload>", path]))
        self.files[(host.name, path)] = data

    async def read_file(self, host: HostSettings, path: str, *, timeout: float, limit: int) -> bytes | None:
        self.calls.append((host.name, ["<read>", path]))
        data = self.files.get((host.name, path))
        return None if data is None else data[:limit]

    async def rename(self, host: HostSettings, source: str, target: str, *, timeout: float) -> bool:
        self.calls.append((host.name, ["<rename>", source, target]))
        data = self.files.pop((host.name, source), None)
        if data is None:
            return False
        self.files[(host.name, target)] = data
        return True

    def verbs(self) -> list[str]:
        return [words[0] for _, words in self.calls]


NO_SUCH = "{} is an invalid domain identifier (rc=-6)\n"


def list_row(name: str, flags: str = "-b----", domid: int = 5) -> str:
    return (
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
        f"{name:<40} {domid:5d}   128     1     {flags}       1.0\n"
    )
