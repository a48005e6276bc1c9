"""One-line, human-readable renderings of monitor messages (for `make demo`, tools and logs).

from services.monitor.render import event_line, host_line, vm_line
async for response in stub.Watch(monitor_pb2.WatchRequest(host_id=0)):
    print(event_line(response.event))
# 12:00:03 host 0  VM_STATE    one-7 (7) SUSPENDED
"""

from __future__ import annotations

import datetime

from onexen.v1 import common_pb2, monitor_pb2


def state_name(state: common_pb2.VmState.ValueType) -> str:
    return common_pb2.VmState.Name(state).removeprefix("VM_STATE_")


def _when(event: monitor_pb2.MonitorEvent) -> str:
    at = event.timestamp.seconds + event.timestamp.nanos / 1e9
    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def _vm(vm_id: int, deploy_id: str) -> str:
    return f"{deploy_id} ({vm_id})" if vm_id >= 0 else f"{deploy_id} (wild)"


def usage_text(usage: monitor_pb2.HostUsage) -> str:
    memory = f"USEDMEMORY {_mib(usage.used_memory_kib)} FREEMEMORY {_mib(usage.free_memory_kib)}"
    network = f"NETRX {usage.net_rx_bytes} B NETTX {usage.net_tx_bytes} B"
    return f"USEDCPU {usage.used_cpu} FREECPU {usage.free_cpu}, {memory}, {network}"


def system_text(system: monitor_pb2.SystemHost) -> str:
    wild = ", ".join(w.deploy_id for w in system.wild_vms) or "none"
    text = (
        f"{system.hostname}: Xen {system.xen_version} {system.arch}, TOTALCPU {system.total_cpu}"
        f" at {system.cpu_speed_mhz:.0f} MHz, TOTALMEMORY {_mib(system.total_memory_kib)}"
    )
    if system.HasField("datastore_location"):
        ds = system.datastore_location
        text += f", datastores {ds.free_mib}/{ds.total_mib} MiB free"
    return f"{text}, wild VMs: {wild}"


def monitoring_text(vm: monitor_pb2.VmMonitoring) -> str:
    disks = " ".join(f"disk{d.disk_id}={d.size_mib}MiB" for d in vm.disk_sizes)
    text = (
        f"{_vm(vm.vm_id, vm.deploy_id)} CPU {vm.cpu:.1f}% MEMORY {_mib(vm.memory_kib)}"
        f" NETRX {vm.net_rx_bytes} B NETTX {vm.net_tx_bytes} B"
        f" DISK rd {vm.disk_read_bytes} B/{vm.disk_read_iops} wr {vm.disk_write_bytes} B/{vm.disk_write_iops}"
    )
    return f"{text} {disks}" if disks else text


def event_line(event: monitor_pb2.MonitorEvent) -> str:
    kind = event.WhichOneof("payload") or "empty"
    head = f"{_when(event)} host {event.host_id:<3} {kind.upper():<13}"
    if kind == "vm_state":
        report = event.vm_state
        vms = ", ".join(f"{_vm(v.vm_id, v.deploy_id)} {state_name(v.state)}" for v in report.vms) or "no VMs"
        if report.sync:
            return f"{head} SYNC {vms} (missing: {state_name(report.missing_state)})"
        return f"{head} {vms}"
    if kind == "usage":
        return f"{head} {usage_text(event.usage)}"
    if kind == "system":
        return f"{head} {system_text(event.system)}"
    if kind == "vm_monitoring":
        figures = event.vm_monitoring.vms
        return f"{head} {len(figures)} VMs: " + "; ".join(monitoring_text(v) for v in figures)
    if kind == "host_error":
        return f"{head} {event.host_error.reason}"
    return head.rstrip()


def host_line(host: monitor_pb2.HostStatus) -> str:
    health = monitor_pb2.HostHealth.Name(host.health).removeprefix("HOST_HEALTH_")
    text = f"host {host.host_id} {host.host_name} {health}"
    if host.error:
        return f"{text}: {host.error}"
    if host.HasField("system"):
        text += f" | {system_text(host.system)}"
    if host.HasField("usage"):
        text += f" | {usage_text(host.usage)}"
    return text


def vm_line(vm: monitor_pb2.VmStatus) -> str:
    text = f"{_vm(vm.vm_id, vm.deploy_id)} {state_name(vm.state)}"
    if vm.domain.flags:
        text += f" [{vm.domain.flags}]"
    if vm.HasField("monitoring"):
        m = vm.monitoring
        text += (
            f" CPU {m.cpu:.1f}% MEMORY {_mib(m.memory_kib)} NETRX {m.net_rx_bytes} B NETTX {m.net_tx_bytes} B"
        )
    return text
