"""State model of a simulated Xen host: pure data and rules, no I/O.

Time never passes in the background.  Every command loads the state and calls
``HostState.advance(now)``, which replays what happened since the last look: CPU seconds and
device counters grow while a guest runs, a requested shutdown completes after the guest's
shutdown time, xl's per-domain monitor destroys (or restarts) a shut-down guest a moment later.
"""

from __future__ import annotations

from simxen.facts import HostFacts
from simxen.records import dataclass, field

# typing, copy and dataclasses are not imported at run time: every simulated xl call loads this
# module, and those imports would cost it more CPU than everything else it does.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from typing import Any

INVALID_DOMID = 4294967295
LIBXL_MAXMEM_CONSTANT_KB = 1024  # libxl adds this slack to a guest's maxmem
# An HVM guest's emulated VGA RAM is not counted in its current memory: 256 MiB showed as
# 254252 KiB (xl list "248") on the reference host.
HVM_HIDDEN_KB = 7892

SHUTDOWN_POWEROFF = 0
SHUTDOWN_REBOOT = 1
SHUTDOWN_SUSPEND = 2
SHUTDOWN_CRASH = 3
SHUTDOWN_WATCHDOG = 4
SHUTDOWN_SOFT_RESET = 5
_REASON_LETTERS = "-rscwS"

# Key orders of libxl's IDL (libxl_types.idl, Xen 4.17): libxl prints struct members in this
# order, so keys the toolstack fills in must be inserted at their IDL position.
C_INFO_ORDER = [
    "type", "hap", "oos", "ssidref", "ssid_label", "name", "domid", "uuid", "xsdata",
    "platformdata", "poolid", "pool_name", "run_hotplug_scripts", "driver_domain", "passthrough",
    "xend_suspend_evtchn_compat",
]  # fmt: skip
B_INFO_ORDER = [
    "max_vcpus", "avail_vcpus", "cpumap", "nodemap", "vcpu_hard_affinity", "vcpu_soft_affinity",
    "numa_placement", "tsc_mode", "max_memkb", "target_memkb", "video_memkb", "shadow_memkb",
    "iommu_memkb", "rtc_timeoffset", "exec_ssidref", "exec_ssid_label", "localtime",
    "disable_migrate", "cpuid", "blkdev_start", "vnuma_nodes", "max_grant_frames",
    "max_maptrack_frames", "max_grant_version", "device_model_version",
    "device_model_stubdomain", "stubdomain_memkb", "stubdomain_kernel", "stubdomain_cmdline",
    "stubdomain_ramdisk", "device_model", "device_model_ssidref", "device_model_ssid_label",
    "device_model_user", "extra", "extra_pv", "extra_hvm", "sched_params", "ioports", "irqs",
    "iomem", "claim_mode", "event_channels", "kernel", "cmdline", "ramdisk", "device_tree", "acpi",
    "bootloader", "bootloader_args", "bootloader_restrict", "bootloader_user", "timer_mode",
    "nested_hvm", "apic", "dm_restrict", "tee", "type.hvm", "type.pv", "type.pvh", "arch_arm",
    "arch_x86", "altp2m", "vmtrace_buf_kb", "vpmu",
]  # fmt: skip
CONFIG_ORDER = [
    "c_info", "b_info", "disks", "nics", "pcidevs", "rdms", "dtdevs", "vfbs", "vkbs", "vtpms",
    "p9s", "pvcallsifs", "vdispls", "vsnds", "channels", "connectors", "usbctrls", "usbdevs",
    "on_poweroff", "on_reboot", "on_watchdog", "on_crash", "on_soft_reset",
]  # fmt: skip
NIC_ORDER = [
    "backend_domid", "backend_domname", "devid", "mtu", "vlan", "model", "mac", "ip", "bridge",
    "ifname", "script", "nictype", "rate_bytes_per_interval", "rate_interval_usecs", "gatewaydev",
]  # fmt: skip
DISK_ORDER = [
    "backend_domid", "backend_domname", "pdev_path", "vdev", "backend", "format", "script",
    "removable", "readwrite", "is_cdrom", "direct_io_safe", "discard_enable", "colo_enable",
    "colo_restore_enable",
]  # fmt: skip


