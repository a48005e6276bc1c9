"""The one-line renderings the demo and tools print."""

from __future__ import annotations

from onexen.v1 import common_pb2, monitor_pb2
from services.monitor import compute
from services.monitor.render import event_line, host_line, vm_line


def test_state_changes_and_syncs_read_plainly() -> None:
    change = compute.event(
        3,
        0.0,
        vm_state=monitor_pb2.VmStateReport(
            vms=[
                monitor_pb2.VmStateChange(vm_id=7, deploy_id="one-7", state=common_pb2.VM_STATE_SUSPENDED),
                monitor_pb2.VmStateChange(vm_id=-1, deploy_id="web", state=common_pb2.VM_STATE_RUNNING),
            ]
        ),
    )
    assert event_line(change).endswith("host 3   VM_STATE      one-7 (7) SUSPENDED, web (wild) RUNNING")
    sync = compute.event(
        3, 0.0, vm_state=monitor_pb2.VmStateReport(sync=True, missing_state=common_pb2.VM_STATE_POWEROFF)
    )
    assert event_line(sync).endswith("SYNC no VMs (missing: POWEROFF)")
    error = compute.event(3, 0.0, host_error=monitor_pb2.HostError(reason="cannot reach xen1"))
    assert event_line(error).endswith("HOST_ERROR    cannot reach xen1")
    assert event_line(compute.event(3, 0.0, beacon=monitor_pb2.Beacon())).endswith("BEACON")


def test_hosts_and_vms_show_their_figures() -> None:
    host = monitor_pb2.HostStatus(
        host_id=0,
        host_name="xen1",
        health=monitor_pb2.HOST_HEALTH_MONITORED,
        system=monitor_pb2.SystemHost(
            hostname="xen1", xen_version="4.17.5", arch="x86_64", total_cpu=200, total_memory_kib=2047 * 1024
        ),
        usage=monitor_pb2.HostUsage(used_cpu=12, free_cpu=188, used_memory_kib=1024 * 1024),
    )
    line = host_line(host)
    assert "host 0 xen1 MONITORED" in line and "TOTALCPU 200" in line and "USEDCPU 12 FREECPU 188" in line
    vm = monitor_pb2.VmStatus(
        vm_id=7,
        deploy_id="one-7",
        state=common_pb2.VM_STATE_RUNNING,
        domain=common_pb2.Domain(flags="-b----"),
        monitoring=monitor_pb2.VmMonitoring(cpu=2.5, memory_kib=131072),
    )
    assert vm_line(vm).startswith("one-7 (7) RUNNING [-b----] CPU 2.5% MEMORY 128 MiB")
    monitoring = compute.event(
        0,
        0.0,
        vm_monitoring=monitor_pb2.VmMonitoringReport(
            vms=[
                monitor_pb2.VmMonitoring(
                    vm_id=7, deploy_id="one-7", disk_sizes=[monitor_pb2.DiskSize(disk_id=0, size_mib=10)]
                )
            ]
        ),
    )
    assert "1 VMs: one-7 (7) CPU 0.0%" in event_line(monitoring) and "disk0=10MiB" in event_line(monitoring)
