"""MonitorService over gRPC, probing through a scripted ExecutorService (a real gRPC server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import grpc
import pytest
from monitor_fakes import PAUSED, FakeHost, payload, states

from onexen.runtime.config import ServiceConfig, load_config
from onexen.runtime.errors import OnexenError, Unavailable, from_rpc_error
from onexen.runtime.server import RunningServer, started_server
from onexen.v1 import common_pb2, executor_pb2, executor_pb2_grpc, monitor_pb2, monitor_pb2_grpc
from services.monitor import main as monitor_main
from services.monitor.engine import Monitor, Settings
from services.monitor.probe_client import ExecutorProber
from services.monitor.servicer import servicers

EXECUTOR = "onexen.v1.ExecutorService"
PERIODS = monitor_pb2.ProbePeriods(state_vm_seconds=1, monitor_vm_seconds=2, beacon_host_seconds=2)


class ScriptedExecutor(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, *hosts: FakeHost) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.requests: list[executor_pb2.ProbeRequest] = []

    async def Probe(self, request: executor_pb2.ProbeRequest, context: object) -> executor_pb2.ProbeResponse:
        self.requests.append(request)
        host = self.hosts[request.host]
        if host.down is not None:
            raise host.down
        return host.response(list(request.datastore_paths))


def config(**overrides: object) -> ServiceConfig:
    return replace(ServiceConfig(service="test", port=0, grace_seconds=0.2), **overrides)  # type: ignore[arg-type]


@pytest.fixture
def host() -> FakeHost:
    fake = FakeHost("xen1")
    fake.add("one-3")
    return fake


@pytest.fixture
async def executor(host: FakeHost) -> AsyncIterator[tuple[RunningServer, ScriptedExecutor]]:
    scripted = ScriptedExecutor(host)  # type: ignore[abstract]

    def add(server: grpc.aio.Server) -> Sequence[str]:
        executor_pb2_grpc.add_ExecutorServiceServicer_to_server(scripted, server)
        return (EXECUTOR,)

    async with started_server(config(), add) as running:
        yield running, scripted


@pytest.fixture
async def stub(
    executor: tuple[RunningServer, ScriptedExecutor],
) -> AsyncIterator[monitor_pb2_grpc.MonitorServiceStub]:
    channel = grpc.aio.insecure_channel(executor[0].target)
    monitor = Monitor(ExecutorProber(channel), None, Settings(first_sample_seconds=0.1, sample_seconds=0.1))
    async with (
        started_server(config(), servicers(monitor)) as running,
        grpc.aio.insecure_channel(running.target) as client,
    ):
        yield monitor_pb2_grpc.MonitorServiceStub(client)
    await monitor.close()
    await channel.close()


async def test_add_host_probes_through_the_executor(
    stub: monitor_pb2_grpc.MonitorServiceStub, executor: tuple[RunningServer, ScriptedExecutor]
) -> None:
    reply = await stub.AddHost(
        monitor_pb2.AddHostRequest(
            host_id=4, host_name="xen1", periods=PERIODS, datastore_location="/var/lib/one/datastores"
        ),
        timeout=10,
    )
    assert [payload(e) for e in reply.events] == ["system", "usage", "vm_monitoring", "vm_state"]
    request = executor[1].requests[0]
    assert (request.host, list(request.datastore_paths)) == ("xen1", ["/var/lib/one/datastores"])
    assert request.sample_seconds == pytest.approx(0.1)
    host = (await stub.GetHost(monitor_pb2.GetHostRequest(host_id=4), timeout=5)).host
    assert host.health == monitor_pb2.HOST_HEALTH_MONITORED and host.system.total_cpu == 200
    assert host.system.datastore_location.free_mib == 600
    vms = (await stub.ListVms(monitor_pb2.ListVmsRequest(host_id=4), timeout=5)).vms
    assert [(v.vm_id, v.deploy_id, v.state) for v in vms] == [(3, "one-3", common_pb2.VM_STATE_RUNNING)]
    vm = (await stub.GetVm(monitor_pb2.GetVmRequest(host_id=4, vm_id=3), timeout=5)).vm
    assert vm.domain.name == "one-3" and vm.monitoring.memory_kib == 131072
    await stub.RemoveHost(monitor_pb2.RemoveHostRequest(host_id=4), timeout=5)
    await stub.RemoveHost(monitor_pb2.RemoveHostRequest(host_id=4), timeout=5)  # idempotent


async def test_executor_errors_come_back_typed_with_their_reason(
    stub: monitor_pb2_grpc.MonitorServiceStub, host: FakeHost
) -> None:
    host.down = Unavailable("cannot reach xen1 at 10.0.0.11:22: timed out", reason="HOST_UNREACHABLE")
    reply = await stub.AddHost(monitor_pb2.AddHostRequest(host_id=4, host_name="xen1"), timeout=10)
    assert [payload(e) for e in reply.events] == ["host_error"]
    assert (
        reply.events[0].host_error.reason == "cannot reach xen1 at 10.0.0.11:22: timed out [HOST_UNREACHABLE]"
    )
    host_status = (await stub.GetHost(monitor_pb2.GetHostRequest(host_id=4), timeout=5)).host
    assert host_status.health == monitor_pb2.HOST_HEALTH_ERROR


async def rpc_error(call: object) -> OnexenError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return from_rpc_error(caught.value)


async def test_bad_requests_and_unknown_hosts(stub: monitor_pb2_grpc.MonitorServiceStub) -> None:
    refused = await rpc_error(
        stub.AddHost(monitor_pb2.AddHostRequest(host_id=-1, datastore_location="relative"), timeout=5)
    )
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in refused.violations] == ["host_name", "host_id", "datastore_location"]  # type: ignore[attr-defined]
    missing = await rpc_error(stub.GetHost(monitor_pb2.GetHostRequest(host_id=9), timeout=5))
    assert missing.code == grpc.StatusCode.NOT_FOUND and missing.reason == "HOST_NOT_WATCHED"
    await stub.AddHost(monitor_pb2.AddHostRequest(host_id=1, host_name="xen1", periods=PERIODS), timeout=10)
    wild = await rpc_error(stub.GetVm(monitor_pb2.GetVmRequest(host_id=1, vm_id=-1), timeout=5))
    assert wild.code == grpc.StatusCode.INVALID_ARGUMENT
    nothing = await rpc_error(stub.GetVm(monitor_pb2.GetVmRequest(host_id=1, deploy_id="one-99"), timeout=5))
    assert nothing.code == grpc.StatusCode.NOT_FOUND and nothing.reason == "VM_NOT_FOUND"


async def next_event(
    call: grpc.aio.UnaryStreamCall[monitor_pb2.WatchRequest, monitor_pb2.WatchResponse],
    kind: str,
    timeout: float,
) -> monitor_pb2.MonitorEvent:
    async def read() -> monitor_pb2.MonitorEvent:
        while True:
            response = await call.read()
            assert response is not grpc.aio.EOF
            event: monitor_pb2.MonitorEvent = response.event
            if payload(event) == kind:
                return event

    return await asyncio.wait_for(read(), timeout)


async def test_watch_starts_with_a_full_sync_then_streams_changes_and_a_reconnect_resyncs(
    stub: monitor_pb2_grpc.MonitorServiceStub, host: FakeHost
) -> None:
    await stub.AddHost(monitor_pb2.AddHostRequest(host_id=2, host_name="xen1", periods=PERIODS), timeout=10)
    call = stub.Watch(monitor_pb2.WatchRequest(host_id=2))
    first = [(await call.read()).event for _ in range(4)]
    assert [payload(e) for e in first] == ["system", "usage", "vm_monitoring", "vm_state"]
    assert first[-1].vm_state.sync and all(e.host_id == 2 for e in first)
    host.set_state("one-3", PAUSED)
    change = await next_event(call, "vm_state", 3)
    assert states(change) == {"one-3": common_pb2.VM_STATE_SUSPENDED} and not change.vm_state.sync
    call.cancel()

    again = stub.Watch(monitor_pb2.WatchRequest())  # every host
    resync = [(await again.read()).event for _ in range(4)]
    assert resync[-1].vm_state.sync and states(resync[-1]) == {"one-3": common_pb2.VM_STATE_SUSPENDED}
    await next_event(again, "beacon", 4)
    again.cancel()


def test_flags_reach_the_settings() -> None:
    _, args = load_config(
        "monitor",
        ["--max-concurrent-probes", "64", "--sample-seconds", "0.2", "--dom0-min-memory-mib", "2048"],
        environ={"ONEXEN_PROBE_TIMEOUT": "12.5"},
        add_options=monitor_main.add_monitor_options,
    )
    settings = monitor_main.settings_from(args)
    assert (settings.max_concurrent_probes, settings.sample_seconds, settings.probe_timeout) == (
        64,
        0.2,
        12.5,
    )
    assert settings.dom0_min_memory_mib == 2048 and settings.first_sample_seconds == 1.0
    assert args.executor == "127.0.0.1:50052" and args.translator == "127.0.0.1:50051"
    with pytest.raises(SystemExit):
        load_config(
            "monitor",
            ["--max-concurrent-probes", "0"],
            environ={},
            add_options=monitor_main.add_monitor_options,
        )
