"""Host and VM figures from ExecutorService/Probe answers (pure arithmetic, no I/O).

Units are OpenNebula's: memory in KiB, network and disk traffic in bytes, CPU in percent of
one CPU (a host's TOTALCPU is CPUs x 100). Upstream's xen.rb summed NETTX/NETRX in KiB
for the host while the VM poll sent bytes; here both are bytes.

CPU. xentop's CPU(%) needs two iterations one sampling interval apart, and the real
xentop reads that interval with atoi(): whole seconds. Rather than holding an SSH channel
for seconds on every probe, the monitor probes with a short sample and takes CPU% from
the domains' cumulative CPU time (`xl list`'s Time(s), 0.1 s resolution) between probes:
a VM's CPU is its average over the MONITOR_VM window, a host's USEDCPU the sum over its
domains (Domain-0 included) over the MONITOR_HOST window. A window with a single sample
(first contact) falls back to xentop's figure, which the first probe takes with a full
one-second sample. A domain whose CPU time went backwards or whose domid changed was
restored, rebooted or migrated back: its window restarts there instead of producing a
negative or absurd figure.

Ballooned Domain-0. `xl info`'s free_memory excludes what Domain-0 holds, so a host whose
Domain-0 ballooned up to all of RAM reported FREEMEMORY close to nothing (OpenNebula/one#6611:
21 MiB free on a 128 GiB host). When Domain-0 balloons (xl's autoballoon=auto: Xen was
booted without `dom0_mem=`), libxl takes memory back from it for new guests, so what it
holds above a floor (`--dom0-min-memory-mib`, default 1024 MiB) counts as free. A
Domain-0 pinned with `dom0_mem=` gives nothing back and its memory counts as used.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from onexen.v1 import common_pb2, monitor_pb2

KIB_PER_MIB = 1024
BYTES_PER_MIB = 1024 * 1024
DEFAULT_DOM0_MIN_MEMORY_MIB = 1024

_DOM0_MEM = re.compile(r"(?:^|\s)dom0_mem=")
_DISK_FILE = re.compile(r"(?:^|/)disk\.(\d+)$")


# ----------------------------------------------------------------------------- CPU


# (domid, cumulative CPU seconds, sampled at): tuples, as this runs for every domain of every probe.
_Mark = tuple[int, float, float]


class CpuWindows:
    """Average CPU% of each domain over named windows that restart when they are taken.

    Keyed by domain name; `observe` every probe, `take` a window when its report is due.
    """

    def __init__(self, windows: Sequence[str]) -> None:
        self._last: dict[str, _Mark] = {}
        self._start: dict[str, dict[str, _Mark]] = {w: {} for w in windows}

    def observe(self, name: str, domid: int, cpu_seconds: float, at: float) -> None:
        mark = (domid, cpu_seconds, at)
        previous = self._last.get(name)
        self._last[name] = mark
        if previous is None or previous[0] != domid or cpu_seconds < previous[1] or at < previous[2]:
            # New domain, or its counters reset (restore, reboot, migration back): every
            # window restarts here.
            for starts in self._start.values():
                starts[name] = mark

    def percent(self, window: str, name: str) -> float | None:
        """The average since the window started; None when it holds a single sample."""
        start = self._start[window].get(name)
        last = self._last.get(name)
        if start is None or last is None or last[2] <= start[2]:
            return None
        return max(0.0, (last[1] - start[1]) / (last[2] - start[2]) * 100.0)

    def take(self, window: str, fallbacks: Mapping[str, float]) -> dict[str, float]:
        """Every domain's average in `window` (or its fallback), and restart the window.

        Only domains in `fallbacks` (the latest probe's domains) are kept: the others are gone.
        """
        out: dict[str, float] = {}
        fresh: dict[str, _Mark] = {}
        starts = self._start[window]
        for name, fallback in fallbacks.items():
            last = self._last.get(name)
            start = starts.get(name)
            if last is None or start is None or last[2] <= start[2]:
                out[name] = fallback
            else:
                out[name] = max(0.0, (last[1] - start[1]) / (last[2] - start[2]) * 100.0)
            if last is not None:
                fresh[name] = last
        self._start[window] = fresh
        if len(self._last) > len(fallbacks):
            self._last = {n: m for n, m in self._last.items() if n in fallbacks}
        return out


# ----------------------------------------------------------------------------- host


def dom0_balloons(info: common_pb2.HostInfo, dom0: common_pb2.Domain | None) -> bool:
    """Whether libxl may take memory back from Domain-0 for guests (xl.conf autoballoon=auto)."""
    cmdline = info.raw.get("xen_commandline")
    if cmdline is not None:
        return _DOM0_MEM.search(cmdline) is None
    # No command line reported: a Domain-0 without a memory ceiling, or below it, balloons.
    if dom0 is None:
        return False
    return dom0.max_memory_kib == 0 or dom0.max_memory_kib > dom0.memory_kib


def dom0_reclaimable_kib(
    info: common_pb2.HostInfo,
    dom0: common_pb2.Domain | None,
    min_memory_mib: int = DEFAULT_DOM0_MIN_MEMORY_MIB,
) -> int:
    """Memory Domain-0 holds that libxl would balloon away from it for a new guest."""
    if dom0 is None or not dom0_balloons(info, dom0):
        return 0
    return max(0, dom0.memory_kib - min_memory_mib * KIB_PER_MIB)


def memory_kib(
    info: common_pb2.HostInfo,
    dom0: common_pb2.Domain | None,
    min_memory_mib: int = DEFAULT_DOM0_MIN_MEMORY_MIB,
) -> tuple[int, int, int]:
    """(TOTALMEMORY, USEDMEMORY, FREEMEMORY) in KiB."""
    total = info.total_memory_mib * KIB_PER_MIB
    free = info.free_memory_mib * KIB_PER_MIB + dom0_reclaimable_kib(info, dom0, min_memory_mib)
    free = min(free, total)
    return total, total - free, free


def total_cpu(info: common_pb2.HostInfo) -> int:
    return info.nr_cpus * 100


def host_usage(
    info: common_pb2.HostInfo,
    domains: Iterable[common_pb2.Domain],
    cpu_percent: Mapping[str, float],
    dom0: common_pb2.Domain | None,
    dom0_min_memory_mib: int = DEFAULT_DOM0_MIN_MEMORY_MIB,
) -> monitor_pb2.HostUsage:
    """MONITOR_HOST: `cpu_percent` holds every domain's CPU%, Domain-0 included."""
    used_cpu = round(sum(cpu_percent.values()))
    total = total_cpu(info)
    _, used_memory, free_memory = memory_kib(info, dom0, dom0_min_memory_mib)
    rx = tx = 0
    for domain in domains:
        rx += domain.net_rx_bytes
        tx += domain.net_tx_bytes
    return monitor_pb2.HostUsage(
        used_cpu=used_cpu,
        free_cpu=max(0, total - used_cpu),
        used_memory_kib=used_memory,
        free_memory_kib=free_memory,
        net_rx_bytes=rx,
        net_tx_bytes=tx,
    )


def _same_path(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def system_host(
    info: common_pb2.HostInfo,
    datastores: Iterable[common_pb2.DatastoreUsage],
    datastore_location: str,
    wild_vms: Iterable[monitor_pb2.WildVm] = (),
) -> monitor_pb2.SystemHost:
    """SYSTEM_HOST: what rarely changes, plus the wild VMs with their import templates."""
    system = monitor_pb2.SystemHost(
        hypervisor="xen",
        total_cpu=total_cpu(info),
        cpu_speed_mhz=info.cpu_mhz,
        total_memory_kib=info.total_memory_mib * KIB_PER_MIB,
        arch=info.arch,
        model_name=info.model_name,
        hostname=info.hostname,
        xen_version=info.xen_version,
        wild_vms=wild_vms,
    )
    for usage in datastores:
        if datastore_location and _same_path(usage.path, datastore_location):
            system.datastore_location.CopyFrom(usage)
        else:
            system.datastores.append(usage)
    return system


# ----------------------------------------------------------------------------- VMs


@functools.lru_cache(maxsize=1 << 16)
def _disk_id(path: str) -> int | None:
    match = _DISK_FILE.search(path)
    return int(match.group(1)) if match else None


def add_disk_sizes(vm: monitor_pb2.VmMonitoring, domain: common_pb2.Domain) -> None:
    """DISK_SIZE of every disk whose size the host could tell (upstream computed and dropped them).

    OpenNebula names a VM's disk files `<system ds>/<vm id>/disk.<disk id>`; a disk whose
    path says nothing (a wild VM's) gets its position. MiB are rounded up: a disk that holds
    anything holds at least 1 MiB.
    """
    add = vm.disk_sizes.add
    for index, disk in enumerate(domain.disks):
        size = disk.size_bytes
        if size:
            disk_id = _disk_id(disk.pdev_path)
            add(disk_id=index if disk_id is None else disk_id, size_mib=-(-size // BYTES_PER_MIB))


def disk_sizes(domain: common_pb2.Domain) -> list[monitor_pb2.DiskSize]:
    vm = monitor_pb2.VmMonitoring()
    add_disk_sizes(vm, domain)
    return list(vm.disk_sizes)


def fill_vm_monitoring(
    vm: monitor_pb2.VmMonitoring, domain: common_pb2.Domain, vm_id: int, cpu_percent: float
) -> None:
    """MONITOR_VM of one domain into `vm` (built in place: copying messages is what costs here).

    Traffic counters are cumulative since the domain started on this host.
    """
    vm.vm_id = vm_id
    vm.deploy_id = domain.name
    vm.cpu = round(cpu_percent, 2)
    vm.memory_kib = domain.memory_kib
    vm.net_rx_bytes = domain.net_rx_bytes
    vm.net_tx_bytes = domain.net_tx_bytes
    vm.disk_read_bytes = domain.block_read_bytes
    vm.disk_write_bytes = domain.block_write_bytes
    vm.disk_read_iops = domain.block_read_ops
    vm.disk_write_iops = domain.block_write_ops
    if domain.disks:
        add_disk_sizes(vm, domain)


def vm_monitoring(domain: common_pb2.Domain, vm_id: int, cpu_percent: float) -> monitor_pb2.VmMonitoring:
    vm = monitor_pb2.VmMonitoring()
    fill_vm_monitoring(vm, domain, vm_id, cpu_percent)
    return vm


# ----------------------------------------------------------------------------- events


def timestamp(seconds: float) -> Timestamp:
    whole = math.floor(seconds)
    return Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


def event(host_id: int, at: float, **payload: object) -> monitor_pb2.MonitorEvent:
    """A MonitorEvent with one payload, e.g. `event(3, t, beacon=monitor_pb2.Beacon())`."""
    return monitor_pb2.MonitorEvent(host_id=host_id, timestamp=timestamp(at), **payload)  # type: ignore[arg-type]
