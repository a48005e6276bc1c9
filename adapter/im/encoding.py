"""Monitor events as monitord's messages, in the encodings of spec §4.5.3. Pure.

    SYSTEM_HOST   HYPERVISOR, TOTALCPU, CPUSPEED, TOTALMEMORY, ARCH, MODELNAME, HOSTNAME,
                  XEN_VERSION, DS_LOCATION_*, DS = [...], and VM = [...] per wild VM
    MONITOR_HOST  HYPERVISOR, USEDMEMORY, FREEMEMORY, FREECPU, USEDCPU, NETRX, NETTX
    MONITOR_VM    VM = [ ID, DEPLOY_ID, MONITOR = base64 of the VM's KEY="value" lines ]
    STATE_VM      [SYNC_STATE=yes, MISSING_STATE=...] then VM = [ ID, DEPLOY_ID, STATE ]
    BEACON_HOST   the epoch seconds

A host error becomes `MONITOR_HOST FAILURE` with the reason (monitord puts the host in
ERROR and its VMs in UNKNOWN). VM states monitord does not know (UNKNOWN: the host could
not be asked) are left out: the FAILURE already says it, and a SYNC_STATE report made of
them would tell monitord the VMs were gone.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

from adapter.im.protocol import Message
from onexen.v1 import common_pb2, monitor_pb2

SYSTEM_HOST = "SYSTEM_HOST"
MONITOR_HOST = "MONITOR_HOST"
MONITOR_VM = "MONITOR_VM"
STATE_VM = "STATE_VM"
BEACON_HOST = "BEACON_HOST"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"

_STATES = {
    common_pb2.VM_STATE_RUNNING: "RUNNING",
    common_pb2.VM_STATE_SUSPENDED: "SUSPENDED",
    common_pb2.VM_STATE_POWEROFF: "POWEROFF",
    common_pb2.VM_STATE_FAILURE: "FAILURE",
}
_MISSING = {common_pb2.VM_STATE_POWEROFF: "POWEROFF", common_pb2.VM_STATE_UNKNOWN: "UNKNOWN"}


def quoted(value: object) -> str:
    """A value in OpenNebula template syntax: double quotes, `\\` and `"` escaped."""
    text = " ".join(str(value).split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _vector(name: str, pairs: Iterable[tuple[str, object]]) -> str:
    return f"{name} = [ " + ", ".join(f"{k}={quoted(v)}" for k, v in pairs) + " ]"


def timestamp(event: monitor_pb2.MonitorEvent) -> float:
    return event.timestamp.seconds + event.timestamp.nanos / 1e9


# ----------------------------------------------------------------------------- payloads


def system_host(system: monitor_pb2.SystemHost) -> str:
    lines = [
        f"HYPERVISOR={system.hypervisor or 'xen'}",
        f"TOTALCPU={system.total_cpu}",
        f"CPUSPEED={round(system.cpu_speed_mhz)}",
        f"TOTALMEMORY={system.total_memory_kib}",
        f"ARCH={quoted(system.arch)}",
        f"MODELNAME={quoted(system.model_name)}",
        f"HOSTNAME={quoted(system.hostname)}",
        f"XEN_VERSION={quoted(system.xen_version)}",
    ]
    if system.HasField("datastore_location"):
        ds = system.datastore_location
        lines += [
            f"DS_LOCATION_USED_MB={ds.used_mib}",
            f"DS_LOCATION_TOTAL_MB={ds.total_mib}",
            f"DS_LOCATION_FREE_MB={ds.free_mib}",
        ]
    for ds in system.datastores:
        if ds.datastore_id >= 0:
            lines.append(
                _vector(
                    "DS",
                    (
                        ("ID", ds.datastore_id),
                        ("USED_MB", ds.used_mib),
                        ("TOTAL_MB", ds.total_mib),
                        ("FREE_MB", ds.free_mib),
                    ),
                )
            )
    for wild in system.wild_vms:
        pairs: list[tuple[str, object]] = [
            ("ID", -1),
            ("DEPLOY_ID", wild.deploy_id),
            ("VM_NAME", wild.vm_name or wild.deploy_id),
        ]
        if wild.import_template:
            pairs.append(("IMPORT_TEMPLATE", _b64(wild.import_template)))
        lines.append(_vector("VM", pairs))
    return "\n".join(lines) + "\n"


def monitor_host(usage: monitor_pb2.HostUsage) -> str:
    return (
        "HYPERVISOR=xen\n"
        f"USEDMEMORY={usage.used_memory_kib}\n"
        f"FREEMEMORY={usage.free_memory_kib}\n"
        f"FREECPU={usage.free_cpu}\n"
        f"USEDCPU={usage.used_cpu}\n"
        f"NETRX={usage.net_rx_bytes}\n"
        f"NETTX={usage.net_tx_bytes}\n"
    )


def vm_figures(vm: monitor_pb2.VmMonitoring) -> str:
    """One VM's MONITOR template (the base64 inside its MONITOR_VM line)."""
    lines = [
        f"CPU={quoted(f'{vm.cpu:.2f}')}",
        f"MEMORY={quoted(vm.memory_kib)}",
        f"NETRX={quoted(vm.net_rx_bytes)}",
        f"NETTX={quoted(vm.net_tx_bytes)}",
        f"DISKRDBYTES={quoted(vm.disk_read_bytes)}",
        f"DISKWRBYTES={quoted(vm.disk_write_bytes)}",
        f"DISKRDIOPS={quoted(vm.disk_read_iops)}",
        f"DISKWRIOPS={quoted(vm.disk_write_iops)}",
    ]
    lines += [_vector("DISK_SIZE", (("ID", d.disk_id), ("SIZE", d.size_mib))) for d in vm.disk_sizes]
    return "\n".join(lines) + "\n"


