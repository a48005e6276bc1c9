# ruff: noqa: UP031  (the printf formats of xl and xentop, kept verbatim for exact columns)
"""Text output of the simulated toolstack, column for column as xl 4.17 and xentop print it.

Pure functions: state in, text out.  Formats are the printf formats of tools/xl and
tools/xentop, checked against the captures in tests/fixtures/xen-4.17.
"""

from __future__ import annotations

from simxen.facts import HostFacts
from simxen.model import Domain, HostState
from simxen.records import dataclass, field

# ----------------------------------------------------------------------------- xl info


def info_lines(facts: HostFacts, state: HostState, *, numa: bool = False) -> list[str]:
    free_mb = state.free_memory_kb(facts) // 1024
    lines = [
        f"host                   : {facts.hostname}",
        f"release                : {facts.release}",
        f"version                : {facts.version}",
        f"machine                : {facts.machine}",
        f"nr_cpus                : {facts.nr_cpus}",
        f"max_cpu_id             : {facts.nr_cpus - 1}",
        f"nr_nodes               : {facts.nr_nodes}",
        f"cores_per_socket       : {facts.cores_per_socket}",
        f"threads_per_core       : {facts.threads_per_core}",
        f"cpu_mhz                : {facts.cpu_mhz}",
        f"hw_caps                : {facts.hw_caps}",
        f"virt_caps              : {facts.virt_caps}",
        f"total_memory           : {facts.total_memory_mb}",
        f"free_memory            : {free_mb}",
        "sharing_freed_memory   : 0",
        "sharing_used_memory    : 0",
        "outstanding_claims     : 0",
        "free_cpus              : 0",
    ]
    if numa:
        lines += ["cpu_topology           :", "cpu:    core    socket     node"]
        per_socket = max(facts.cores_per_socket * facts.threads_per_core, 1)
        for cpu in range(facts.nr_cpus):
            core = cpu // max(facts.threads_per_core, 1)
            lines.append(f"{cpu:3d}:    {core:4d}     {cpu // per_socket:4d}     {0:4d}")
        lines += [
            "device topology        :",
            "device           node",
            "No device topology data available",
            "numa_info              :",
            "node:    memsize    memfree    distances",
            f"{0:4d}:    {facts.total_memory_mb:6d}     {free_mb:6d}      10",
        ]
    lines += [
        f"xen_major              : {facts.xen_major}",
        f"xen_minor              : {facts.xen_minor}",
        f"xen_extra              : {facts.xen_extra}",
        f"xen_version            : {facts.xen_version}",
        f"xen_caps               : {facts.xen_caps}",
        f"xen_scheduler          : {facts.scheduler}",
        f"xen_pagesize           : {facts.xen_pagesize}",
        f"platform_params        : {facts.platform_params}",
        f"xen_changeset          : {facts.xen_changeset}",
        f"xen_commandline        : {facts.xen_commandline}",
        f"cc_compiler            : {facts.cc_compiler}",
        f"cc_compile_by          : {facts.cc_compile_by}",
        f"cc_compile_domain      : {facts.cc_compile_domain}",
        f"cc_compile_date        : {facts.cc_compile_date}",
        f"build_id               : {facts.build_id}",
        "xend_config_format     : 4",
    ]
    return lines


def info_text(facts: HostFacts, state: HostState, *, numa: bool = False, only: str | None = None) -> str:
    lines = info_lines(facts, state, numa=numa)
    if only is None:
        return "".join(line + "\n" for line in lines)
    # maybe_printf(): a line is printed, value only, when it starts with the name and has ": ".
    out = []
    for line in lines:
        colon = line.find(":")
        if line.startswith(only) and colon >= 0 and line[colon + 1 : colon + 2] == " ":
            out.append(line[colon + 2 :] + "\n")
    return "".join(out)


# ----------------------------------------------------------------------------- xl list

LIST_HEADER = "Name                                        ID   Mem VCPUs\tState\tTime(s)"


