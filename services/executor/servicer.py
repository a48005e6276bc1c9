"""onexen.v1.ExecutorService: the one component that runs commands on Xen hosts.

The host inventory is served (ListHosts); the SSH execution of the actions is a
later issue. Every action names an inventory host, so an empty `host` is refused already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias

import grpc

from onexen.runtime.errors import InvalidArgument, Unimplemented
from onexen.v1 import executor_pb2, executor_pb2_grpc
from services.executor.inventory import HostSettings, Inventory

SERVICE_NAME: str = executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext


class _NamesHost(Protocol):
    @property
    def host(self) -> str: ...


def _not_built(rpc: str, request: _NamesHost) -> Unimplemented:
    """The error every RPC raises for now, once its `host` passed the check that stays."""
    if not request.host.strip():
        raise InvalidArgument.for_field(
            "host", f"host is empty: {rpc} needs the name of a Xen host as the executor's inventory knows it"
        )
    return Unimplemented(f"{rpc} is not built yet: running commands on Xen hosts comes in a later issue")


def inventory_host_message(host: HostSettings) -> executor_pb2.InventoryHost:
    """What ListHosts tells about a host: how it is reached and driven, never key material."""
    return executor_pb2.InventoryHost(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        xl_path=host.xm_path,
        shutdown_timeout_seconds=host.shutdown_timeout,
        force_destroy=host.force_destroy,
        default_file_prefix=host.default_file_prefix,
        use_sudo=host.use_sudo,
        datastore_roots=list(host.datastore_roots),
    )


class ExecutorServicer(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def Deploy(
        self, request: executor_pb2.DeployRequest, context: Context
    ) -> executor_pb2.DeployResponse:
        raise _not_built("Deploy", request)

    async def Shutdown(
        self, request: executor_pb2.ShutdownRequest, context: Context
    ) -> executor_pb2.ShutdownResponse:
        raise _not_built("Shutdown", request)

    async def Cancel(
        self, request: executor_pb2.CancelRequest, context: Context
    ) -> executor_pb2.CancelResponse:
        raise _not_built("Cancel", request)

    async def Save(self, request: executor_pb2.SaveRequest, context: Context) -> executor_pb2.SaveResponse:
        raise _not_built("Save", request)

    async def Restore(
        self, request: executor_pb2.RestoreRequest, context: Context
    ) -> executor_pb2.RestoreResponse:
        raise _not_built("Restore", request)

    async def Migrate(
        self, request: executor_pb2.MigrateRequest, context: Context
    ) -> executor_pb2.MigrateResponse:
        raise _not_built("Migrate", request)

    async def Reboot(
        self, request: executor_pb2.RebootRequest, context: Context
    ) -> executor_pb2.RebootResponse:
        raise _not_built("Reboot", request)

    async def Reset(self, request: executor_pb2.ResetRequest, context: Context) -> executor_pb2.ResetResponse:
        raise _not_built("Reset", request)

    async def AttachDisk(
        self, request: executor_pb2.AttachDiskRequest, context: Context
    ) -> executor_pb2.AttachDiskResponse:
        raise _not_built("AttachDisk", request)

    async def DetachDisk(
        self, request: executor_pb2.DetachDiskRequest, context: Context
    ) -> executor_pb2.DetachDiskResponse:
        raise _not_built("DetachDisk", request)

    async def AttachNic(
        self, request: executor_pb2.AttachNicRequest, context: Context
    ) -> executor_pb2.AttachNicResponse:
        raise _not_built("AttachNic", request)

    async def DetachNic(
        self, request: executor_pb2.DetachNicRequest, context: Context
    ) -> executor_pb2.DetachNicResponse:
        raise _not_built("DetachNic", request)

    async def SetCredit(
        self, request: executor_pb2.SetCreditRequest, context: Context
    ) -> executor_pb2.SetCreditResponse:
        raise _not_built("SetCredit", request)

    async def Probe(self, request: executor_pb2.ProbeRequest, context: Context) -> executor_pb2.ProbeResponse:
        raise _not_built("Probe", request)

    async def GetDomain(
        self, request: executor_pb2.GetDomainRequest, context: Context
    ) -> executor_pb2.GetDomainResponse:
        raise _not_built("GetDomain", request)

    async def RunNetworkStep(
        self, request: executor_pb2.RunNetworkStepRequest, context: Context
    ) -> executor_pb2.RunNetworkStepResponse:
        raise _not_built("RunNetworkStep", request)

    async def ListHosts(
        self, request: executor_pb2.ListHostsRequest, context: Context
    ) -> executor_pb2.ListHostsResponse:
        hosts = [inventory_host_message(self.inventory.host(name)) for name in self.inventory.names()]
        return executor_pb2.ListHostsResponse(hosts=hosts)


def servicers(inventory: Inventory) -> Callable[[grpc.aio.Server], Sequence[str]]:
    """The runtime's `add_servicers` for an executor serving this inventory."""

    def add_to_server(server: grpc.aio.Server) -> Sequence[str]:
        executor_pb2_grpc.add_ExecutorServiceServicer_to_server(ExecutorServicer(inventory), server)
        return (SERVICE_NAME,)

    return add_to_server