def monitor_vm(report: monitor_pb2.VmMonitoringReport) -> str:
    return "".join(
        _vector("VM", (("ID", vm.vm_id), ("DEPLOY_ID", vm.deploy_id), ("MONITOR", _b64(vm_figures(vm)))))
        + "\n"
        for vm in report.vms
    )


def state_vm(report: monitor_pb2.VmStateReport) -> str | None:
    """The STATE_VM payload; None when nothing in it is for monitord."""
    vms = [v for v in report.vms if v.state in _STATES]
    if report.sync and report.missing_state not in (common_pb2.VM_STATE_POWEROFF,):
        # A "sync" of a host that could not be asked knows nothing: never let it say
        # that every VM it does not list is gone.
        return None
    if not report.sync and not vms:
        return None
    lines = []
    if report.sync:
        lines += ["SYNC_STATE=yes", f"MISSING_STATE={_MISSING[report.missing_state]}"]
    lines += [
        _vector("VM", (("ID", v.vm_id), ("DEPLOY_ID", v.deploy_id), ("STATE", _STATES[v.state]))) for v in vms
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- events


def messages(event: monitor_pb2.MonitorEvent) -> list[Message]:
    """The monitord messages one event stands for (none for an empty STATE_VM)."""
    kind = event.WhichOneof("payload")
    at = int(timestamp(event))
    host = event.host_id

    def one(kind_name: str, data: str, status: str = SUCCESS) -> list[Message]:
        return [Message(kind_name, status, host, at, data)]

    if kind == "system":
        return one(SYSTEM_HOST, system_host(event.system))
    if kind == "usage":
        return one(MONITOR_HOST, monitor_host(event.usage))
    if kind == "vm_monitoring":
        return one(MONITOR_VM, monitor_vm(event.vm_monitoring))
    if kind == "vm_state":
        data = state_vm(event.vm_state)
        return one(STATE_VM, data) if data is not None else []
    if kind == "beacon":
        return one(BEACON_HOST, f"{at}\n")
    if kind == "host_error":
        return one(MONITOR_HOST, event.host_error.reason or "the host cannot be monitored", FAILURE)
    return []


# The order of the agent's first report (monitord-client.rb run_once).
_FIRST_REPORT = (SYSTEM_HOST, MONITOR_HOST, STATE_VM, MONITOR_VM)


def monitor_messages(found: Sequence[Message], at: int) -> str:
    """The `<MONITOR_MESSAGES>` document START_MONITOR answers with (plain base64 inside)."""
    by_type = {m.type: m for m in found if m.status == SUCCESS}
    parts = [f"<{t}>{_b64(by_type[t].data)}</{t}>" for t in _FIRST_REPORT if t in by_type]
    return "<MONITOR_MESSAGES>" + "\n".join([*parts, f"<TIMESTAMP>{at}</TIMESTAMP>"]) + "</MONITOR_MESSAGES>"
