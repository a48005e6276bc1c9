"""What the action pipelines need from the world, as protocols (gRPC and local processes in
production, in-process fakes in the unit tests).

Every call raises an `OnexenError` when it fails; `tag` names the call in request ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from onexen.v1 import executor_pb2, translator_pb2


class Executor(Protocol):
    async def deploy(
        self, request: executor_pb2.DeployRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.DeployResponse: ...

    async def shutdown(
        self, request: executor_pb2.ShutdownRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.ShutdownResponse: ...

    async def cancel(
        self, request: executor_pb2.CancelRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.CancelResponse: ...

    async def save(
        self, request: executor_pb2.SaveRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.SaveResponse: ...

    async def restore(
        self, request: executor_pb2.RestoreRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.RestoreResponse: ...

    async def migrate(
        self, request: executor_pb2.MigrateRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.MigrateResponse: ...

    async def reboot(
        self, request: executor_pb2.RebootRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.RebootResponse: ...

    async def reset(
        self, request: executor_pb2.ResetRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.ResetResponse: ...

    async def attach_disk(
        self, request: executor_pb2.AttachDiskRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.AttachDiskResponse: ...

    async def detach_disk(
        self, request: executor_pb2.DetachDiskRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.DetachDiskResponse: ...

    async def attach_nic(
        self, request: executor_pb2.AttachNicRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.AttachNicResponse: ...

    async def detach_nic(
        self, request: executor_pb2.DetachNicRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.DetachNicResponse: ...

    async def run_network_step(
        self, request: executor_pb2.RunNetworkStepRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.RunNetworkStepResponse: ...


class Translator(Protocol):
    async def translate(
        self, request: translator_pb2.TranslateRequest, *, timeout: float | None, tag: str
    ) -> translator_pb2.TranslateResponse: ...


@dataclass(frozen=True)
class ScriptResult:
    """A local script's run: argv as run, exit code (negative: killed by that signal), output."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class TransferManager(Protocol):
    async def run(
        self, action: str, tm_mad: str, args: list[str], *, stdin: bytes | None, timeout: float | None
    ) -> ScriptResult:
        """Run `<remotes>/tm/<tm_mad>/<action lower-cased> <args>`; raises `OnexenError`
        only when it cannot be started (missing, not executable)."""
        ...


class Logger(Protocol):
    """Where a running action's LOG lines go (bound to its VM id)."""

    def __call__(self, severity: str, text: str) -> None: ...
