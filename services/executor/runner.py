"""The `Runner` the actions use in production: commands over the pooled SSH sessions.

Paramiko blocks, so every call goes to the executor's own thread pool (`run_blocking` copies
the request's log context into the thread); the event loop only awaits.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from onexen.runtime.interceptor import run_blocking
from services.executor import commands
from services.executor.commands import Command
from services.executor.errors import CommandTimedOut
from services.executor.inventory import HostSettings
from services.executor.ssh import Result, SshPool

T = TypeVar("T")


class SshRunner:
    def __init__(self, pool: Executor, ssh: SshPool | None = None) -> None:
        self.pool = pool
        self.ssh = ssh or SshPool()

    async def run(self, host: HostSettings, command: Command) -> Result:
        connection = self.ssh.connection(host)
        call = functools.partial(
            connection.run,
            command.line(),
            name=command.name,
            wait=commands.wait_limit(command),
            stdin=command.stdin,
        )
        result = await self._to_the_end(call)
        if result.exit_code in commands.TIMEOUT_EXIT_CODES:
            raise CommandTimedOut(
                host.name, result.command, command.timeout, killed=True, stderr=result.stderr
            )
        return result

    async def upload(self, host: HostSettings, path: str, data: bytes, *, timeout: float) -> None:
        connection = self.ssh.connection(host)
        await self._to_the_end(functools.partial(connection.upload, path, data, wait=timeout))

    async def read_file(self, host: HostSettings, path: str, *, timeout: float, limit: int) -> bytes | None:
        connection = self.ssh.connection(host)
        return await self._to_the_end(
            functools.partial(connection.read_file, path, wait=timeout, limit=limit)
        )

    async def rename(self, host: HostSettings, source: str, target: str, *, timeout: float) -> bool:
        connection = self.ssh.connection(host)
        return await run_blocking(
            self.pool, functools.partial(connection.rename, source, target, wait=timeout)
        )

    async def _to_the_end(self, call: Callable[[], T]) -> T:
        """`call()` on the pool; when the RPC is cancelled meanwhile, still wait for it to end.

        The host goes on running the command until its own timeout kills it; returning at
        once would release the domain's lock while it runs, and let the next action on the
        same domain overlap with it.
        """
        # run_blocking's work, as a bare future: no task to wrap it in (one per command).
        context = contextvars.copy_context()
        future = asyncio.get_running_loop().run_in_executor(self.pool, context.run, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait({future})
            if not future.cancelled():
                future.exception()  # retrieved: the caller is gone, the log has the RPC's end
            raise

    def close(self) -> None:
        self.ssh.close()
