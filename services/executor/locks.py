"""Per-domain locks: actions on one domain never overlap, actions on different domains run freely.

xl itself does not serialise a shutdown against a save of the same domain, and OpenNebula
may send a CANCEL while a SHUTDOWN still waits; one asyncio lock per (host, domain) keeps
them in order. Locks live on the event loop (actions await commands, they do not hold
threads), and an entry disappears when nobody holds or waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DomainLocks:
    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str], int] = {}

    @asynccontextmanager
    async def hold(self, host: str, domain: str) -> AsyncIterator[None]:
        key = (host, domain)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]

    def held(self) -> int:
        """Entries in use (tests check that none leak)."""
        return len(self._locks)
