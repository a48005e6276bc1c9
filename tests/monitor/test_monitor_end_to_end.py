"""End to end: a simulated Xen host over real SSH, the executor as its own process, the monitor.

Guests change underneath (crash, pause, unpause, power themselves off), a wild domain
appears, the host goes down and comes back; each change must arrive as the right Watch
event, from the first probe that could see it: within one STATE_VM period plus the probe's
own duration (a simulated probe runs a handful of Python processes over SSH, ~1-2 s here).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from monitor_fakes import payload, states

from onexen.runtime.config import ServiceConfig
from onexen.runtime.server import started_server
from onexen.v1 import common_pb2, monitor_pb2, monitor_pb2_grpc, translator_pb2, translator_pb2_grpc
from services.executor.inventory import render_inventory
from services.monitor.engine import Monitor, Settings
from services.monitor.probe_client import ExecutorProber, TranslatorImporter
from services.monitor.servicer import servicers
from services.translator import api as translator_api
from simxen import testing
from simxen.host import SimHost
from stack.launcher import ServiceProcess, wait_serving

pytestmark = pytest.mark.slow

STATE_VM = 1  # seconds, the shortest AddHost can ask
HOST_ID = 11


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHost]:
    if not testing.sshd_available():
        pytest.skip(f"sshd unavailable: {testing.REQUIREMENTS_HINT}")
    workdir = tmp_path_factory.mktemp("monitor-e2e")
    # A powered-off guest stays listed as shut down for 2 s, long enough for a probe to see it.
    with testing.sim_host(workdir / "hosts", "xen1", cleanup_seconds=2.0, shutdown_seconds=0.2) as host:
        host.add_wild_domain("one-1")
        host.add_wild_domain("one-2")
        yield host


@pytest.fixture(scope="module")
def executor(sim: SimHost) -> Iterator[str]:
    inventory = sim.workdir / "inventory.toml"
    inventory.write_text(
        render_inventory(
            {},
            {
                sim.name: {
                    "address": sim.address,
                    "port": sim.port,
                    "user": sim.user,
                    "key": str(sim.key_path),
                    "known_hosts": str(sim.known_hosts_path),
                    "XM_PATH": str(sim.xl_path),
                    "xentop_path": str(sim.xentop_path),
                    "datastore_roots": [str(sim.workdir)],
                }
            },
        )
    )
    port = _free_port()
    log_path = sim.workdir / "executor.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.executor.main",
                "--port",
                str(port),
                "--inventory",
                str(inventory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=Path(__file__).resolve().parents[2],
        )
    service = ServiceProcess("executor", f"127.0.0.1:{port}", log_path, process)
    try:
        wait_serving(service, timeout=30)
        yield service.address
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Importing(translator_pb2_grpc.TranslatorServiceServicer):
    """TranslatorService/Import backed by the translator's own import code."""

    async def Import(
        self, request: translator_pb2.ImportRequest, context: object
    ) -> translator_pb2.ImportResponse:
        result = translator_api.import_domain(request.domain_json)
        return translator_pb2.ImportResponse(template=result.template, deploy_id=result.deploy_id)


def _config() -> ServiceConfig:
    return replace(ServiceConfig(service="test", port=0, grace_seconds=0.2))


@pytest.fixture
async def monitor_stub(executor: str) -> AsyncIterator[tuple[monitor_pb2_grpc.MonitorServiceStub, Monitor]]:
    def add_translator(server: grpc.aio.Server) -> Sequence[str]:
        translator_pb2_grpc.add_TranslatorServiceServicer_to_server(Importing(), server)  # type: ignore[abstract]
        return ("onexen.v1.TranslatorService",)

    async with started_server(_config(), add_translator) as translator:
        executor_channel = grpc.aio.insecure_channel(executor)
        translator_channel = grpc.aio.insecure_channel(translator.target)
        monitor = Monitor(
            ExecutorProber(executor_channel),
            TranslatorImporter(translator_channel),
            Settings(first_sample_seconds=0.2, sample_seconds=0.05, probe_timeout=15),
        )
        try:
            async with (
                started_server(_config(), servicers(monitor)) as running,
                grpc.aio.insecure_channel(running.target) as channel,
            ):
                yield monitor_pb2_grpc.MonitorServiceStub(channel), monitor
        finally:
            await monitor.close()
            await executor_channel.close()
            await translator_channel.close()


class Stream:
    def __init__(
        self, call: grpc.aio.UnaryStreamCall[monitor_pb2.WatchRequest, monitor_pb2.WatchResponse]
    ) -> None:
        self.call = call

    async def until(self, kind: str, timeout: float, match: object = None) -> monitor_pb2.MonitorEvent:
        async def read() -> monitor_pb2.MonitorEvent:
            while True:
                response = await self.call.read()
                assert response is not grpc.aio.EOF, "the Watch stream ended"
                event: monitor_pb2.MonitorEvent = response.event
                if payload(event) == kind and (match is None or match(event)):  # type: ignore[operator]
                    return event

        return await asyncio.wait_for(read(), timeout)