def list_text(
    domains: list[Domain],
    now: float,
    facts: HostFacts,
    *,
    verbose: bool = False,
    context: bool = False,
    cpupool: bool = False,
    numa: bool = False,
) -> str:
    header = LIST_HEADER
    if verbose:
        header += "   UUID                            Reason-Code\tSecurity Label"
    if context and not verbose:
        header += "   Security Label"
    if cpupool:
        header += "         Cpupool"
    if numa:
        header += " NODE Affinity"
    out = [header + "\n"]
    for d in domains:
        row = "%-40s %5d %5d %5d     %s  %8.1f" % (
            d.name,
            d.domid,
            d.current_memkb() // 1024,
            d.online_vcpus,
            d.xl_state(now),
            d.cpu_seconds,
        )
        if verbose:
            row += " " + d.uuid
            row += " %8x" % d.shutdown_reason if d.shutdown_reason is not None else " %8s" % "-"
        if verbose or context:
            row += " %16s" % "-"
        if cpupool:
            row += "%16s" % "Pool-0"
        if numa:
            row += " all"
        out.append(row + "\n")
    return "".join(out)


def list_long_text(domains: list[Domain]) -> str:
    doc = [{"domid": d.domid, "config": d.retrieved_config()} for d in domains]
    from simxen import yajl  # only list -l needs it (every import costs each xl call)

    return yajl.dumps(doc) + "\n"


def vm_list_text(domains: list[Domain]) -> str:
    out = ["UUID                                  ID    name\n"]
    for d in domains:
        out.append("%s  %d    %-30s\n" % (d.uuid, d.domid, d.name))
    return "".join(out)


def uptime_string(seconds: float, short: bool) -> str:
    up = int(max(seconds, 0))
    day, up = divmod(up, 86400)
    hour, up = divmod(up, 3600)
    minute, sec = divmod(up, 60)
    days = f"{day} days, " if day > 1 else (f"{day} day, " if day == 1 else "")
    if short:
        return f"{days}{hour:2d}:{minute:02d}"
    return f"{days}{hour:2d}:{minute:02d}:{sec:02d}"


def uptime_text(domains: list[Domain], now: float, *, short: bool = False) -> str:
    import time as _time

    out = [] if short else ["%-33s %4s %s\n" % ("Name", "ID", "Uptime")]
    for d in domains:
        up = uptime_string(now - d.started_at, short)
        if short:
            clock = _time.strftime("%H:%M:%S", _time.localtime(now))
            out.append(f" {clock} up {up}, {d.name} ({d.domid})\n")
        else:
            out.append("%-33s %4d %s\n" % (d.name, d.domid, up))
    return "".join(out)


def vcpu_list_text(domains: list[Domain], now: float, facts: HostFacts, *, header: bool = True) -> str:
    out = []
    if header:
        out.append(
            "%-32s %5s %5s %5s %5s %9s %s\n"
            % ("Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)")
        )
    for d in domains:
        times = d.vcpu_seconds()
        state = d.xl_state(now)
        for vcpu in range(d.max_vcpus):
            row = "%-32s %5u %5u" % (d.name, d.domid, vcpu)
            if vcpu >= d.online_vcpus:
                row += "%5c %3c%cp " % ("-", "-", "-")
                t = 0.0
            else:
                running = state[0] == "r" and (not d.is_dom0 or vcpu == d.online_vcpus - 1)
                blocked = not running and d.running
                cpu = (vcpu + 1) % max(facts.nr_cpus, 1) if d.is_dom0 else vcpu % max(facts.nr_cpus, 1)
                row += "%5u %3c%c- " % (cpu, "r" if running else "-", "b" if blocked else "-")
                t = times[vcpu]
            row += "%9.1f  " % t + "all / all"
            out.append(row + "\n")
    return "".join(out)


# ----------------------------------------------------------------------------- sched-credit


def sched_pool_line(facts: HostFacts) -> str:
    if facts.scheduler == "credit2":
        return f"Cpupool Pool-0: ratelimit={facts.ratelimit_us}us\n"
    return (
        f"Cpupool Pool-0: tslice={facts.tslice_ms}ms ratelimit={facts.ratelimit_us}us "
        f"migration-delay={facts.migration_delay_us}us\n"
    )


