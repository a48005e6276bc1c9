"""xl block-* and network-* verbs: hot-plug disks and vifs, with the real parser reading the specs."""

from __future__ import annotations

import os
import time

from simxen import render
from simxen.model import (
    Disk,
    Domain,
    Nic,
    disk_stat_error,
    hotplug_failure_lines,
    no_domain_type_error,
    normalise_disk,
    vdev_number,
)
from simxen.model import normalise_nic as fill_nic
from simxen.xlcommon import Ctx, LongOpt, XlExit, c_strtol, find_domain, xl_getopt


def _device_delay(ctx: Ctx) -> None:
    if ctx.facts.device_seconds:
        time.sleep(ctx.facts.device_seconds)


def _qualifier_domid(ctx: Ctx, qualifier: str) -> int | None:
    """block-attach/block-list use libxl_domain_qualifier_to_domid() directly: no "(rc=...)"."""
    with ctx.state() as state:
        domid, _ = state.resolve(qualifier)
    return domid


# ----------------------------------------------------------------------------- block


def cmd_block_attach(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "block-attach", 2)
    domid = _qualifier_domid(ctx, rest[0])
    if domid is None:
        ctx.error(f"{rest[0]} is an invalid domain identifier")
        return 1
    from simxen import xlparse

    parsed = xlparse.parse_disk(rest[1:])
    if not parsed.ok or ctx.dryrun or not isinstance(parsed.json, dict):
        ctx.out.write(parsed.stdout)
        ctx.err.write(parsed.stderr)
        return parsed.returncode
    spec = parsed.json
    vdev = str(spec.get("vdev", ""))
    path = str(spec.get("pdev_path", ""))
    _device_delay(ctx)
    with ctx.state() as state:
        dom = state.get(domid)
        number = vdev_number(vdev)
        failure: list[str] = []
        if dom is None:
            failure = [no_domain_type_error(domid)]
        elif number is None:
            failure = [
                "libxl: error: libxl_utils.c:593:libxl__device_disk_dev_number: "
                f"Invalid or unsupported virtual disk identifier {vdev}"
            ]
        elif any(d.devid == number for d in dom.disks):
            failure = [
                f"libxl: error: libxl_device.c:1105:libxl__device_add_async: Domain {domid}:"
                f"device already exists in xenstore"
            ]
        elif ctx.facts.check_disk_paths and path and not os.path.exists(path):
            failure = [disk_stat_error(vdev, path)]
        if failure or dom is None or number is None:
            ctx.error(
                *failure,
                "libxl: error: libxl_device.c:1486:device_addrm_aocomplete: unable to add device",
                "libxl_device_disk_add failed.",
            )
            return 1
        normalise_disk(spec)
        dom.disks.append(
            Disk(
                devid=number,
                vdev=vdev,
                spec=spec,
                evtch=dom.next_evtch,
                ring_ref=dom.next_ring_ref,
                attached_run=dom.run_seconds,
            )
        )
        dom.next_evtch += 1
        dom.next_ring_ref += 2
    return 0


def cmd_block_list(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "block-list", 1)
    ctx.out.write(render.BLOCK_HEADER)
    with ctx.state() as state:
        for q in rest:
            domid, dom = state.resolve(q)
            if domid is None:
                ctx.out.flush()
                ctx.error(f"{q} is an invalid domain identifier")
                continue
            if dom is not None:
                ctx.out.write(render.block_list_rows(dom))
    return 0


def cmd_block_detach(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "f", [LongOpt("force", False, "f")], "block-detach", 2)
    _device_delay(ctx)
    with ctx.state() as state:
        domid, dom = find_domain(ctx, state, rest[0])
        target = rest[1]
        number = vdev_number(target)
        disk = None
        if dom is not None and number is not None:
            disk = next((d for d in dom.disks if d.devid == number), None)
        if disk is None or dom is None:
            if number is not None:
                ctx.error(
                    "libxl: error: libxl_disk.c:516:libxl__disk_from_xenstore: disk "
                    f"/libxl/{domid}/device/vbd/{number} does not exist (no backend path"
                )
            ctx.error(f"Error: Device {target} not connected.")
            return 1
        dom.disks.remove(disk)
        dom.stale_devices += 1
    return 0