async def test_guests_changing_underneath_are_seen_as_they_happen(
    sim: SimHost, monitor_stub: tuple[monitor_pb2_grpc.MonitorServiceStub, Monitor]
) -> None:
    stub, monitor = monitor_stub
    periods = monitor_pb2.ProbePeriods(
        state_vm_seconds=STATE_VM, monitor_vm_seconds=2, system_host_seconds=600
    )
    reply = await stub.AddHost(
        monitor_pb2.AddHostRequest(
            host_id=HOST_ID, host_name=sim.name, periods=periods, datastore_location=str(sim.workdir)
        ),
        timeout=30,
    )
    assert [payload(e) for e in reply.events] == ["system", "usage", "vm_monitoring", "vm_state"]
    system = reply.events[0].system
    assert (system.hypervisor, system.total_cpu, system.hostname) == ("xen", 200, "xen1")
    assert system.total_memory_kib == 2047 * 1024 and system.xen_version == "4.17.5"
    assert system.datastore_location.total_mib > 0
    assert states(reply.events[3]) == {
        "one-1": common_pb2.VM_STATE_RUNNING,
        "one-2": common_pb2.VM_STATE_RUNNING,
    }
    usage = reply.events[1].usage
    assert usage.used_memory_kib + usage.free_memory_kib == system.total_memory_kib
    assert {v.deploy_id for v in reply.events[2].vm_monitoring.vms} == {"one-1", "one-2"}  # no Domain-0

    stream = Stream(stub.Watch(monitor_pb2.WatchRequest(host_id=HOST_ID)))
    await stream.until("vm_state", 5, lambda e: e.vm_state.sync)
    latencies: dict[str, float] = {}

    async def expect(what: str, deploy_id: str, state: int) -> None:
        started = time.monotonic()
        event = await stream.until("vm_state", 20, lambda e: states(e).get(deploy_id) == state)
        latencies[what] = time.monotonic() - started
        assert event.host_id == HOST_ID  # a change (or a SYNC_STATE that was due with it)

    sim.crash("one-1")
    await expect("crash", "one-1", common_pb2.VM_STATE_FAILURE)
    sim.pause_guest("one-2")
    await expect("pause", "one-2", common_pb2.VM_STATE_SUSPENDED)
    sim.unpause_guest("one-2")
    await expect("unpause", "one-2", common_pb2.VM_STATE_RUNNING)
    sim.guest_poweroff("one-2")
    await expect("poweroff", "one-2", common_pb2.VM_STATE_POWEROFF)

    sim.add_wild_domain("web", memory_mb=256, vcpus=2)
    await expect("wild", "web", common_pb2.VM_STATE_RUNNING)
    wild = await stream.until("system", 10, lambda e: any(w.deploy_id == "web" for w in e.system.wild_vms))
    template = {w.deploy_id: w.import_template for w in wild.system.wild_vms}["web"]
    assert 'NAME = "web"' in template and 'MEMORY = "256"' in template and 'VCPU = "2"' in template
    assert "Domain-0" not in template

    started = time.monotonic()
    sim.stop()  # the host goes down: sshd and its sessions gone
    error = await stream.until("host_error", 20)
    latencies["host down"] = time.monotonic() - started
    assert error.host_error.reason
    unknown = await stream.until("vm_state", 5)
    assert set(states(unknown).values()) == {common_pb2.VM_STATE_UNKNOWN}

    started = time.monotonic()
    sim.restart_sshd()
    # Back: a full report again; the SYNC_STATE, urgent, may overtake the figures.
    back = await stream.until("vm_state", 30, lambda e: e.vm_state.sync)
    latencies["host back"] = time.monotonic() - started
    await stream.until("system", 10)
    # one-2 powered off before the outage and is gone: until its third absence the sync still
    # lists it, with the UNKNOWN the outage gave it; then it is reported POWEROFF.
    assert states(back) == {
        "one-1": common_pb2.VM_STATE_FAILURE,
        "web": common_pb2.VM_STATE_RUNNING,
        "one-2": common_pb2.VM_STATE_UNKNOWN,
    }
    stream.call.cancel()

    probe = monitor.stats.probe_seconds / max(1, monitor.stats.probes)
    budget = STATE_VM + 2 * probe + 1.0
    print(f"latencies {latencies}, mean probe {probe:.2f} s, budget {budget:.2f} s")
    for what, seconds in latencies.items():
        if what != "host back":  # a fresh SSH connection first
            assert seconds <= budget, (what, seconds, budget)
