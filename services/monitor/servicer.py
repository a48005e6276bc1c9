"""onexen.v1.MonitorService: gRPC glue over the engine (services/monitor/engine.py).

Watch starts with a full sync of the hosts it covers (for each host: SYSTEM_HOST,
MONITOR_HOST, MONITOR_VM and a SYNC_STATE report, or HOST_ERROR and a SYNC_STATE with
every VM UNKNOWN), then streams live events. A reader too slow for its queue gets a
fresh full sync instead of the events it missed (see hub.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeAlias

import grpc

from onexen.runtime.errors import FieldViolation, InvalidArgument
from onexen.v1 import monitor_pb2, monitor_pb2_grpc
from services.monitor.engine import HostConfig, Monitor
from services.monitor.probe_client import NoExecutor

SERVICE_NAME: str = monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext


def _host_id(value: int, field: str = "host_id") -> int:
    if value < 0:
        raise InvalidArgument.for_field(field, f"{field} {value} is negative: OpenNebula host ids start at 0")
    return value


def host_config(request: monitor_pb2.AddHostRequest) -> HostConfig:
    violations: list[FieldViolation] = []
    if not request.host_name.strip():
        text = "host_name is empty: pass the OpenNebula host name the executor's inventory knows"
        violations.append(FieldViolation("host_name", text))
    if request.host_id < 0:
        text = f"host_id {request.host_id} is negative: OpenNebula host ids start at 0"
        violations.append(FieldViolation("host_id", text))
    location = request.datastore_location.strip()
    if location and not location.startswith("/"):
        violations.append(
            FieldViolation("datastore_location", f"datastore_location {location!r} is not an absolute path")
        )
    if violations:
        raise InvalidArgument(violations[0].description, violations)
    try:
        return HostConfig.from_request(request)
    except ValueError as exc:  # cannot happen with uint32 periods, kept as a guard
        raise InvalidArgument.for_field("periods", str(exc)) from exc


class MonitorServicer(monitor_pb2_grpc.MonitorServiceServicer):
    def __init__(self, monitor: Monitor | None = None) -> None:
        # Without a monitor (runtime tests), every host answers "no executor".
        self.monitor = monitor if monitor is not None else Monitor(NoExecutor())

    async def AddHost(
        self, request: monitor_pb2.AddHostRequest, context: Context
    ) -> monitor_pb2.AddHostResponse:
        events = await self.monitor.add_host(host_config(request))
        return monitor_pb2.AddHostResponse(events=events)

    async def RemoveHost(
        self, request: monitor_pb2.RemoveHostRequest, context: Context
    ) -> monitor_pb2.RemoveHostResponse:
        await self.monitor.remove_host(_host_id(request.host_id))
        return monitor_pb2.RemoveHostResponse()

    async def GetHost(
        self, request: monitor_pb2.GetHostRequest, context: Context
    ) -> monitor_pb2.GetHostResponse:
        return monitor_pb2.GetHostResponse(host=self.monitor.host_status(_host_id(request.host_id)))

    async def ListVms(
        self, request: monitor_pb2.ListVmsRequest, context: Context
    ) -> monitor_pb2.ListVmsResponse:
        return monitor_pb2.ListVmsResponse(vms=self.monitor.vms(_host_id(request.host_id)))

    async def GetVm(self, request: monitor_pb2.GetVmRequest, context: Context) -> monitor_pb2.GetVmResponse:
        host_id = _host_id(request.host_id)
        deploy_id = request.deploy_id.strip()
        if not deploy_id and request.vm_id < 0:
            raise InvalidArgument.for_field(
                "deploy_id", "a wild or imported VM (vm_id < 0) is found by its deploy_id: pass deploy_id"
            )
        vm = self.monitor.vm(host_id, vm_id=request.vm_id, deploy_id=deploy_id)
        return monitor_pb2.GetVmResponse(vm=vm)

    async def Watch(
        self, request: monitor_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[monitor_pb2.WatchResponse]:
        # A host not (yet) watched is allowed: its events flow once AddHost adds it.
        host_id = _host_id(request.host_id) if request.HasField("host_id") else None
        with self.monitor.watch(host_id) as sub:
            # Taken before the first await: nothing published in between can be missed.
            backlog = self.monitor.snapshot(host_id)
            while True:
                for event in backlog:
                    yield monitor_pb2.WatchResponse(event=event)
                if not await sub.wait():
                    backlog = self.monitor.snapshot(host_id)  # fell too far behind: start over
                    continue
                backlog = []
                # One at a time: a state change published meanwhile overtakes queued figures.
                while not sub.overflowed and (queued := sub.pop()) is not None:
                    yield monitor_pb2.WatchResponse(event=queued)


def servicers(monitor: Monitor) -> Callable[[grpc.aio.Server], Sequence[str]]:
    """The runtime's `add_servicers` for this monitor."""

    def add(server: grpc.aio.Server) -> Sequence[str]:
        monitor_pb2_grpc.add_MonitorServiceServicer_to_server(MonitorServicer(monitor), server)
        return (SERVICE_NAME,)

    return add


def add_to_server(server: grpc.aio.Server) -> Sequence[str]:
    """A monitor without peers (probes fail with NO_EXECUTOR); main.py wires the real one."""
    monitor_pb2_grpc.add_MonitorServiceServicer_to_server(MonitorServicer(), server)
    return (SERVICE_NAME,)
