"""onexen.v1.MonitorService: watches Xen hosts through the executor for monitord.

Only the input checks exist yet; probing and reporting are a later issue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeAlias

import grpc

from onexen.runtime.errors import InvalidArgument, Unimplemented
from onexen.v1 import monitor_pb2, monitor_pb2_grpc

SERVICE_NAME: str = monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext


def _not_built(rpc: str) -> Unimplemented:
    return Unimplemented(
        f"{rpc} is not built yet: host monitoring through the executor comes in a later issue"
    )


class MonitorServicer(monitor_pb2_grpc.MonitorServiceServicer):
    async def AddHost(
        self, request: monitor_pb2.AddHostRequest, context: Context
    ) -> monitor_pb2.AddHostResponse:
        if not request.host_name.strip():
            raise InvalidArgument.for_field(
                "host_name",
                "host_name is empty: pass the OpenNebula host name the executor's inventory knows",
            )
        raise _not_built("AddHost")

    async def RemoveHost(
        self, request: monitor_pb2.RemoveHostRequest, context: Context
    ) -> monitor_pb2.RemoveHostResponse:
        raise _not_built("RemoveHost")

    async def GetHost(
        self, request: monitor_pb2.GetHostRequest, context: Context
    ) -> monitor_pb2.GetHostResponse:
        raise _not_built("GetHost")

    async def ListVms(
        self, request: monitor_pb2.ListVmsRequest, context: Context
    ) -> monitor_pb2.ListVmsResponse:
        raise _not_built("ListVms")

    async def GetVm(self, request: monitor_pb2.GetVmRequest, context: Context) -> monitor_pb2.GetVmResponse:
        raise _not_built("GetVm")

    async def Watch(
        self, request: monitor_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[monitor_pb2.WatchResponse]:
        raise _not_built("Watch")
        yield  # never reached; makes Watch an async generator, the shape of a server stream


def add_to_server(server: grpc.aio.Server) -> Sequence[str]:
    monitor_pb2_grpc.add_MonitorServiceServicer_to_server(MonitorServicer(), server)
    return (SERVICE_NAME,)
