"""The IM driver's view of MonitorService: a protocol, and its gRPC implementation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import grpc

from adapter.common.clients import Peer, describe, request_id, unary
from onexen.runtime.errors import Unavailable
from onexen.runtime.interceptor import REQUEST_ID_KEY
from onexen.v1 import monitor_pb2, monitor_pb2_grpc


class Monitor(Protocol):
    async def add_host(
        self, request: monitor_pb2.AddHostRequest, *, timeout: float | None
    ) -> monitor_pb2.AddHostResponse: ...

    async def remove_host(
        self, request: monitor_pb2.RemoveHostRequest, *, timeout: float | None
    ) -> monitor_pb2.RemoveHostResponse: ...

    def watch(self) -> AsyncIterator[monitor_pb2.MonitorEvent | None]:
        """Every host's events; yields None once the stream is open, then the events.
        Raises an `OnexenError` when the stream cannot be opened or breaks."""
        ...


# How long a Watch waits for the monitor's channel before it reports the service unreachable.
CONNECT_SECONDS = 5.0


class GrpcMonitor:
    def __init__(self, channel: grpc.aio.Channel, peer: Peer) -> None:
        self._channel = channel
        self._stub = monitor_pb2_grpc.MonitorServiceStub(channel)
        self._peer = peer

    async def add_host(
        self, request: monitor_pb2.AddHostRequest, *, timeout: float | None
    ) -> monitor_pb2.AddHostResponse:
        tag = f"host{request.host_id}-add"
        return await unary(self._peer, self._stub.AddHost, request, timeout=timeout, tag=tag)

    async def remove_host(
        self, request: monitor_pb2.RemoveHostRequest, *, timeout: float | None
    ) -> monitor_pb2.RemoveHostResponse:
        tag = f"host{request.host_id}-remove"
        return await unary(self._peer, self._stub.RemoveHost, request, timeout=timeout, tag=tag)

    async def watch(self) -> AsyncIterator[monitor_pb2.MonitorEvent | None]:
        # A server stream sends no headers before its first event (a monitor watching no host
        # sends none for long): the channel's readiness is what says the service is there.
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                await self._channel.channel_ready()
        except TimeoutError:
            raise Unavailable(
                f"the onexen {self._peer.service} service at {self._peer.target} cannot be reached"
                f" (no connection within {CONNECT_SECONDS:g} s)",
                reason="SERVICE_UNREACHABLE",
                metadata={"service": self._peer.service, "target": self._peer.target},
            ) from None
        call = self._stub.Watch(
            monitor_pb2.WatchRequest(), metadata=((REQUEST_ID_KEY, request_id("im-watch")),)
        )
        try:
            yield None
            async for response in call:
                yield response.event
        except grpc.RpcError as exc:
            raise describe(exc, self._peer, None) from None
        finally:
            call.cancel()