def copy_data(value: Any) -> Any:
    """``copy.deepcopy`` for JSON-like documents (dicts, lists, scalars), without importing copy."""
    kind = type(value)
    if kind is dict:
        return {k: copy_data(v) for k, v in value.items()}
    if kind is list:
        return [copy_data(v) for v in value]
    if kind in (str, int, float, bool, type(None)):
        return value
    import copy  # anything else (tuples of lists, other containers): the real thing

    return copy.deepcopy(value)


def set_in_order(d: dict[str, Any], key: str, value: Any, order: list[str]) -> None:
    """Set ``d[key]``, inserting a new key where libxl's IDL order puts it."""
    if key in d or key not in order:
        d[key] = value
        return
    rank = order.index(key)
    items = list(d.items())
    pos = len(items)
    for i, (k, _) in enumerate(items):
        if k in order and order.index(k) > rank:
            pos = i
            break
    items.insert(pos, (key, value))
    d.clear()
    d.update(items)


def random_mac(rng: random.Random | None = None) -> str:
    import random as _random

    r = rng or _random.Random()
    return "00:16:3e:" + ":".join(f"{r.randrange(256):02x}" for _ in range(3))


def vdev_number(vdev: str) -> int | None:
    """Xen's device number of a virtual disk name (libxl__device_disk_dev_number), or None."""
    if vdev.isdigit():
        n = int(vdev)
        return n if n <= 0x7FFFFFFF else None

    def letters(s: str) -> tuple[int, str] | None:
        # "a".."z", "aa".. as in Linux's naming: a=0, z=25, aa=26
        i = 0
        n = 0
        while i < len(s) and s[i].isalpha() and s[i].islower():
            n = n * 26 + (ord(s[i]) - ord("a") + 1)
            i += 1
        if i == 0:
            return None
        return n - 1, s[i:]

    for prefix in ("xvd", "hd", "sd"):
        if not vdev.startswith(prefix):
            continue
        parsed = letters(vdev[len(prefix) :])
        if parsed is None:
            return None
        disk, rest = parsed
        if rest == "":
            part = 0
        elif rest.isdigit() and not rest.startswith("0"):
            part = int(rest)
        else:
            return None
        if prefix == "xvd":
            if disk < 16 and part < 16:
                return (202 << 8) | (disk << 4) | part
            if disk < (1 << 20) and part < 256:
                return (1 << 28) | (disk << 8) | part
            return None
        if prefix == "hd":
            if disk > 3 or part > 63:
                return None
            return ((3 if disk < 2 else 22) << 8) | ((disk & 1) << 6) | part
        if disk > 15 or part > 15:
            return None
        return (8 << 8) | (disk << 4) | part
    return None


@dataclass
class Disk:
    devid: int
    vdev: str
    spec: dict[str, Any]
    evtch: int
    ring_ref: int
    attached_run: float = 0.0  # the domain's run_seconds when attached: counters start there


@dataclass
class Nic:
    devid: int
    spec: dict[str, Any]
    rref_tx: int
    rref_rx: int
    attached_run: float = 0.0
    evtch: int = -1
    # A vif whose hotplug script failed (missing bridge) stays listed, as on the real host.
    broken_bridge: str | None = None

    @property
    def mac(self) -> str:
        return str(self.spec.get("mac", ""))


@dataclass
class GuestRates:
    net_rx_bps: float = 2048.0
    net_tx_bps: float = 1024.0
    vbd_rd_rps: float = 2.0
    vbd_wr_rps: float = 1.0
    sectors_per_request: int = 8


