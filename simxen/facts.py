"""Host facts: what ``xl info`` reports and how the simulated host behaves over time.

Defaults reproduce the reference host of tests/fixtures/xen-4.17 (Xen 4.17.5 in QEMU, 2 CPUs,
2 GiB, dom0 with 768 MiB and ``sched=credit``).  Every field can be overridden per host, e.g.
``SimHost.start(workdir, nr_cpus=8, total_memory_mb=65535)``.
"""

from __future__ import annotations

import os

from simxen import fastjson, records
from simxen.records import dataclass, field

TYPE_CHECKING = False  # typing is for the type checker only: xl imports this module on every call
if TYPE_CHECKING:
    from typing import Any

FACTS_FILE = "host.json"


@dataclass
class HostFacts:
    # --- uname (xl info's first lines) ---
    hostname: str = "xenhost"
    release: str = "6.1.0-50-amd64"
    version: str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)"
    machine: str = "x86_64"
    # --- physinfo ---
    nr_cpus: int = 2
    cores_per_socket: int = 2
    threads_per_core: int = 1
    nr_nodes: int = 1
    cpu_khz: int = 2596127
    hw_caps: str = "1fcbf3fd:f6d8320b:ec500800:00000077:00000005:018843a9:0000020c:00000000"
    virt_caps: str = "pv hvm hap shadow gnttab-v1 gnttab-v2"
    # 524287 pages print as "total_memory : 2047" and make dom0's 768 MiB show as 37.5 % in xentop,
    # exactly as on the reference host.
    total_pages: int = 524287
    # free_memory with only Domain-0 running; guests take their memory out of it.
    free_memory_mb: int = 1256
    # --- Domain-0 ---
    dom0_memory_mb: int = 768
    dom0_vcpus: int = 2
    dom0_cpu_seconds: float = 22.5
    dom0_load: float = 0.05
    dom0_uptime_seconds: float = 60.0
    # --- version info ---
    xen_major: int = 4
    xen_minor: int = 17
    xen_extra: str = ".5"
    xen_caps: str = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "
    scheduler: str = "credit"
    xen_pagesize: int = 4096
    platform_params: str = "virt_start=0xffff800000000000"
    xen_changeset: str = ""
    xen_commandline: str = (
        "console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=2 sched=credit "
        "loglvl=all guest_loglvl=all console_timestamps=boot noreboot "
    )
    cc_compiler: str = "x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
    cc_compile_by: str = "pkg-xen-devel"
    cc_compile_domain: str = "lists.alioth.debian.org"
    cc_compile_date: str = "Sat Nov 29 13:52:25 UTC 2025"
    build_id: str = "39a640e6f1412319235087391df9f1c5e13ae920"
    # --- credit scheduler pool parameters ---
    tslice_ms: int = 30
    ratelimit_us: int = 1000
    migration_delay_us: int = 0
    # --- environment of the host ---
    bridges: list[str] = field(default_factory=lambda: ["xenbr0"])
    # Real libxl stat()s a disk's backing path when it attaches it; set False for configs whose
    # images do not exist on this machine.
    check_disk_paths: bool = True
    # --- timing (seconds; the real host took 1-10 s for most of these) ---
    boot_seconds: float = 1.0  # a new guest shows "------" before it first blocks
    shutdown_seconds: float = 1.0  # guest's ACPI/PV shutdown until it reports "shut down"
    reboot_seconds: float = 1.0
    cleanup_seconds: float = 1.0  # xl's monitor destroys a shut-down guest after this ("--ps--")
    create_seconds: float = 0.0  # extra latency of create/restore/migrate-receive
    device_seconds: float = 0.0  # extra latency of block/network attach and detach
    # libxl waits this long for a guest to acknowledge a shutdown/reboot request (60 s in 4.17)
    pvcontrol_timeout_seconds: float = 60.0
    # --- guest activity (so monitoring has something to read) ---
    guest_load: float = 0.02  # CPU fraction per online vCPU
    guest_net_rx_bps: float = 2048.0
    guest_net_tx_bps: float = 1024.0
    guest_vbd_rd_rps: float = 2.0
    guest_vbd_wr_rps: float = 1.0
    sectors_per_request: int = 8

    @property
    def total_memory_kb(self) -> int:
        return self.total_pages * (self.xen_pagesize // 1024)

    @property
    def total_memory_mb(self) -> int:
        return self.total_pages // ((1 << 20) // self.xen_pagesize)

    @property
    def cpu_mhz(self) -> str:
        return f"{self.cpu_khz // 1000}.{self.cpu_khz % 1000:03d}"

    @property
    def xen_version(self) -> str:
        return f"{self.xen_major}.{self.xen_minor}{self.xen_extra}"

    def to_dict(self) -> dict[str, Any]:
        return records.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        return cls().updated(**data)

    def updated(self, **changes: Any) -> HostFacts:
        """A copy with ``changes`` applied; unknown names raise ``TypeError``."""
        known = {f.name for f in records.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown host fact(s): {', '.join(unknown)}")
        return records.replace(self, **changes)


def facts_field_names() -> list[str]:
    return [f.name for f in records.fields(HostFacts)]


def load_facts(state_dir: str | os.PathLike[str]) -> HostFacts:
    try:
        with open(os.path.join(state_dir, FACTS_FILE)) as f:
            data = fastjson.loads(f.read())
    except FileNotFoundError:
        return HostFacts()
    return HostFacts.from_dict(data)


def save_facts(state_dir: str | os.PathLike[str], facts: HostFacts) -> None:
    import json  # indented for people to read (fastjson only writes compact documents)

    from simxen.store import atomic_write

    atomic_write(os.path.join(state_dir, FACTS_FILE), json.dumps(facts.to_dict(), indent=2) + "\n")
