"""How many actions run at once, and which must wait (spec §1.7).

Up to `concurrency` jobs run together (`-t`). One VM never has two running (its actions
are ordered), and unless `parallel_per_host` (`-p`) one host never has two: later jobs
for a busy host wait in the queue while jobs for other hosts overtake them, as the
stock driver's "first runnable, single host" rule does. `cancel` stops a running job
or drops a queued one (DRIVER_CANCEL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Job:
    key: int  # the VM (or host) id: one running job per key
    host: str  # "" = no host to serialise on
    run: Callable[[], Coroutine[Any, Any, None]]
    on_cancel: Callable[[], None] = lambda: None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Scheduler:
    def __init__(self, concurrency: int, *, parallel_per_host: bool = False) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.parallel_per_host = parallel_per_host
        self._queue: list[Job] = []
        self._running: dict[int, Job] = {}
        self._busy_hosts: dict[str, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._idle.clear()
        self._pump()

    def cancel(self, key: int) -> bool:
        """Stop the job of `key` (running, else the first queued); False when there is none."""
        job = self._running.get(key)
        if job is not None and job.task is not None:
            job.task.cancel()
            return True
        for queued in self._queue:
            if queued.key == key:
                self._queue.remove(queued)
                queued.on_cancel()
                self._settle()
                return True
        return False

    def drop_queued(self) -> list[Job]:
        """Forget every job not started yet (the driver is finishing)."""
        dropped, self._queue = self._queue, []
        self._settle()
        return dropped

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def _runnable(self, job: Job, seen_keys: set[int]) -> bool:
        if job.key in self._running or job.key in seen_keys:
            return False
        return self.parallel_per_host or not job.host or job.host not in self._busy_hosts

    def _pump(self) -> None:
        seen_keys: set[int] = set()
        index = 0
        while index < len(self._queue) and len(self._running) < self.concurrency:
            job = self._queue[index]
            if not self._runnable(job, seen_keys):
                # A later job of the same VM must not overtake this one.
                seen_keys.add(job.key)
                index += 1
                continue
            del self._queue[index]
            self._start(job)
        self._settle()

    def _start(self, job: Job) -> None:
        self._running[job.key] = job
        if job.host:
            self._busy_hosts[job.host] = self._busy_hosts.get(job.host, 0) + 1
        job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"job-{job.key}")

    async def _run(self, job: Job) -> None:
        try:
            await job.run()
        except asyncio.CancelledError:
            job.on_cancel()
        finally:
            self._running.pop(job.key, None)
            if job.host:
                left = self._busy_hosts.get(job.host, 1) - 1
                if left:
                    self._busy_hosts[job.host] = left
                else:
                    self._busy_hosts.pop(job.host, None)
            self._pump()

    def _settle(self) -> None:
        if not self._queue and not self._running:
            self._idle.set()