SCHED_HEADER = "%-33s %4s %6s %4s\n" % ("Name", "ID", "Weight", "Cap")


def sched_domain_line(d: Domain) -> str:
    return "%-33s %4d %6d %4d\n" % (d.name, d.domid, d.weight, d.cap)


# ----------------------------------------------------------------------------- devices

BLOCK_HEADER = "%-5s %-3s %-6s %-5s %-6s %-8s %-30s\n" % (
    "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path",
)  # fmt: skip


def block_list_rows(d: Domain) -> str:
    out = []
    for disk in d.disks:
        path = f"/local/domain/0/backend/vbd/{d.domid}/{disk.devid}"
        out.append(
            "%-5d %-3d %-6d %-5d %-6d %-8d %-30s\n"
            % (disk.devid, 0, d.domid, 4, disk.evtch, disk.ring_ref, path)
        )
    return "".join(out)


NETWORK_HEADER = "%-3s %-2s %-17s %-6s %-5s %-6s %5s/%-5s %-30s\n" % (
    "Idx", "BE", "Mac Addr.", "handle", "state", "evt-ch", "tx-", "rx-ring-ref", "BE-path",
)  # fmt: skip


def network_list_rows(d: Domain) -> str:
    out = []
    for nic in d.nics:
        path = f"/local/domain/0/backend/vif/{d.domid}/{nic.devid}"
        out.append(
            "%-3d %-2d " % (nic.devid, 0)
            + nic.mac
            + "%6d %5d %6d %5d/%-11d %-30s\n" % (nic.devid, 4, nic.evtch, nic.rref_tx, nic.rref_rx, path)
        )
    return "".join(out)


# ----------------------------------------------------------------------------- xentop


@dataclass
class XentopSample:
    """One domain as xentop's libxenstat sees it at one instant."""

    domid: int
    name: str
    state: str
    cpu_ns: int
    mem_kb: int
    maxmem_kb: int
    vcpus: int
    online_vcpus: int
    vcpu_ns: list[int]
    nets: list[dict[str, int]] = field(default_factory=list)
    vbds: list[tuple[int, dict[str, int]]] = field(default_factory=list)


@dataclass
class XentopOptions:
    full_name: bool = False
    repeat_header: bool = False
    vcpus: bool = False
    networks: bool = False
    vbds: bool = False


def xentop_sample(state: HostState, now: float, facts: HostFacts) -> list[XentopSample]:
    out = []
    for d in state.domains:
        out.append(
            XentopSample(
                domid=d.domid,
                name=d.name,
                state=d.xentop_state(now),
                cpu_ns=d.cpu_ns(),
                mem_kb=d.current_memkb(),
                maxmem_kb=d.maxmem_kb(),
                vcpus=d.max_vcpus,
                online_vcpus=d.online_vcpus,
                vcpu_ns=[int(s * 1e9) for s in d.vcpu_seconds()],
                nets=[d.nic_counters(n) for n in d.nics],
                vbds=[(disk.devid, d.vbd_counters(disk)) for disk in d.disks],
            )
        )
    return out


def _width(n: int) -> int:
    import math  # here: only xentop needs it, and a C extension is not free to load

    return int(math.log10(n) + 1)