# ----------------------------------------------------------------------------- network


def cmd_network_attach(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "network-attach", 1)
    with ctx.state() as state:
        domid, _ = find_domain(ctx, state, rest[0])
    words = rest[1:]
    from simxen import xlparse

    parsed = xlparse.parse_nic(words)
    if not parsed.ok or ctx.dryrun or not isinstance(parsed.json, dict):
        ctx.out.write(parsed.stdout)
        ctx.err.write(parsed.stderr)
        return parsed.returncode
    ctx.err.write(parsed.stderr)  # e.g. "Invalid parameter `mac'." for a bad MAC, exit 0 anyway
    spec = parsed.json
    _device_delay(ctx)
    with ctx.state() as state:
        dom = state.get(domid)
        if dom is None:
            ctx.error(
                no_domain_type_error(domid),
                "libxl_device_nic_add failed.",
            )
            return 1
        devid = max((n.devid for n in dom.nics), default=-1) + 1
        import random  # here, not at the top: block-list and network-list must start fast

        fill_nic(spec, devid, dom.dtype, random.Random())
        nic = Nic(
            devid=devid,
            spec=spec,
            rref_tx=520 + 514 * devid,
            rref_rx=521 + 514 * devid,
            attached_run=dom.run_seconds,
        )
        bridge = str(spec["bridge"])
        if bridge not in ctx.facts.bridges:
            # The vif stays behind, half made, with its MAC (NOTES item 2).
            nic.broken_bridge = bridge
            dom.nics.append(nic)
            ctx.error(
                *hotplug_failure_lines(bridge, "online"),
                f"libxl: error: libxl_device.c:1481:device_addrm_aocomplete: Domain {domid}:"
                f"Unable to add vif with id {devid}",
                "libxl_device_nic_add failed.",
            )
            return 1
        dom.nics.append(nic)
    return 0


def cmd_network_list(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "network-list", 1)
    ctx.out.write(render.NETWORK_HEADER)
    with ctx.state() as state:
        for q in rest:
            try:
                _, dom = find_domain(ctx, state, q)
            except XlExit:
                ctx.out.flush()
                raise
            if dom is not None:
                ctx.out.write(render.network_list_rows(dom))
    return 0


def _find_nic(dom: Domain, target: str) -> Nic | None:
    if ":" not in target:
        devid, _ = c_strtol(target)
        return next((n for n in dom.nics if n.devid == devid), None)
    wanted = target.lower()
    return next((n for n in dom.nics if n.mac.lower() == wanted), None)


def cmd_network_detach(ctx: Ctx, args: list[str]) -> int:
    _, rest = xl_getopt(ctx, args, "", [], "network-detach", 2)
    _device_delay(ctx)
    with ctx.state() as state:
        domid, dom = find_domain(ctx, state, rest[0])
        target = rest[1]
        nic = _find_nic(dom, target) if dom is not None else None
        if nic is None or dom is None:
            if ":" not in target:
                devid, _ = c_strtol(target)
                ctx.error(
                    "libxl: error: libxl_xshelp.c:206:libxl__xs_read_mandatory: xenstore read failed: "
                    f"`/libxl/{domid}/device/vif/{devid}': No such file or directory"
                )
            ctx.error(f"Unknown device {target}.")
            return 1
        if nic.broken_bridge is not None:
            # Removing a half-made vif runs the failing hotplug script again, and still exits 0.
            ctx.error(*hotplug_failure_lines(nic.broken_bridge, "offline"))
        dom.nics.remove(nic)
        dom.stale_devices += 1
    return 0
