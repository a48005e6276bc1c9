"""The engine against an in-process scripted executor: reports, state changes, errors, limits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest
from monitor_fakes import (
    CRASHED,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    FakeHost,
    FakeImporter,
    FakeProber,
    Reader,
    payload,
    state_is,
    states,
)

from onexen.runtime.errors import NotFound, Unavailable
from onexen.v1 import common_pb2, monitor_pb2
from services.monitor.engine import HostConfig, Monitor, Settings
from services.monitor.schedule import Periods

STATE = 0.1
FAST = Periods(
    state_vm=STATE, monitor_vm=0.4, monitor_host=0.4, beacon_host=0.4, sync_state_vm=2, system_host=1
)
SETTINGS = Settings(first_sample_seconds=1.0, sample_seconds=0.05)
# A change is seen by the next probe: within one STATE_VM period, plus scheduling slack.
WITHIN = STATE + 1.0

VmStates = common_pb2


@pytest.fixture
def host() -> FakeHost:
    fake = FakeHost("xen1")
    fake.add("one-1", load=0.25)
    fake.add("one-2", load=0.5)
    return fake


@pytest.fixture
def importer() -> FakeImporter:
    return FakeImporter()


@pytest.fixture
async def monitor(host: FakeHost, importer: FakeImporter) -> AsyncIterator[Monitor]:
    monitor = Monitor(FakeProber(host), importer, SETTINGS)
    yield monitor
    await monitor.close()


def config(host_id: int = 7, name: str = "xen1", **kwargs: object) -> HostConfig:
    return HostConfig(host_id, name, FAST, datastore_location="/var/lib/one/datastores", **kwargs)  # type: ignore[arg-type]


async def test_add_host_answers_the_first_full_report(monitor: Monitor, host: FakeHost) -> None:
    host.add("web", load=0.1)
    events = await monitor.add_host(config())
    assert [payload(e) for e in events] == ["system", "usage", "vm_monitoring", "vm_state"]
    assert all(e.host_id == 7 and e.timestamp.seconds > 0 for e in events)
    system, usage, monitoring, state = events
    assert system.system.total_cpu == 200 and system.system.hostname == "xen1"
    assert system.system.datastore_location.path == "/var/lib/one/datastores"
    assert [(w.deploy_id, w.import_template) for w in system.system.wild_vms] == [
        ("web", 'NAME = "web"\nDEPLOY_ID = "web"\n')
    ]
    assert usage.usage.used_cpu == 10 + 25 + 50 + 10  # xentop's CPU% of the first, full sample
    assert {(v.vm_id, v.deploy_id) for v in monitoring.vm_monitoring.vms} == {
        (1, "one-1"),
        (2, "one-2"),
        (-1, "web"),
    }
    assert state.vm_state.sync and state.vm_state.missing_state == VmStates.VM_STATE_POWEROFF
    assert states(state) == {"one-1": RUNNING_VM, "one-2": RUNNING_VM, "web": RUNNING_VM}
    prober = monitor._prober
    assert isinstance(prober, FakeProber)
    assert prober.requests[0] == ("xen1", ("/var/lib/one/datastores",), 1.0)

    status = monitor.host_status(7)
    assert status.health == monitor_pb2.HOST_HEALTH_MONITORED and status.usage.used_cpu == 95
    vms = monitor.vms(7)
    assert [v.deploy_id for v in vms] == ["one-1", "one-2", "web"]
    assert [v.wild for v in vms] == [False, False, True]
    one = monitor.vm(7, vm_id=1)
    assert one.domain.name == "one-1" and one.domain.config_json == "" and one.monitoring.memory_kib == 131072
    assert monitor.vm(7, deploy_id="web").vm_id == -1
    with pytest.raises(NotFound):
        monitor.vm(7, vm_id=99)
    with pytest.raises(NotFound):
        monitor.host_status(8)


RUNNING_VM = VmStates.VM_STATE_RUNNING


async def test_each_change_is_one_event_within_one_state_period(monitor: Monitor, host: FakeHost) -> None:
    await monitor.add_host(config(missing_after=2))
    with monitor.watch(7) as sub:
        reader = Reader(sub)
        for deploy_id, domain_state, expected in [
            ("one-1", PAUSED, VmStates.VM_STATE_SUSPENDED),
            ("one-1", RUNNING, VmStates.VM_STATE_RUNNING),
            ("one-2", CRASHED, VmStates.VM_STATE_FAILURE),
            ("one-1", SHUTDOWN, VmStates.VM_STATE_POWEROFF),
        ]:
            host.set_state(deploy_id, domain_state)
            event = await reader.next(state_is(deploy_id, expected), WITHIN)
            # A change found by the probe that also owes a SYNC_STATE travels inside it.
            assert event.vm_state.sync or len(event.vm_state.vms) == 1
        host.remove("one-2")  # destroyed between probes: reported after 2 absences
        event = await reader.next(state_is("one-2", VmStates.VM_STATE_POWEROFF), 2 * STATE + WITHIN)
        assert monitor.vms(7)[0].deploy_id == "one-1" and len(monitor.vms(7)) == 1


async def test_a_wild_domain_is_reported_with_its_import_template(
    monitor: Monitor, host: FakeHost, importer: FakeImporter
) -> None:
    await monitor.add_host(config())
    with monitor.watch(None) as sub:
        reader = Reader(sub)
        host.add("hand-made", load=0.0)
        await reader.next(state_is("hand-made", RUNNING_VM), WITHIN)
        system = await reader.next(lambda e: payload(e) == "system", WITHIN)
        assert [w.vm_name for w in system.system.wild_vms] == ["hand-made"]
        assert "hand-made" in system.system.wild_vms[0].import_template
        assert importer.calls == ["hand-made"]
        # Known and unchanged: not imported again at the next SYSTEM_HOST.
        await reader.next(lambda e: payload(e) == "system", FAST.system_host + 1)
        assert importer.calls == ["hand-made"]


async def test_a_failed_import_leaves_the_template_empty_and_is_retried(
    monitor: Monitor, host: FakeHost, importer: FakeImporter
) -> None:
    importer.failing = True
    host.add("web")
    events = await monitor.add_host(HostConfig(7, "xen1", dataclasses.replace(FAST, system_host=600)))
    assert [w.import_template for w in events[0].system.wild_vms] == [""]
    importer.failing = False
    with monitor.watch(7) as sub:
        # Retried with the next beacon, not only with the next SYSTEM_HOST.
        system = await Reader(sub).next(lambda e: payload(e) == "system", FAST.beacon_host + 0.5)
    assert system.system.wild_vms[0].import_template.startswith('NAME = "web"')


async def test_monitoring_cpu_comes_from_cpu_time(monitor: Monitor, host: FakeHost) -> None:
    host.domains["one-1"].load = 0.3
    await monitor.add_host(config())
    with monitor.watch(7) as sub:
        reader = Reader(sub)
        await reader.next(lambda e: payload(e) == "vm_monitoring", 1)
        event = await reader.next(lambda e: payload(e) == "vm_monitoring", 1)
    cpu = {v.deploy_id: v.cpu for v in event.vm_monitoring.vms}
    # CPU time has a 0.1 s resolution: over a 0.4 s window that is up to 25 points off.
    assert cpu["one-1"] == pytest.approx(30, abs=26)
    assert cpu["one-2"] == pytest.approx(50, abs=26)


async def test_a_host_that_stops_answering_is_an_error_and_recovers_by_itself(
    monitor: Monitor, host: FakeHost
) -> None:
    await monitor.add_host(config())
    with monitor.watch(7) as sub:
        reader = Reader(sub)
        host.down = Unavailable("cannot reach xen1: connection refused", reason="HOST_UNREACHABLE")
        error = await reader.next(lambda e: payload(e) == "host_error", WITHIN)
        assert (
            "connection refused" in error.host_error.reason and "HOST_UNREACHABLE" in error.host_error.reason
        )
        unknown = await reader.next(lambda e: payload(e) == "vm_state", 0.1)
        assert set(states(unknown).values()) == {VmStates.VM_STATE_UNKNOWN}
        status = monitor.host_status(7)
        assert status.health == monitor_pb2.HOST_HEALTH_ERROR and "connection refused" in status.error
        assert {v.state for v in monitor.vms(7)} == {VmStates.VM_STATE_UNKNOWN}
        snapshot = monitor.snapshot(7)
        assert [payload(e) for e in snapshot] == ["host_error", "vm_state"]
        assert snapshot[1].vm_state.sync and snapshot[1].vm_state.missing_state == VmStates.VM_STATE_UNKNOWN
        # Still failing: nothing new is said.
        await asyncio.sleep(3 * STATE)
        assert not [e for e in reader.buffer if payload(e) == "host_error"]

        host.down = None
        # Back: the full report again, its SYNC_STATE first (state reports go before figures).
        sync = await reader.next(lambda e: payload(e) == "vm_state", WITHIN)
        assert sync.vm_state.sync and set(states(sync).values()) == {RUNNING_VM}
        rest = [await reader.next(lambda e: True, 0.1) for _ in range(3)]
        assert [payload(e) for e in rest] == ["system", "usage", "vm_monitoring"]
        assert monitor.host_status(7).health == monitor_pb2.HOST_HEALTH_MONITORED


async def test_a_host_unknown_to_the_executor_is_in_error_from_the_start(monitor: Monitor) -> None:
    events = await monitor.add_host(config(host_id=3, name="nowhere"))
    assert [payload(e) for e in events] == ["host_error"]
    assert "HOST_NOT_FOUND" in events[0].host_error.reason
    assert monitor.host_status(3).health == monitor_pb2.HOST_HEALTH_ERROR


async def test_one_probe_per_host_at_a_time_and_a_global_bound() -> None:
    hosts = [FakeHost(f"h{i}") for i in range(12)]
    for fake in hosts:
        fake.delay = 0.05
    prober = FakeProber(*hosts)
    monitor = Monitor(prober, None, Settings(max_concurrent_probes=3, first_sample_seconds=0.01))
    try:
        await asyncio.gather(*(monitor.add_host(config(i, f"h{i}")) for i in range(12)))
        # AddHost again while the loops run: a refresh waits for the probe in flight.
        await asyncio.gather(*(monitor.add_host(config(i, f"h{i}")) for i in range(0, 12, 2)))
        await asyncio.sleep(0.5)
    finally:
        await monitor.close()
    assert prober.max_in_flight == 3
    assert all(fake.max_in_flight == 1 for fake in hosts)
    assert all(fake.probes >= 3 for fake in hosts)


async def test_remove_host_stops_its_probes(monitor: Monitor, host: FakeHost) -> None:
    await monitor.add_host(config())
    assert await monitor.remove_host(7)
    probes = host.probes
    await asyncio.sleep(3 * STATE)
    assert host.probes == probes
    assert not await monitor.remove_host(7)
    with pytest.raises(NotFound):
        monitor.vms(7)


async def test_a_new_subscriber_gets_a_full_sync_first(monitor: Monitor, host: FakeHost) -> None:
    await monitor.add_host(config())
    await monitor.add_host(config(host_id=8))
    snapshot = monitor.snapshot(None)
    assert [(e.host_id, payload(e)) for e in snapshot] == [
        (h, p) for h in (7, 8) for p in ("system", "usage", "vm_monitoring", "vm_state")
    ]
    assert all(e.vm_state.sync for e in snapshot if payload(e) == "vm_state")
    assert [e.host_id for e in monitor.snapshot(8)] == [8] * 4
    assert monitor.snapshot(99) == []


async def test_beacons_follow_their_period_not_every_probe(monitor: Monitor, host: FakeHost) -> None:
    await monitor.add_host(config())
    probes = host.probes
    beacons = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + 2.0
    with monitor.watch(7) as sub:
        while (left := end - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                events = await asyncio.wait_for(sub.get(), left)
                beacons += sum(1 for e in events or [] if payload(e) == "beacon")
    # 2 s at a 0.4 s period: about 5 beacons, out of about 20 probes.
    assert 3 <= beacons <= 6, beacons
    assert host.probes - probes >= 10
