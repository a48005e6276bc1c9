"""xl verbs about domains and the host: info, list, create, shutdown, destroy, scheduling, memory."""

from __future__ import annotations

import os
import time

from simxen import render
from simxen.facts import HostFacts
from simxen.model import CreateError, Domain, no_domain_type_error
from simxen.xlcommon import (
    Ctx,
    GetoptError,
    LongOpt,
    c_strtol,
    find_domain,
    gnu_getopt,
    parse_mem_size_kb,
    print_help,
    require_existing,
    xl_getopt,
)

STALE_DEVICE_WARNING = (
    "libxl: warning: libxl_domain.c:2603:retrieve_domain_configuration_end: Domain {domid}:"
    "Device present in JSON but not in xenstore, ignored"
)


def warn_stale_devices(ctx: Ctx, dom: Domain) -> None:
    """libxl_retrieve_domain_configuration() warns once per hot-unplugged device."""
    for _ in range(dom.stale_devices):
        ctx.error(STALE_DEVICE_WARNING.format(domid=dom.domid))


# ----------------------------------------------------------------------------- info / list


def cmd_info(ctx: Ctx, args: list[str]) -> int:
    opts, rest = xl_getopt(ctx, args, "n", [LongOpt("numa", False, "n")], "info", 0)
    numa = any(o == "n" for o, _ in opts)
    only = rest[0] if rest and not numa else None
    with ctx.state() as state:
        ctx.out.write(render.info_text(ctx.facts, state, numa=numa, only=only))
    return 0


def cmd_list(ctx: Ctx, args: list[str]) -> int:
    longs = [
        LongOpt("long", False, "l"),
        LongOpt("verbose", False, "v"),
        LongOpt("context", False, "Z"),
        LongOpt("cpupool", False, "c"),
        LongOpt("numa", False, "n"),
    ]
    opts, rest = xl_getopt(ctx, args, "lvhZcn", longs, "list", 0)
    flags = {o for o, _ in opts}
    now = ctx.now()
    with ctx.state() as state:
        if not rest:
            doms = list(state.domains)
        elif len(rest) == 1:
            _, dom = find_domain(ctx, state, rest[0])
            if dom is None:
                ctx.error(f"Error: Domain '{rest[0]}' does not exist.")
                return 1
            doms = [dom]
        else:
            print_help(ctx, "list")
            return 1
        if "l" in flags:
            for d in doms:
                if not d.is_dom0:
                    warn_stale_devices(ctx, d)
            ctx.out.write(render.list_long_text(doms))
        else:
            ctx.out.write(
                render.list_text(
                    doms,
                    now,
                    ctx.facts,
                    verbose="v" in flags,
                    context="Z" in flags,
                    cpupool="c" in flags,
                    numa="n" in flags,
                )
            )
    return 0


def cmd_vm_list(ctx: Ctx, args: list[str]) -> int:
    xl_getopt(ctx, args, "", [], "vm-list", 0)
    with ctx.state() as state:
        ctx.out.write(render.vm_list_text(state.domains))
    return 0


def cmd_uptime(ctx: Ctx, args: list[str]) -> int:
    opts, rest = xl_getopt(ctx, args, "s", [], "uptime", 0)
    now = ctx.now()
    with ctx.state() as state:
        if rest:
            doms = []
            for q in rest:
                _, d = find_domain(ctx, state, q)
                if d is not None:
                    doms.append(d)
        else:
            doms = list(state.domains)
        ctx.out.write(render.uptime_text(doms, now, short=any(o == "s" for o, _ in opts)))
    return 0


def cmd_vcpu_list(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "vcpu-list", 0)
    now = ctx.now()
    with ctx.state() as state:
        ctx.out.write(render.vcpu_list_text([], now, ctx.facts))
        targets = list(state.domains)
        if rest:
            targets = []
            for q in rest:
                _, d = find_domain(ctx, state, q)
                if d is not None:
                    targets.append(d)
        ctx.out.write(render.vcpu_list_text(targets, now, ctx.facts, header=False))
    return 0


def cmd_domid(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "domid", 1)
    with ctx.state() as state:
        dom = state.by_name(rest[0])
    if dom is None:
        ctx.error(f"Can't get domid of domain name '{rest[0]}', maybe this domain does not exist.")
        return 1
    ctx.out.write(f"{dom.domid}\n")
    return 0