def xentop_text(
    current: list[XentopSample],
    previous: dict[int, XentopSample] | None,
    elapsed_us: float,
    total_mem_kb: int,
    opts: XentopOptions,
) -> str:
    """One batch-mode iteration of xentop (header, then one row per domain, sorted by name)."""
    doms = sorted(current, key=lambda s: s.name.lower())
    widths = {"name": 10, "tx": 8, "rx": 8, "rd": 8, "wr": 8, "rsect": 10, "wsect": 10}
    for s in doms:
        if opts.full_name:
            widths["name"] = max(widths["name"], len(s.name))
        tx = sum(n["tx_bytes"] for n in s.nets) // 1024
        rx = sum(n["rx_bytes"] for n in s.nets) // 1024
        widths["tx"] = max(widths["tx"], _width(tx + 1))
        widths["rx"] = max(widths["rx"], _width(rx + 1))
        for key in ("rd", "wr", "rsect", "wsect"):
            widths[key] = max(widths[key], _width(sum(v[key] for _, v in s.vbds) + 1))

    header_fields = [
        (widths["name"], "NAME"), (6, "STATE"), (10, "CPU(sec)"), (6, "CPU(%)"), (10, "MEM(k)"),
        (6, "MEM(%)"), (10, "MAXMEM(k)"), (9, "MAXMEM(%)"), (5, "VCPUS"), (4, "NETS"),
        (widths["tx"], "NETTX(k)"), (widths["rx"], "NETRX(k)"), (4, "VBDS"), (8, "VBD_OO"),
        (widths["rd"], "VBD_RD"), (widths["wr"], "VBD_WR"), (widths["rsect"], "VBD_RSECT"),
        (widths["wsect"], "VBD_WSECT"), (4, "SSID"),
    ]  # fmt: skip
    header = " ".join("%*s" % (w, h) for w, h in header_fields) + "\n"

    out = []
    for i, s in enumerate(doms):
        if i == 0 or opts.repeat_header:
            out.append(header)
        pct = 0.0
        if previous is not None and s.domid in previous and elapsed_us > 0:
            pct = ((s.cpu_ns - previous[s.domid].cpu_ns) / 10.0) / elapsed_us
        name = "%*s" % (widths["name"], s.name) if opts.full_name else "%10.10s" % s.name
        tx = sum(n["tx_bytes"] for n in s.nets) // 1024
        rx = sum(n["rx_bytes"] for n in s.nets) // 1024
        vbd = {k: sum(v[k] for _, v in s.vbds) for k in ("oo", "rd", "wr", "rsect", "wsect")}
        cols = [
            name,
            s.state,
            "%10d" % (s.cpu_ns // 1_000_000_000),
            "%6.1f" % pct,
            "%10d" % s.mem_kb,
            "%6.1f" % (s.mem_kb / total_mem_kb * 100),
            "%10d" % s.maxmem_kb,
            "%9.1f" % (s.maxmem_kb / total_mem_kb * 100),
            "%5d" % s.vcpus,
            "%4d" % len(s.nets),
            "%*d" % (widths["tx"], tx),
            "%*d" % (widths["rx"], rx),
            "%4d" % len(s.vbds),
            "%8d" % vbd["oo"],
            "%*d" % (widths["rd"], vbd["rd"]),
            "%*d" % (widths["wr"], vbd["wr"]),
            "%*d" % (widths["rsect"], vbd["rsect"]),
            "%*d" % (widths["wsect"], vbd["wsect"]),
            "%4d" % 0,
        ]
        out.append(" ".join(cols) + "\n")
        if opts.vcpus:
            line = "VCPUs(sec): "
            for v in range(s.online_vcpus):
                if v != 0 and v % 5 == 0:
                    line += "\n        "
                line += " %2u: %10us" % (v, s.vcpu_ns[v] // 1_000_000_000)
            out.append(line + "\n")
        if opts.networks:
            for n, c in enumerate(s.nets):
                out.append(
                    "Net%d RX: %8ubytes %8upkts %8uerr %8udrop  " % (n, c["rx_bytes"], c["rx_pkts"], 0, 0)
                    + "TX: %8ubytes %8upkts %8uerr %8udrop\n" % (c["tx_bytes"], c["tx_pkts"], 0, 0)
                )
        if opts.vbds:
            for devid, c in s.vbds:
                details = "[%2x:%2x] " % (devid >> 8, devid & 0xFF)  # linux/kdev_t.h MAJOR, MINOR
                out.append(
                    "VBD %s %4d %s OO: %8u   RD: %8u   WR: %8u   RSECT: %10u   WSECT: %10u\n"
                    % ("BlkBack", devid, details, c["oo"], c["rd"], c["wr"], c["rsect"], c["wsect"])
                )
    return "".join(out)