@dataclass
class Domain:
    domid: int
    name: str
    uuid: str
    dtype: str
    config: dict[str, Any]  # libxl domain config as retrieved, without "disks" and "nics"
    max_memkb: int
    target_memkb: int
    max_vcpus: int
    online_vcpus: int
    started_at: float
    last_update: float
    load: float
    weight: int = 256
    cap: int = 0
    disks: list[Disk] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)
    run_seconds: float = 0.0
    cpu_seconds: float = 0.0
    paused: bool = False
    shutdown_reason: int | None = None
    pending: str | None = None  # "poweroff" | "reboot" asked of the guest, done at pending_at
    pending_at: float = 0.0
    cleanup_at: float | None = None  # when xl's monitor acts on the shutdown
    monitor: bool = True  # the background `xl create` process watching the domain
    ignore_acpi: bool = False
    stale_devices: int = 0  # unplugged devices libxl still has in its JSON (save warns)
    next_evtch: int = 10
    next_ring_ref: int = 522
    rates: GuestRates = field(default_factory=GuestRates)
    # A booting guest keeps its vCPUs busy and is neither running nor blocked in `xl list`
    # ("------" right after create on the reference host) until this time.
    boot_until: float = 0.0

    # ----- derived views -----
    @property
    def is_dom0(self) -> bool:
        return self.domid == 0

    @property
    def running(self) -> bool:
        return not self.paused and self.shutdown_reason is None

    def current_memkb(self) -> int:
        if self.dtype == "hvm":
            return max(self.target_memkb - HVM_HIDDEN_KB, 0)
        return self.target_memkb

    def maxmem_kb(self) -> int:
        return self.max_memkb if self.is_dom0 else self.max_memkb + LIBXL_MAXMEM_CONSTANT_KB

    def cpu_ns(self) -> int:
        return int(self.cpu_seconds * 1e9)

    def on_action(self, reason: int) -> str:
        key = {
            SHUTDOWN_POWEROFF: "on_poweroff",
            SHUTDOWN_REBOOT: "on_reboot",
            SHUTDOWN_CRASH: "on_crash",
            SHUTDOWN_WATCHDOG: "on_watchdog",
            SHUTDOWN_SOFT_RESET: "on_soft_reset",
        }.get(reason)
        if key is None:
            return "destroy"
        default = "soft_reset" if key == "on_soft_reset" else "destroy"
        return str(self.config.get(key, default))

    def _scheduling(self, now: float) -> tuple[bool, bool]:
        """(running, blocked) as the hypervisor would report them right now."""
        if self.is_dom0:
            return True, False
        if not self.running or self.cleanup_at is not None:
            return False, False
        if now < self.boot_until:
            return False, False
        busy = self.load >= 0.5
        return busy, not busy

    def xl_state(self, now: float) -> str:
        """The six state letters of ``xl list`` (r b p s reason d)."""
        r, b = self._scheduling(now)
        # xl's monitor pauses a shut-down guest while it destroys it ("--ps--").
        paused = self.paused or self.cleanup_at is not None
        shut = self.shutdown_reason is not None
        reason = _REASON_LETTERS[self.shutdown_reason] if shut and self.shutdown_reason is not None else "-"
        return "".join([
            "r" if r else "-", "b" if b else "-", "p" if paused else "-", "s" if shut else "-",
            reason if shut else "-", "-",
        ])  # fmt: skip

    def xentop_state(self, now: float) -> str:
        """xentop's letters, in its own order: dying, shutdown, blocked, crashed, paused, running."""
        r, b = self._scheduling(now)
        paused = self.paused or self.cleanup_at is not None
        crashed = self.shutdown_reason == SHUTDOWN_CRASH
        shut = self.shutdown_reason is not None and not crashed
        return "".join([
            "-", "s" if shut else "-", "b" if b else "-", "c" if crashed else "-",
            "p" if paused else "-", "r" if r else "-",
        ])  # fmt: skip

    def nic_counters(self, nic: Nic) -> dict[str, int]:
        # a half-made vif never passed a packet
        secs = 0.0 if nic.broken_bridge is not None else max(self.run_seconds - nic.attached_run, 0.0)
        rx = int(secs * self.rates.net_rx_bps)
        tx = int(secs * self.rates.net_tx_bps)
        return {"rx_bytes": rx, "rx_pkts": rx // 68, "tx_bytes": tx, "tx_pkts": tx // 84}

    def vbd_counters(self, disk: Disk) -> dict[str, int]:
        secs = max(self.run_seconds - disk.attached_run, 0.0)
        rd = int(secs * self.rates.vbd_rd_rps)
        wr = int(secs * self.rates.vbd_wr_rps)
        spr = self.rates.sectors_per_request
        return {"oo": 0, "rd": rd, "wr": wr, "rsect": rd * spr, "wsect": wr * spr}

    def vcpu_seconds(self) -> list[float]:
        n = max(self.online_vcpus, 1)
        return [self.cpu_seconds / n] * self.online_vcpus

    # ----- config -----
    def retrieved_config(self, *, for_save: bool = False) -> dict[str, Any]:
        """The domain config libxl reports (``xl list -l``) or streams (save, migrate)."""
        cfg: dict[str, Any] = copy_data(self.config)
        if self.is_dom0:
            cfg["b_info"]["sched_params"] = self._sched_params()
            return cfg
        c_info = cfg.setdefault("c_info", {})
        c_info["name"] = self.name
        if for_save:
            # xl save/migrate reset the domid (no -D), and libxl omits a default value.
            c_info.pop("domid", None)
        else:
            set_in_order(c_info, "domid", INVALID_DOMID, C_INFO_ORDER)
        set_in_order(c_info, "uuid", self.uuid, C_INFO_ORDER)
        b_info = cfg.setdefault("b_info", {})
        set_in_order(b_info, "target_memkb", self.target_memkb, B_INFO_ORDER)
        set_in_order(b_info, "sched_params", self._sched_params(), B_INFO_ORDER)
        devices: dict[str, Any] = {}
        if self.disks:
            devices["disks"] = [copy_data(d.spec) for d in self.disks]
        if self.nics:
            devices["nics"] = [copy_data(n.spec) for n in self.nics]
        for key, value in devices.items():
            set_in_order(cfg, key, value, CONFIG_ORDER)
        return cfg

    def _sched_params(self) -> dict[str, Any]:
        sched = self.config.get("b_info", {}).get("sched_params", {}).get("sched", "credit")
        return {"sched": sched, "weight": self.weight, "cap": self.cap}

    # ----- serialisation -----
    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose (asdict() deep-copies, which every xl call would pay for): the
        # result is only handed to json.dumps.
        d = dict(self.__dict__)
        d["disks"] = [dict(x.__dict__) for x in self.disks]
        d["nics"] = [dict(x.__dict__) for x in self.nics]
        d["rates"] = dict(self.rates.__dict__)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Domain:
        d = dict(data)
        d["disks"] = [Disk(**x) for x in d.get("disks", [])]
        d["nics"] = [Nic(**x) for x in d.get("nics", [])]
        d["rates"] = GuestRates(**d.get("rates", {}))
        return cls(**d)


class CreateError(Exception):
    """A create/restore the real toolstack refuses: its stderr lines and xl's exit code."""

    def __init__(self, lines: list[str], rc: int = 3, consumed_domid: bool = True) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.rc = rc
        self.consumed_domid = consumed_domid


def _destroy_failed_lines(domid: int) -> list[str]:
    return [
        f"libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain {domid}:Non-existant domain",
        f"libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain {domid}:Unable to destroy guest",
        f"libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain {domid}:Destruction of domain failed",
    ]


def hotplug_failure_lines(bridge: str, action: str) -> list[str]:
    import random as _random

    pid = _random.randrange(300, 32000)
    return [
        "libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: "
        f"/etc/xen/scripts/vif-bridge {action} [{pid}] exited with error status 1",
        "libxl: error: libxl_device.c:1337:device_hotplug_child_death_cb: "
        f"script: Could not find bridge device {bridge}",
    ]


def no_domain_type_error(domid: int) -> str:
    """What libxl logs first when a numeric domid has no domain behind it."""
    return f"libxl: error: libxl_dom.c:54:libxl__domain_type: unable to get domain type for domid={domid}"


def disk_stat_error(vdev: str, path: str) -> str:
    return (
        f"libxl: error: libxl_device.c:455:libxl__device_disk_set_backend: Disk vdev={vdev} "
        f"failed to stat: {path}: No such file or directory"
    )


def normalise_nic(spec: dict[str, Any], devid: int, dtype: str, rng: random.Random | None = None) -> None:
    """Fill in what libxl adds to a vif when it plugs it (devid, mac, bridge, nictype)."""
    set_in_order(spec, "devid", devid, NIC_ORDER)
    if "mac" not in spec:
        set_in_order(spec, "mac", random_mac(rng), NIC_ORDER)
    if "bridge" not in spec:
        set_in_order(spec, "bridge", "xenbr0", NIC_ORDER)
    if "nictype" not in spec:
        set_in_order(spec, "nictype", "vif_ioemu" if dtype == "hvm" else "vif", NIC_ORDER)


def normalise_disk(spec: dict[str, Any]) -> None:
    """What libxl adds to a disk's stored config when it plugs it: its COLO default, last.

    (The backend it picks is not stored: a running domain's `xl list -l` shows no "backend"
    unless the config named one, as the real-Xen tier's comparison showed.)
    """
    if "colo_restore_enable" not in spec:
        set_in_order(spec, "colo_restore_enable", "False", DISK_ORDER)


@dataclass
class HostState:
    boot_time: float
    next_domid: int = 1
    domains: list[Domain] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)

    # ----- construction / serialisation -----
    @classmethod
    def boot(cls, facts: HostFacts, now: float) -> HostState:
        mem = facts.dom0_memory_mb * 1024
        dom0 = Domain(
            domid=0,
            name="Domain-0",
            uuid="00000000-0000-0000-0000-000000000000",
            dtype="pv",
            config={
                "c_info": {"type": "pv", "name": "Domain-0"},
                "b_info": {
                    "max_memkb": mem,
                    "target_memkb": mem - 1,
                    "sched_params": {"sched": facts.scheduler, "weight": 256, "cap": 0},
                    "type.pv": {},
                    "arch_arm": {},
                    "arch_x86": {},
                },
            },
            max_memkb=mem,
            target_memkb=mem,
            max_vcpus=facts.dom0_vcpus,
            online_vcpus=facts.dom0_vcpus,
            started_at=now - facts.dom0_uptime_seconds,
            last_update=now,
            load=facts.dom0_load,
            cpu_seconds=facts.dom0_cpu_seconds,
        )
        return cls(boot_time=now - facts.dom0_uptime_seconds, domains=[dom0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "boot_time": self.boot_time,
            "next_domid": self.next_domid,
            "domains": [d.to_dict() for d in self.domains],
            "faults": self.faults,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostState:
        return cls(
            boot_time=data["boot_time"],
            next_domid=data["next_domid"],
            domains=[Domain.from_dict(d) for d in data["domains"]],
            faults=list(data.get("faults", [])),
        )

    # ----- lookup -----
    def get(self, domid: int) -> Domain | None:
        for d in self.domains:
            if d.domid == domid:
                return d
        return None

    def by_name(self, name: str) -> Domain | None:
        for d in self.domains:
            if d.name == name:
                return d
        return None

    def resolve(self, qualifier: str) -> tuple[int | None, Domain | None]:
        """libxl_domain_qualifier_to_domid: digits are a domid (existing or not), else a name."""
        if qualifier.isdigit():
            domid = int(qualifier)
            return domid, self.get(domid)
        dom = self.by_name(qualifier)
        return (dom.domid if dom else None), dom

    def alloc_domid(self) -> int:
        domid = self.next_domid
        self.next_domid += 1
        return domid

    def add(self, dom: Domain) -> None:
        self.domains.append(dom)
        self.domains.sort(key=lambda d: d.domid)

    def remove(self, domid: int) -> None:
        self.domains = [d for d in self.domains if d.domid != domid]

    def guests(self) -> list[Domain]:
        return [d for d in self.domains if not d.is_dom0]

    def free_memory_kb(self, facts: HostFacts) -> int:
        used = sum(d.max_memkb + LIBXL_MAXMEM_CONSTANT_KB for d in self.guests())
        return max(facts.free_memory_mb * 1024 - used, 0)

    # ----- time -----
    @staticmethod
    def _integrate(dom: Domain, t: float) -> None:
        dt = t - dom.last_update
        if dt <= 0:
            return
        if dom.running:
            booting = max(min(t, dom.boot_until) - dom.last_update, 0.0)
            dom.run_seconds += dt
            dom.cpu_seconds += (booting + (dt - booting) * dom.load) * max(dom.online_vcpus, 1)
        elif dom.paused and dom.pending is not None and dom.shutdown_reason is None:
            dom.pending_at += dt  # a paused guest cannot act on the request yet
        dom.last_update = t

    @staticmethod
    def _next_event(dom: Domain) -> float | None:
        times = []
        if dom.pending is not None and dom.shutdown_reason is None and not dom.paused:
            times.append(dom.pending_at)
        if dom.cleanup_at is not None:
            times.append(dom.cleanup_at)
        return min(times) if times else None

    def advance(self, now: float, facts: HostFacts) -> bool:
        """Replay everything that happened up to ``now`` (in time order, across domains).

        Returns whether an event happened (a shutdown completed, xl's monitor acted).  Without
        one, advancing only integrated counters, which is linear in time: advancing the stored
        state again later gives the same result, so it need not be saved.
        """
        fired = False
        while True:
            due = [(t, d.domid) for d in self.domains if (t := self._next_event(d)) is not None and t <= now]
            if not due:
                break
            t, domid = min(due)
            dom = self.get(domid)
            assert dom is not None
            self._integrate(dom, t)
            self._fire(dom, t, facts)
            fired = True
        for dom in self.domains:
            self._integrate(dom, now)
        return fired

    def _fire(self, dom: Domain, t: float, facts: HostFacts) -> None:
        if dom.cleanup_at is not None and dom.cleanup_at <= t:
            dom.cleanup_at = None
            reason = dom.shutdown_reason if dom.shutdown_reason is not None else SHUTDOWN_POWEROFF
            self.apply_shutdown_action(dom, dom.on_action(reason), t, facts)
            return
        if dom.pending is not None and dom.pending_at <= t:
            reason = SHUTDOWN_REBOOT if dom.pending == "reboot" else SHUTDOWN_POWEROFF
            dom.pending = None
            self.guest_shutdown(dom, reason, t, facts)

    def guest_shutdown(self, dom: Domain, reason: int, t: float, facts: HostFacts) -> None:
        """The guest has shut down (by itself or as asked); xl's monitor will act shortly."""
        dom.shutdown_reason = reason
        dom.pending = None
        if dom.monitor:
            dom.cleanup_at = t + facts.cleanup_seconds

    def apply_shutdown_action(self, dom: Domain, action: str, t: float, facts: HostFacts) -> None:
        if action in ("destroy", "coredump-destroy"):
            self.remove(dom.domid)
        elif action in ("restart", "rename-restart", "coredump-restart", "soft_reset"):
            self.restart(dom, t, facts)
        else:  # "preserve": the domain stays shut down and the monitor exits
            dom.monitor = False

    def restart(self, dom: Domain, t: float, facts: HostFacts) -> None:
        """xl's monitor destroys the domain and builds it again: same name and uuid, new domid."""
        self.remove(dom.domid)
        dom.domid = self.alloc_domid()
        dom.started_at = t
        dom.boot_until = t + facts.boot_seconds
        dom.last_update = t
        dom.run_seconds = 0.0
        dom.cpu_seconds = 0.0
        dom.paused = False
        dom.shutdown_reason = None
        dom.pending = None
        dom.cleanup_at = None
        dom.stale_devices = 0
        for d in dom.disks:
            d.attached_run = 0.0
        for n in dom.nics:
            n.attached_run = 0.0
        self.add(dom)

    # ----- building domains -----
    def build_domain(
        self,
        config: dict[str, Any],
        now: float,
        facts: HostFacts,
        *,
        paused: bool = False,
        name: str | None = None,
        rng: random.Random | None = None,
        booting: bool = True,
    ) -> Domain:
        """Create a guest from a libxl domain config (``xl -N create`` JSON or a saved config).

        Raises ``CreateError`` with the messages the real toolstack prints when it refuses.
        The domid is used up even when creation fails, as on the real host.  A restored or
        migrated guest is not ``booting``: it carries on where it was.
        """
        cfg: dict[str, Any] = copy_data(config)
        c_info = cfg.setdefault("c_info", {})
        b_info = cfg.setdefault("b_info", {})
        dname = name if name is not None else str(c_info.get("name", ""))
        dtype = str(c_info.get("type", "pv"))
        domid = self.alloc_domid()

        if self.by_name(dname) is not None:
            raise CreateError(
                [
                    "libxl: error: libxl_domain.c:81:libxl__domain_rename: "
                    f'Domain {domid}:Domain with name "{dname}" already exists.',
                    f"libxl: error: libxl_create.c:1296:initiate_domain_create: Domain {domid}:"
                    "cannot make domain: -6",
                    *_destroy_failed_lines(domid),
                ]
            )

        # libxl's defaults for what the config left out
        if "max_vcpus" not in b_info:
            set_in_order(b_info, "max_vcpus", 1, B_INFO_ORDER)
            set_in_order(b_info, "avail_vcpus", [0], B_INFO_ORDER)
        if "max_memkb" not in b_info:
            set_in_order(b_info, "max_memkb", 32768, B_INFO_ORDER)
        if "target_memkb" not in b_info:
            set_in_order(b_info, "target_memkb", b_info["max_memkb"], B_INFO_ORDER)
        set_in_order(b_info, "video_memkb", 8192 if dtype == "hvm" else 0, B_INFO_ORDER)
        sched = b_info.get("sched_params", {})
        weight = int(sched.get("weight", 256))
        cap = int(sched.get("cap", 0))
        set_in_order(b_info, "sched_params", {"sched": facts.scheduler}, B_INFO_ORDER)
        arch = b_info.get("arch_x86")
        if isinstance(arch, dict):
            arch.setdefault("msr_relaxed", "False")
        else:
            set_in_order(b_info, "arch_x86", {"msr_relaxed": "False"}, B_INFO_ORDER)
        if "uuid" not in c_info:
            import uuid as uuidlib

            c_info["uuid"] = str(uuidlib.uuid4())
        set_in_order(c_info, "domid", INVALID_DOMID, C_INFO_ORDER)

        max_memkb = int(b_info["max_memkb"])
        if max_memkb + LIBXL_MAXMEM_CONSTANT_KB > self.free_memory_kb(facts):
            raise CreateError(
                [
                    "xc: error: panic: xc_dom_boot.c:121: xc_dom_boot_mem_init: can't allocate low "
                    "memory for domain: Out of memory: Internal error",
                    "libxl: error: libxl_dom.c:593:libxl__build_dom: xc_dom_boot_mem_init failed: "
                    "Cannot allocate memory",
                    f"libxl: error: libxl_create.c:1676:domcreate_rebuild_done: Domain {domid}:"
                    "cannot (re-)build domain: -3",
                ]
            )

        disks: list[Disk] = []
        for i, spec in enumerate(cfg.pop("disks", [])):
            vdev = str(spec.get("vdev", ""))
            number = vdev_number(vdev)
            if number is None:
                raise CreateError(
                    [
                        "libxl: error: libxl_utils.c:593:libxl_devid_to_device_disk: "
                        f"Invalid or unsupported virtual disk identifier {vdev}",
                        f"libxl: error: libxl_create.c:1305:initiate_domain_create: Domain {domid}:"
                        f"Unable to set disk defaults for disk {i}",
                    ]
                )
            if any(d.devid == number for d in disks):
                raise CreateError(
                    [
                        f"libxl: error: libxl_device.c:1110:libxl__device_add_async: Domain {domid}:"
                        f"device vbd {number} already exists in xenstore",
                        f"libxl: error: libxl_create.c:1876:domcreate_launch_dm: Domain {domid}:"
                        "unable to add disk devices",
                    ]
                )
            path = str(spec.get("pdev_path", ""))
            if facts.check_disk_paths and path and not _path_exists(path):
                raise CreateError(
                    [
                        disk_stat_error(vdev, path),
                        f"libxl: error: libxl_create.c:1305:initiate_domain_create: Domain {domid}:"
                        f"Unable to set disk defaults for disk {i}",
                    ]
                )
            normalise_disk(spec)
            disks.append(Disk(devid=number, vdev=vdev, spec=spec, evtch=0, ring_ref=0))

        nics: list[Nic] = []
        for i, spec in enumerate(cfg.pop("nics", [])):
            devid = int(spec.get("devid", i))
            normalise_nic(spec, devid, dtype, rng)
            bridge = str(spec["bridge"])
            if bridge not in facts.bridges:
                raise CreateError(
                    [
                        *hotplug_failure_lines(bridge, "online"),
                        f"libxl: error: libxl_create.c:1882:domcreate_attach_devices: Domain {domid}:"
                        "unable to add nic devices",
                        *hotplug_failure_lines(bridge, "offline"),
                    ]
                )
            nics.append(Nic(devid=devid, spec=spec, rref_tx=520 + 514 * devid, rref_rx=521 + 514 * devid))

        avail = b_info.get("avail_vcpus")
        max_vcpus = int(b_info.get("max_vcpus", 1))
        dom = Domain(
            domid=domid,
            name=dname,
            uuid=str(c_info["uuid"]),
            dtype=dtype,
            config=cfg,
            max_memkb=max_memkb,
            target_memkb=int(b_info["target_memkb"]),
            max_vcpus=max_vcpus,
            online_vcpus=len(avail) if isinstance(avail, list) else max_vcpus,
            started_at=now,
            last_update=now,
            boot_until=now + facts.boot_seconds if booting else now,
            load=facts.guest_load,
            weight=weight,
            cap=cap,
            paused=paused,
            rates=GuestRates(
                net_rx_bps=facts.guest_net_rx_bps,
                net_tx_bps=facts.guest_net_tx_bps,
                vbd_rd_rps=facts.guest_vbd_rd_rps,
                vbd_wr_rps=facts.guest_vbd_wr_rps,
                sectors_per_request=facts.sectors_per_request,
            ),
        )
        for disk in disks:
            disk.evtch, disk.ring_ref = dom.next_evtch, dom.next_ring_ref
            dom.next_evtch += 1
            dom.next_ring_ref += 2
        dom.disks = disks
        dom.nics = nics
        self.add(dom)
        return dom


def _path_exists(path: str) -> bool:
    import os

    return os.path.exists(path)
