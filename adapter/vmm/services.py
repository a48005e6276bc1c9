"""The pipelines' ports over gRPC: ExecutorService and TranslatorService clients."""

from __future__ import annotations

import grpc

from adapter.common.clients import Peer, unary
from onexen.v1 import executor_pb2, executor_pb2_grpc, translator_pb2, translator_pb2_grpc


class GrpcExecutor:
    def __init__(self, channel: grpc.aio.Channel, peer: Peer) -> None:
        self._stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        self._peer = peer

    async def deploy(
        self, request: executor_pb2.DeployRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.DeployResponse:
        return await unary(self._peer, self._stub.Deploy, request, timeout=timeout, tag=tag)

    async def shutdown(
        self, request: executor_pb2.ShutdownRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.ShutdownResponse:
        return await unary(self._peer, self._stub.Shutdown, request, timeout=timeout, tag=tag)

    async def cancel(
        self, request: executor_pb2.CancelRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.CancelResponse:
        return await unary(self._peer, self._stub.Cancel, request, timeout=timeout, tag=tag)

    async def save(
        self, request: executor_pb2.SaveRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.SaveResponse:
        return await unary(self._peer, self._stub.Save, request, timeout=timeout, tag=tag)

    async def restore(
        self, request: executor_pb2.RestoreRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.RestoreResponse:
        return await unary(self._peer, self._stub.Restore, request, timeout=timeout, tag=tag)

    async def migrate(
        self, request: executor_pb2.MigrateRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.MigrateResponse:
        return await unary(self._peer, self._stub.Migrate, request, timeout=timeout, tag=tag)

    async def reboot(
        self, request: executor_pb2.RebootRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.RebootResponse:
        return await unary(self._peer, self._stub.Reboot, request, timeout=timeout, tag=tag)

    async def reset(
        self, request: executor_pb2.ResetRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.ResetResponse:
        return await unary(self._peer, self._stub.Reset, request, timeout=timeout, tag=tag)

    async def attach_disk(
        self, request: executor_pb2.AttachDiskRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.AttachDiskResponse:
        return await unary(self._peer, self._stub.AttachDisk, request, timeout=timeout, tag=tag)

    async def detach_disk(
        self, request: executor_pb2.DetachDiskRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.DetachDiskResponse:
        return await unary(self._peer, self._stub.DetachDisk, request, timeout=timeout, tag=tag)

    async def attach_nic(
        self, request: executor_pb2.AttachNicRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.AttachNicResponse:
        return await unary(self._peer, self._stub.AttachNic, request, timeout=timeout, tag=tag)

    async def detach_nic(
        self, request: executor_pb2.DetachNicRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.DetachNicResponse:
        return await unary(self._peer, self._stub.DetachNic, request, timeout=timeout, tag=tag)

    async def run_network_step(
        self, request: executor_pb2.RunNetworkStepRequest, *, timeout: float | None, tag: str
    ) -> executor_pb2.RunNetworkStepResponse:
        return await unary(self._peer, self._stub.RunNetworkStep, request, timeout=timeout, tag=tag)


class GrpcTranslator:
    def __init__(self, channel: grpc.aio.Channel, peer: Peer) -> None:
        self._stub = translator_pb2_grpc.TranslatorServiceStub(channel)
        self._peer = peer

    async def translate(
        self, request: translator_pb2.TranslateRequest, *, timeout: float | None, tag: str
    ) -> translator_pb2.TranslateResponse:
        return await unary(self._peer, self._stub.Translate, request, timeout=timeout, tag=tag)