def cmd_domname(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "domname", 1)
    value, end = c_strtol(rest[0])
    domid = value & 0xFFFFFFFF
    if domid == 0 and end == rest[0]:
        ctx.error("Invalid domain id.", "")
        return 1
    with ctx.state() as state:
        dom = state.get(domid)
    if dom is None:
        ctx.error(f"Can't get domain name of domain id '{domid}', maybe this domain does not exist.")
        return 1
    ctx.out.write(f"{dom.name}\n")
    return 0


# ----------------------------------------------------------------------------- create

CREATE_LONGS = [
    LongOpt("dryrun", False, "n"),
    LongOpt("quiet", False, "q"),
    LongOpt("defconfig", True, "f"),
    LongOpt("vncviewer", False, "V"),
    LongOpt("vncviewer-autopass", False, "A"),
    LongOpt("ignore-global-affinity-masks", False, "i"),
]


def cmd_create(ctx: Ctx, args: list[str]) -> int:
    """Parse with the real xl (``-N``), then build the domain the JSON describes."""
    import json

    from simxen import xlparse

    proc = xlparse.run_real_xl(["-N", "create", *args], cwd=os.getcwd(), nr_cpus=ctx.facts.nr_cpus)
    # Everything about the arguments and the file (help, usage, parse errors, warnings,
    # "Parsing config from ...") is the real xl's output.
    rest = args[1:] if args and not args[0].startswith("-") and "=" not in args[0] else args
    opts, _ = _quiet_getopt(rest)
    flags = {o for o, _ in opts}
    config = None
    if proc.returncode == 0 and not ctx.dryrun and "n" not in flags:
        try:
            config = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            config = None
    if config is None:
        ctx.out.write(proc.stdout)
        ctx.err.write(proc.stderr)
        return proc.returncode
    ctx.err.write(proc.stderr)
    ctx.err.flush()
    if "d" in flags:
        ctx.err.write(proc.stdout)
    if ctx.facts.create_seconds:
        time.sleep(ctx.facts.create_seconds)
    now = ctx.now()
    with ctx.state() as state:
        try:
            dom = state.build_domain(config, now, ctx.facts, paused="p" in flags)
        except CreateError as e:
            ctx.error(*e.lines)
            return e.rc  # leaving normally saves the state: the refused create used up a domid
        if "e" in flags:
            dom.monitor = False
        domid = dom.domid
    if "F" in flags:
        return _wait_in_foreground(ctx, domid)
    return 0


