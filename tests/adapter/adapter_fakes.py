"""In-process stand-ins for the adapters' ports: executor, translator, TM scripts, monitor.

Each fake records its calls in order (`calls`: (name, request-or-args)) so a test reads a
pipeline back as the list of steps it ran. Failures and hangs are set per method.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from adapter.vmm.actions import Ports, Settings
from adapter.vmm.ports import ScriptResult
from onexen.runtime.errors import OnexenError
from onexen.v1 import executor_pb2, monitor_pb2, translator_pb2

CONFIG = 'name = "one-42"\ntype = "pv"\nmemory = 64\ncpu_weight = 26\n'


def output(command: str, code: int = 0, stderr: str = "") -> executor_pb2.CommandOutput:
    return executor_pb2.CommandOutput(command=command, exit_code=code, stderr=stderr, duration_seconds=0.01)


@dataclass
class Calls:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    failures: dict[str, OnexenError] = field(default_factory=dict)
    hangs: set[str] = field(default_factory=set)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, name: str, request: Any) -> None:
        self.calls.append((name, request))
        if name in self.hangs:
            self.entered.set()
            await asyncio.Event().wait()
        error = self.failures.get(name)
        if error is not None:
            raise error

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class FakeExecutor(Calls):
    async def deploy(self, request: executor_pb2.DeployRequest, *, timeout: float | None, tag: str) -> Any:
        await self.record("deploy", request)
        return executor_pb2.DeployResponse(domain="one-42", outputs=[output("xl create")])

    async def shutdown(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("shutdown", request)
        return executor_pb2.ShutdownResponse(outputs=[output("xl shutdown")])

    async def cancel(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("cancel", request)
        return executor_pb2.CancelResponse(was_running=True, outputs=[output("xl destroy")])

    async def save(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("save", request)
        return executor_pb2.SaveResponse(outputs=[output("xl save")])

    async def restore(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("restore", request)
        return executor_pb2.RestoreResponse(domain="one-42", outputs=[output("xl restore")])

    async def migrate(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("migrate", request)
        return executor_pb2.MigrateResponse(outputs=[output("xl migrate")])

    async def reboot(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("reboot", request)
        return executor_pb2.RebootResponse(outputs=[output("xl reboot")])

    async def reset(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("reset", request)
        return executor_pb2.ResetResponse(outputs=[output("xl reboot -F")])

    async def attach_disk(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("attach_disk", request)
        return executor_pb2.AttachDiskResponse(outputs=[output("xl block-attach")])

    async def detach_disk(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("detach_disk", request)
        return executor_pb2.DetachDiskResponse(outputs=[output("xl block-detach")])

    async def attach_nic(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("attach_nic", request)
        return executor_pb2.AttachNicResponse(outputs=[output("xl network-attach")])

    async def detach_nic(self, request: Any, *, timeout: float | None, tag: str) -> Any:
        await self.record("detach_nic", request)
        return executor_pb2.DetachNicResponse(outputs=[output("xl network-detach")])

    async def run_network_step(
        self, request: executor_pb2.RunNetworkStepRequest, *, timeout: float | None, tag: str
    ) -> Any:
        step = executor_pb2.NetworkStep.Name(request.step).removeprefix("NETWORK_STEP_").lower()
        await self.record(f"vnm:{request.driver}/{step}@{request.host}", request)
        return executor_pb2.RunNetworkStepResponse(
            output=output(f"vnm/{request.driver}/{step}", stderr=f'INFO: {step}: Executed "brctl".\n')
        )


class FakeTranslator(Calls):
    def __init__(self, config: str = CONFIG, weight: int = 26, warnings: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.config = config
        self.weight = weight
        self.warnings = warnings

    async def translate(
        self, request: translator_pb2.TranslateRequest, *, timeout: float | None, tag: str
    ) -> Any:
        await self.record("translate", request)
        return translator_pb2.TranslateResponse(
            config=self.config, domain_name="one-42", cpu_weight=self.weight, warnings=self.warnings
        )


class FakeTm(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.exit_codes: dict[str, int] = {}

    async def run(
        self, action: str, tm_mad: str, args: list[str], *, stdin: bytes | None, timeout: float | None
    ) -> ScriptResult:
        name = f"tm:{action.lower()}"
        await self.record(name, (tm_mad, args, stdin))
        code = self.exit_codes.get(action.lower(), 0)
        stderr = "ERROR MESSAGE --8<------\nno space left\nERROR MESSAGE ------>8--\n" if code else ""
        return ScriptResult((f"/remotes/tm/{tm_mad}/{action.lower()}", *args), code, "", stderr, 0.01)


@dataclass
class World:
    executor: FakeExecutor
    translator: FakeTranslator
    tm: FakeTm
    lines: list[tuple[str, str]]

    @property
    def ports(self) -> Ports:
        return Ports(self.executor, self.translator, self.tm)

    def log(self, severity: str, text: str) -> None:
        self.lines.append((severity, text))

    def steps(self) -> list[str]:
        """Every call of every fake, in the order they happened (the fakes share one list)."""
        return self.executor.names()

    def texts(self, severity: str | None = None) -> list[str]:
        return [text for sev, text in self.lines if severity is None or sev == severity]


def world() -> World:
    shared: list[tuple[str, Any]] = []
    executor, translator, tm = FakeExecutor(calls=shared), FakeTranslator(), FakeTm()
    translator.calls = shared
    tm.calls = shared
    return World(executor, translator, tm, [])


def settings(**changes: Any) -> Settings:
    return Settings(retry_pause=0.0, **changes)


# ---------------------------------------------------------------------------- monitor


class FakeMonitor:
    """MonitorService in-process: AddHost answers `first` events; the Watch stream is fed by
    `publish`, and `down()`/`up()` make every call fail or work."""

    def __init__(self) -> None:
        self.first: dict[int, list[monitor_pb2.MonitorEvent]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.available = True
        self.error: OnexenError | None = None
        self._streams: list[asyncio.Queue[monitor_pb2.MonitorEvent | BaseException]] = []

    def _check(self) -> None:
        if not self.available:
            from onexen.runtime.errors import Unavailable

            raise Unavailable(
                "the onexen monitor service at 127.0.0.1:1 cannot be reached (Connection refused)",
                reason="SERVICE_UNREACHABLE",
            )

    async def add_host(self, request: monitor_pb2.AddHostRequest, *, timeout: float | None) -> Any:
        self.calls.append(("add_host", request))
        self._check()
        if self.error is not None:
            raise self.error
        events = self.first.get(request.host_id, [])
        for event in events:
            self.publish(event)  # as the real monitor: published and returned
        return monitor_pb2.AddHostResponse(events=events)

    async def remove_host(self, request: monitor_pb2.RemoveHostRequest, *, timeout: float | None) -> Any:
        self.calls.append(("remove_host", request))
        self._check()
        return monitor_pb2.RemoveHostResponse()

    async def watch(self) -> AsyncIterator[monitor_pb2.MonitorEvent | None]:
        self.calls.append(("watch", None))
        self._check()
        queue: asyncio.Queue[monitor_pb2.MonitorEvent | BaseException] = asyncio.Queue()
        self._streams.append(queue)
        try:
            yield None
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._streams.remove(queue)

    def publish(self, event: monitor_pb2.MonitorEvent) -> None:
        for queue in self._streams:
            queue.put_nowait(event)

    def down(self) -> None:
        from onexen.runtime.errors import Unavailable

        self.available = False
        for queue in self._streams:
            queue.put_nowait(
                Unavailable("the onexen monitor service went away", reason="SERVICE_UNREACHABLE")
            )

    def up(self) -> None:
        self.available = True

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]