def _quiet_getopt(args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """create's options, for our own use only (the real xl has already judged them)."""
    try:
        return gnu_getopt(args, "Fnqf:pcdeVAi", CREATE_LONGS)
    except GetoptError:
        return [], args


def _wait_in_foreground(ctx: Ctx, domid: int) -> int:
    """``xl create -F``: stay until the domain is gone, as the monitor would log it."""
    with ctx.state() as state:
        dom = state.get(domid)
        name = dom.name if dom else "?"
    ctx.error(f"Waiting for domain {name} (domid {domid}) to die [pid {os.getpid()}]")
    while True:
        time.sleep(0.2)
        with ctx.state() as state:
            if state.get(domid) is None:
                ctx.error(f"Domain {domid} has been destroyed.")
                return 0


# ----------------------------------------------------------------------------- lifecycle


def cmd_destroy(ctx: Ctx, args: list[str]) -> int:
    opts, rest = xl_getopt(ctx, args, "f", [], "destroy", 1)
    force = any(o == "f" for o, _ in opts)
    with ctx.state() as state:
        domid, dom = find_domain(ctx, state, rest[0])
        if domid == 0 and not force:
            ctx.err.write(
                "Not destroying domain 0; use -f to force.\n"
                "This can only be done when using a disaggregated hardware domain and toolstack.\n\n"
            )
            return 1
        if dom is None:
            ctx.error(
                f"libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain {domid}:Non-existant domain",
                f"libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain {domid}:"
                "Unable to destroy guest",
                f"libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain {domid}:"
                "Destruction of domain failed",
                "destroy failed (rc=-21)",
            )
            return 1
        if domid != 0:
            state.remove(domid)
    return 0


def cmd_pause(ctx: Ctx, args: list[str]) -> int:
    return _set_paused(ctx, args, "pause", True)


def cmd_unpause(ctx: Ctx, args: list[str]) -> int:
    return _set_paused(ctx, args, "unpause", False)


def _set_paused(ctx: Ctx, args: list[str], verb: str, paused: bool) -> int:
    _, rest = xl_getopt(ctx, args, "", [], verb, 1)
    with ctx.state() as state:
        domid, dom = find_domain(ctx, state, rest[0])
        if dom is None:
            ctx.error(
                f"libxl: error: libxl_domain.c:{585 if paused else 640}:libxl_domain_{verb}: "
                f"Domain {domid}:{'Pausing' if paused else 'Unpausing'} domain: No such process"
            )
            return 1
        if not dom.is_dom0:
            dom.paused = paused
    return 0


def cmd_shutdown(ctx: Ctx, args: list[str]) -> int:
    return _shutdown_or_reboot(ctx, args, reboot=False)


def cmd_reboot(ctx: Ctx, args: list[str]) -> int:
    return _shutdown_or_reboot(ctx, args, reboot=True)


def _shutdown_or_reboot(ctx: Ctx, args: list[str], *, reboot: bool) -> int:
    verb = "reboot" if reboot else "shutdown"
    longs = [LongOpt("all", False, "a"), LongOpt("wait", False, "w")]
    opts, rest = xl_getopt(ctx, args, "awF", longs, verb, 0)
    flags = {o for o, _ in opts}
    if not rest and "a" not in flags:
        ctx.err.write("You must specify -a or a domain id.\n\n")
        return 1
    with ctx.state() as state:
        if "a" in flags:
            targets = [d.domid for d in state.guests()]
        else:
            domid, dom = find_domain(ctx, state, rest[0])
            if dom is None:
                ctx.error(
                    f"{'Rebooting' if reboot else 'Shutting down'} domain {domid}",
                    no_domain_type_error(domid),
                    f"{verb} failed (rc=-3)",
                )
                return 1
            targets = [domid]
    waiting: list[int] = []
    # One domain after the other, as xl does: each request waits for the guest's acknowledgement.
    for domid in targets:
        ctx.error(f"{'Rebooting' if reboot else 'Shutting down'} domain {domid}")
        if domid == 0:
            continue
        with ctx.state() as state:
            dom = state.get(domid)
            if dom is None:  # gone since xl listed it
                ctx.error(no_domain_type_error(domid), f"{verb} failed (rc=-3)")
                return 1
            acked = request_shutdown(dom, "reboot" if reboot else "poweroff", ctx.now(), ctx.facts)
        if not acked and not wait_for_acknowledgement(ctx, domid, verb):
            return 1
        waiting.append(domid)
    if "w" in flags:
        wait_for_shutdowns(ctx, waiting)
    return 0


def request_shutdown(dom: Domain, kind: str, now: float, facts: HostFacts) -> bool:
    """Ask the guest (PV control node) to power off or reboot; it takes a while.

    Returns whether the guest acknowledged the request.  A Linux guest that is already shutting
    down or rebooting, because of an earlier request or by itself, ignores a new one without
    acknowledging it (drivers/xen/manage.c, shutdown_handler), so a shutdown asked during a
    pending reboot does not turn it into a poweroff: the reboot goes on.  A guest that
    ``ignore_acpi`` acknowledges and then does nothing.
    """
    if dom.ignore_acpi:
        return True
    if dom.shutdown_reason is not None or dom.pending is not None:
        return False
    dom.pending = kind
    dom.pending_at = now + (facts.reboot_seconds if kind == "reboot" else facts.shutdown_seconds)
    return True


# Not in the reference captures: the line is Xen 4.17's as an XCP-ng 8.3 (Xen 4.17) user reported it.
PVCONTROL_TIMEOUT = (
    "libxl: error: libxl_domain.c:848:pvcontrol_cb: guest didn't acknowledge control request: -9"
)


def wait_for_acknowledgement(ctx: Ctx, domid: int, verb: str) -> bool:
    """libxl_domain_shutdown()/reboot() wait for the guest to empty its control/shutdown node.

    A guest that ignores the request never does; the wait then ends when the domain is gone
    (destroyed with its xenstore directory, e.g. by xl's monitor once the earlier reboot or
    poweroff completes: that counts as acknowledged) or fails after libxl's 60 s timeout.
    """
    deadline = time.monotonic() + ctx.facts.pvcontrol_timeout_seconds
    while True:
        with ctx.state() as state:
            if state.get(domid) is None:
                return True
        left = deadline - time.monotonic()
        if left <= 0:
            ctx.error(PVCONTROL_TIMEOUT, f"{verb} failed (rc=-9)")
            return False
        time.sleep(min(0.05, left))


def wait_for_shutdowns(ctx: Ctx, domids: list[int]) -> None:
    """wait_for_domain_deaths(): one line per domain as it shuts down (or is destroyed)."""
    ctx.error(f"Waiting for {len(domids)} domains")
    left = list(domids)
    reasons: dict[int, int] = {}
    while left:
        with ctx.state() as state:
            for domid in list(left):
                dom = state.get(domid)
                if dom is not None and dom.pending is not None:
                    reasons[domid] = 1 if dom.pending == "reboot" else 0
                if dom is None:
                    left.remove(domid)
                    if domid in reasons:
                        ctx.error(f"Domain {domid} has been shut down, reason code {reasons[domid]}")
                    else:
                        ctx.error(f"Domain {domid} has been destroyed")
                elif dom.shutdown_reason is not None:
                    left.remove(domid)
                    ctx.error(f"Domain {domid} has been shut down, reason code {dom.shutdown_reason}")
        if left:
            time.sleep(0.05)


# ----------------------------------------------------------------------------- scheduling

SCHED_LONGS = [
    LongOpt("domain", True, "d"),
    LongOpt("weight", True, "w"),
    LongOpt("cap", True, "c"),
    LongOpt("schedparam", False, "s"),
    LongOpt("tslice_ms", True, "t"),
    LongOpt("ratelimit_us", True, "r"),
    LongOpt("migration_delay_us", True, "m"),
    LongOpt("cpupool", True, "p"),
]


def cmd_sched_credit(ctx: Ctx, args: list[str]) -> int:
    return _sched(ctx, args, "credit")


def cmd_sched_credit2(ctx: Ctx, args: list[str]) -> int:
    return _sched(ctx, args, "credit2")


def _sched(ctx: Ctx, args: list[str], sched: str) -> int:
    verb = "sched-credit" if sched == "credit" else "sched-credit2"
    shortopts = "d:w:c:p:t:r:m:s" if sched == "credit" else "d:w:c:p:r:s"
    longs = [lo for lo in SCHED_LONGS if sched == "credit" or lo.val not in "tm"]
    opts, _ = xl_getopt(ctx, args, shortopts, longs, verb, 0)
    values: dict[str, str] = {}
    for o, v in opts:
        values[o] = v
    dom_q = values.get("d")
    pool = values.get("p")
    has = set(values)
    if sched == "credit" and (pool is not None or "s" in has) and (dom_q is not None or has & {"w", "c"}):
        ctx.error("Specifying a cpupool or schedparam is not allowed with domain options.")
        return 1
    if sched == "credit2" and pool is not None and (dom_q is not None or has & {"w", "c"}):
        ctx.error("Specifying a cpupool is not allowed with other options.")
        return 1
    if dom_q is None and has & {"w", "c"}:
        ctx.error("Must specify a domain.")
        return 1
    if sched == "credit" and "s" not in has and has & {"t", "r", "m"}:
        ctx.error("Must specify schedparam to set schedule parameter values.")
        return 1
    on_pool = ctx.facts.scheduler == sched
    if "s" in has:
        if pool is not None and pool not in ("Pool-0", "0"):
            ctx.error(f"unknown cpupool '{pool}'")
            return 1
        if not has & {"t", "r", "m"}:
            if on_pool:
                ctx.out.write(render.sched_pool_line(ctx.facts))
            else:
                ctx.out.write("Cpupool Pool-0: [sched params unavailable]\n")
        return 0
    with ctx.state() as state:
        if dom_q is None:
            if pool is not None and pool not in ("Pool-0", "0"):
                ctx.error(f"unknown cpupool '{pool}'")
                return 1
            if on_pool:
                ctx.out.write(render.sched_pool_line(ctx.facts))
                ctx.out.write(render.SCHED_HEADER)
                for d in state.domains:
                    ctx.out.write(render.sched_domain_line(d))
            return 0
        domid, dom = find_domain(ctx, state, dom_q)
        if not has & {"w", "c"}:
            ctx.out.write(render.SCHED_HEADER)
            ctx.out.flush()
            if dom is None:
                ctx.error("libxl_domain_sched_params_get failed.")
                return 1
            if not on_pool:
                ctx.error(f"libxl_domain_sched_params_get returned {ctx.facts.scheduler} not {sched}.")
                return 1
            ctx.out.write(render.sched_domain_line(dom))
            return 0
        if dom is None:
            ctx.error(
                f"libxl: error: libxl_sched.c:219:sched_credit_domain_set: Domain {domid}:"
                "Getting domain info: No such process",
                "libxl_domain_sched_params_set failed.",
            )
            return 1
        weight = c_strtol(values["w"])[0] if "w" in has else None
        cap = c_strtol(values["c"])[0] if "c" in has else None
        fn = "sched_credit_domain_set" if sched == "credit" else "sched_credit2_domain_set"
        line_w, line_c = (238, 248) if sched == "credit" else (386, 396)
        if weight is not None and not 1 <= weight <= 65535:
            ctx.error(
                f"libxl: error: libxl_sched.c:{line_w}:{fn}: Domain {domid}:Cpu weight out of range, "
                "valid values are within range from 1 to 65535",
                "libxl_domain_sched_params_set failed.",
            )
            return 1
        limit = dom.max_vcpus * 100
        if cap is not None and not 0 <= cap <= limit:
            ctx.error(
                f"libxl: error: libxl_sched.c:{line_c}:{fn}: Domain {domid}:Cpu cap out of range, "
                f"valid range is from 0 to {limit} for specified number of vcpus",
                "libxl_domain_sched_params_set failed.",
            )
            return 1
        if weight is not None:
            dom.weight = weight
        if cap is not None:
            dom.cap = cap
    return 0


# ----------------------------------------------------------------------------- memory / vcpus


def cmd_mem_set(ctx: Ctx, args: list[str]) -> int:
    return _mem(ctx, args, "mem-set")


def cmd_mem_max(ctx: Ctx, args: list[str]) -> int:
    return _mem(ctx, args, "mem-max")


def _mem(ctx: Ctx, args: list[str], verb: str) -> int:
    _, rest = xl_getopt(ctx, args, "", [], verb, 2)
    with ctx.state() as state:
        dom = require_existing(ctx, state, rest[0], verb)
        kb = parse_mem_size_kb(rest[1])
        if kb is None or kb < 0:
            ctx.error(f"invalid memory size: {rest[1]}")
            return 1
        if dom.shutdown_reason is not None:
            return 0  # nobody inside to balloon: the transcript's mem-set on "---s--" changed nothing
        if verb == "mem-max":
            dom.max_memkb = kb
            dom.target_memkb = min(dom.target_memkb, kb)
        else:
            dom.target_memkb = min(kb, dom.max_memkb)
    return 0


def cmd_vcpu_set(ctx: Ctx, args: list[str]) -> int:
    opts, rest = xl_getopt(ctx, args, "i", [LongOpt("ignore-host", False, "i")], "vcpu-set", 2)
    with ctx.state() as state:
        dom = require_existing(ctx, state, rest[0], "vcpu-set")
        n, end = c_strtol(rest[1])
        if end == rest[1]:
            ctx.error("Error: Invalid argument.")
            return 1
        check_host = not any(o == "i" for o, _ in opts)
        if check_host and n > dom.online_vcpus and n > ctx.facts.nr_cpus:
            ctx.error(
                f"You are overcommmitting! You have {ctx.facts.nr_cpus} physical CPUs and want {n} vCPUs! "
                "Aborting, use --ignore-host to continue"
            )
            return 1
        if n < 1 or n > dom.max_vcpus:
            ctx.error(f"libxl_set_vcpuonline failed domid={dom.domid} max_vcpus={n}, rc: -3")
            return 1
        dom.online_vcpus = n
    return 0
